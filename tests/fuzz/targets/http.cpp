// HTTP answers from the Neon (modules/eyetracker/http_message.hpp): ResponseParser fed a byte
// stream in fuzzer-chosen chunks, then what NeonDevice does with an answer: read_rest_answer (the
// JSON body, the device's message on an error) and, for GET /api/status, apply_neon_status on
// the result, then the RTSP URLs of the sensors it lists through parse_url (NeonDevice::
// open_streams builds them from the phone's ip, port and params).
//
// Input: byte 0 picks the chunking; byte 1 the options (bit 0: a 256-byte body limit instead of
// 16 MiB; bit 1: take several answers from one connection, as RTSP does, instead of one and the
// end of the connection, as HttpClient does); the rest is what the server sent.
#include "fuzz_util.hpp"
#include "http_message.hpp"
#include "neon_device.hpp"

#include <string>

using namespace pilogger::neon;

namespace {

void use(const Response& r, size_t max_body, NeonStatus& status) {
    FUZZ_CHECK(r.status >= 100 && r.status <= 999);
    FUZZ_CHECK(r.protocol.rfind("HTTP/", 0) == 0 || r.protocol.rfind("RTSP/", 0) == 0);
    FUZZ_CHECK(r.body.size() <= max_body);
    for (const auto& [name, value] : r.headers) {
        FUZZ_CHECK(!name.empty());
        FUZZ_CHECK(r.header(name) == value);
    }
    RestAnswer answer = read_rest_answer(r, "GET", "/api/status");
    FUZZ_CHECK(answer.ok == answer.error.empty());
    if (!answer.ok) return;
    apply_neon_status(answer.result, status);
    (void)status.info.to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    for (const NeonSensorEndpoint& e : status.sensors) {
        FUZZ_CHECK(!e.sensor.empty() && e.port > 0);
        std::string host = e.ip.empty() ? "192.168.1.20" : e.ip;
        std::string url = "rtsp://" + host + ":" + std::to_string(e.port) + "/" + (e.params.empty() ? "" : "?" + e.params);
        if (auto parsed = parse_url(url)) {
            FUZZ_CHECK(parsed->port > 0 && parsed->port <= 65535);
            FUZZ_CHECK(!parsed->host.empty() && !parsed->target.empty() && parsed->target[0] == '/');
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Input in(data, size);
    const uint8_t plan = in.u8();
    const uint8_t options = in.u8();
    const size_t max_body = (options & 1) != 0 ? 256 : 16u << 20;
    const bool several = (options & 2) != 0;
    ResponseParser parser(max_body);
    NeonStatus status;
    bool done = false;
    fuzz::for_each_chunk(in.rest_text(), plan, [&](std::string_view chunk) {
        if (done) return;
        parser.feed(chunk);
        while (auto response = parser.next()) {
            use(*response, max_body, status);
            if (!several) {
                done = true;
                return;
            }
        }
        if (!parser.error().empty()) done = true;
    });
    if (!done) {
        // The server closed the connection.
        if (auto response = parser.finish_at_eof()) use(*response, max_body, status);
    }
    (void)parser.take_rest();
    return 0;
}

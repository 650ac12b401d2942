// The Neon's status WebSocket (modules/eyetracker/websocket.hpp): WsReader fed the server's
// bytes in fuzzer-chosen chunks, the handshake answer first, then frames; what
// WebSocketClient and NeonDevice do with the events: a pong for each ping (ws_client_frame), and
// each text message parsed as JSON and applied as one status component (apply_neon_status).
// Every whole text message must also come back unchanged through a client frame of our own.
//
// Input: byte 0 picks the chunking and, with its top bit, a 1 KiB message bound instead of
// 1 MiB; the rest is what the server sent (starting with its HTTP answer).
#include "fuzz_util.hpp"
#include "neon_device.hpp"
#include "websocket.hpp"

#include <string>

using namespace pilogger::neon;
using nlohmann::json;

namespace {

// What WsReader makes of one of our own (masked) frames after a 101 answer.
std::optional<WsEvent> read_back(uint8_t opcode, const std::string& payload, size_t max_message) {
    WsReader reader(max_message);
    reader.feed("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    reader.feed(ws_client_frame(opcode, payload, {0x12, 0x34, 0x56, 0x78}));
    auto open = reader.next();
    FUZZ_CHECK(open && open->kind == WsEvent::Kind::Open);
    return reader.next();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Input in(data, size);
    const uint8_t plan = in.u8();
    const size_t max_message = (plan & 0x80) != 0 ? 1024 : 1u << 20;
    WsReader reader(max_message);
    NeonStatus status;
    bool opened = false;
    fuzz::for_each_chunk(in.rest_text(), plan, [&](std::string_view chunk) {
        reader.feed(chunk);
        while (auto event = reader.next()) {
            switch (event->kind) {
                case WsEvent::Kind::Open:
                    FUZZ_CHECK(!opened);
                    opened = true;
                    break;
                case WsEvent::Kind::Text: {
                    FUZZ_CHECK(opened && event->data.size() <= max_message);
                    json component = json::parse(event->data, nullptr, false);
                    if (component.is_object()) apply_neon_status(json::array({component}), status);
                    auto back = read_back(0x1, event->data, max_message);
                    FUZZ_CHECK(back && back->kind == WsEvent::Kind::Text && back->data == event->data);
                    break;
                }
                case WsEvent::Kind::Binary: FUZZ_CHECK(event->data.size() <= max_message); break;
                case WsEvent::Kind::Ping: {
                    FUZZ_CHECK(event->data.size() <= 125);
                    auto back = read_back(0xA, event->data, max_message);
                    FUZZ_CHECK(!back);  // a pong is consumed silently
                    break;
                }
                case WsEvent::Kind::Close:
                case WsEvent::Kind::Error: FUZZ_CHECK(reader.ended()); break;
            }
        }
    });
    (void)status.info.to_json().dump(-1, ' ', false, json::error_handler_t::replace);
    return 0;
}

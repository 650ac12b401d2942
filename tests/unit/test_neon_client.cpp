// The eye tracker's hand-written network pieces that need no network: the HTTP/RTSP response
// parser, URLs, mDNS browse output, the Time Echo estimate, and the settings from YAML.
#include "config.hpp"
#include "discovery.hpp"
#include "eyetracker_settings.hpp"
#include "http_message.hpp"
#include "net_clients.hpp"

#include <doctest/doctest.h>

using namespace pilogger;
using namespace pilogger::neon;

namespace {
// Feeds the text one byte at a time, as the worst TCP segmentation would.
std::vector<Response> parse_bytewise(const std::string& text, ResponseParser& parser) {
    std::vector<Response> out;
    for (char c : text) {
        parser.feed(std::string_view(&c, 1));
        while (auto r = parser.next()) out.push_back(*r);
    }
    return out;
}
}  // namespace

TEST_CASE("neon client: HTTP and RTSP responses parse whatever the segmentation") {
    std::string wire =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 17\r\n\r\n{\"message\":\"ok\"}\n"
        "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 1234ABCD;timeout=60\r\n\r\n"
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\n\r\n";
    ResponseParser parser;
    auto responses = parse_bytewise(wire, parser);
    REQUIRE(responses.size() == 3);
    CHECK(responses[0].status == 200);
    CHECK(responses[0].header("CONTENT-TYPE") == "application/json");
    CHECK(responses[0].body == "{\"message\":\"ok\"}\n");
    CHECK(responses[1].protocol == "RTSP/1.0");
    CHECK(responses[1].header("Session") == "1234ABCD;timeout=60");
    CHECK(responses[1].body.empty());
    CHECK(responses[2].body == "abcdefg");
    CHECK(parser.error().empty());
}

TEST_CASE("neon client: a body that runs until the server closes") {
    ResponseParser parser;
    parser.feed("HTTP/1.0 200 OK\r\n\r\n[1,2,3]");
    CHECK_FALSE(parser.next());
    auto r = parser.finish_at_eof();
    REQUIRE(r);
    CHECK(r->body == "[1,2,3]");
}

TEST_CASE("neon client: the bytes after a 101 reply stay for the WebSocket") {
    ResponseParser parser;
    parser.feed("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi");
    auto r = parser.next();
    REQUIRE(r);
    CHECK(r->status == 101);
    CHECK(parser.take_rest() == "\x81\x02hi");
}

TEST_CASE("neon client: malformed and oversized responses are errors, never unbounded buffers") {
    SUBCASE("not HTTP") {
        ResponseParser parser;
        parser.feed("SSH-2.0-OpenSSH\r\n\r\n");
        CHECK_FALSE(parser.next());
        CHECK_FALSE(parser.error().empty());
    }
    SUBCASE("bad content length") {
        ResponseParser parser;
        parser.feed("HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n");
        CHECK_FALSE(parser.next());
        CHECK(parser.error().find("Content-Length") != std::string::npos);
    }
    SUBCASE("body over the limit") {
        ResponseParser parser(100);
        parser.feed("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        CHECK_FALSE(parser.next());
        CHECK_FALSE(parser.error().empty());
    }
    SUBCASE("endless headers") {
        ResponseParser parser;
        std::string header = "HTTP/1.1 200 OK\r\n";
        for (int i = 0; i < 5000; ++i) header += "X-Padding: aaaaaaaaaaaaaaaa\r\n";
        parser.feed(header);
        CHECK_FALSE(parser.next());
        CHECK(parser.error().find("64 KiB") != std::string::npos);
    }
}

TEST_CASE("neon client: URLs") {
    auto rtsp = parse_url("rtsp://192.168.1.20:8086/?camera=gaze");
    REQUIRE(rtsp);
    CHECK(rtsp->host == "192.168.1.20");
    CHECK(rtsp->port == 8086);
    CHECK(rtsp->target == "/?camera=gaze");
    auto query_only = parse_url("rtsp://neon.local:8086?camera=world");
    REQUIRE(query_only);
    CHECK(query_only->target == "/?camera=world");
    auto v6 = parse_url("http://[fe80::1]:8080/api/status");
    REQUIRE(v6);
    CHECK(v6->host == "fe80::1");
    CHECK(parse_url("rtsp://host")->port == 554);
    CHECK_FALSE(parse_url("no scheme"));
    CHECK_FALSE(parse_url("http://host:99999/"));
    CHECK(format_request("GET", "/api/status", "HTTP/1.1", {{"Host", "x"}}) == "GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n");
}

TEST_CASE("neon client: avahi-browse output finds the Neon and nothing else") {
    std::string output =
        "+;wlan0;IPv4;PI\\032monitor\\058Neon\\032Companion\\0581234;_http._tcp;local\n"
        "=;wlan0;IPv6;PI\\032monitor\\058Neon\\032Companion\\0581234;_http._tcp;local;neon.local;fe80::1;8080;\"\"\n"
        "=;wlan0;IPv4;PI\\032monitor\\058Neon\\032Companion\\0581234;_http._tcp;local;neon.local;192.168.1.20;8080;\"\"\n"
        "=;wlan0;IPv4;Printer;_http._tcp;local;printer.local;192.168.1.9;80;\"\"\n"
        "=;wlan0;IPv4;PI\\032monitor\\058Lab\\032Phone\\05899;_http._tcp;local;neon-2.local;192.168.1.21;8080;\"\"\n"
        "=;broken line\n";
    auto found = parse_avahi_browse(output);
    REQUIRE(found.size() == 3);
    CHECK(found[0].name == "PI monitor:Neon Companion:1234");
    CHECK(found[0].phone_name == "Neon Companion");
    auto chosen = choose_service(found, "");
    REQUIRE(chosen);
    CHECK(chosen->address == "192.168.1.20");  // IPv4 before IPv6
    auto lab = choose_service(found, "Lab Phone");
    REQUIRE(lab);
    CHECK(lab->address == "192.168.1.21");
    CHECK_FALSE(choose_service(found, "Someone else"));
    // The endpoint that stopped answering is passed over while another one is there.
    CHECK(choose_service(found, "Neon Companion", "192.168.1.20:8080")->address == "fe80::1");
    CHECK(choose_service(found, "Lab Phone", "192.168.1.21:8080")->address == "192.168.1.21");
    CHECK(avahi_unescape("a\\.b\\\\c\\032d") == "a.b\\c d");
}

TEST_CASE("neon client: the Time Echo estimate trusts the quickest round trips") {
    std::vector<TimeEchoSample> samples;
    // The phone 3.7 s ahead; quick round trips of 1 ms, and slow ones that queued on one side.
    const int64_t device_minus_mono = 1'795'000'000'000'000'000 + 3'700'000'000;
    for (int i = 0; i < 20; ++i) {
        TimeEchoSample s;
        s.send_mono_ns = 1'000'000'000LL * i;
        bool slow = i % 3 == 0;
        int64_t rtt = slow ? 40'000'000 : 1'000'000;
        s.receive_mono_ns = s.send_mono_ns + rtt;
        // A slow reply queued on the way back: the phone read its clock early in the round trip.
        int64_t phone_read_mono = s.send_mono_ns + (slow ? 1'000'000 : rtt / 2);
        s.phone_unix_ms = (phone_read_mono + device_minus_mono) / 1'000'000;  // truncated to ms
        s.host_unix_ms = s.phone_unix_ms - 3700;
        samples.push_back(s);
    }
    auto estimate = estimate_device_minus_mono_ns(samples);
    REQUIRE(estimate);
    CHECK(std::llabs(*estimate - device_minus_mono) < 600'000);
    CHECK(std::llabs(samples[1].offset_ms() + 3700) <= 1);
    CHECK_FALSE(estimate_device_minus_mono_ns({}));
}

TEST_CASE("neon client: eyetracker settings from YAML, with the key named on a mistake") {
    Config c = load_config_text(
        "data_dir: /data\n"
        "modules:\n"
        "  eyetracker:\n"
        "    address: 192.168.1.20:8081\n"
        "    overlay: true\n"
        "    simulator:\n"
        "      offset_s: 3.7\n",
        "test.yaml");
    REQUIRE(c.modules.size() == 1);
    CHECK(c.modules[0].type == "eyetracker");
    auto s = EyetrackerSettings::from_json(c.modules[0].settings);
    CHECK(s.address == "192.168.1.20");
    CHECK(s.port == 8081);
    CHECK(s.overlay);
    CHECK(s.scene);
    CHECK(s.simulator.at("offset_s") == "3.7");

    auto error_of = [](const std::string& yaml) {
        try {
            load_config_text(yaml, "test.yaml");
        } catch (const ConfigError& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    CHECK(error_of("data_dir: /d\nmodules:\n  eyetracker:\n    time_echo_interval_s: 0\n")
              .find("modules.eyetracker.time_echo_interval_s") != std::string::npos);
    CHECK(error_of("data_dir: /d\nmodules:\n  eyetracker:\n    simulator:\n      offset: 3\n")
              .find("modules.eyetracker.simulator.offset") != std::string::npos);
    CHECK_THROWS_WITH_AS(EyetrackerSettings::from_json(nlohmann::json{{"address", "host:notaport"}}),
                         doctest::Contains("address"), std::invalid_argument);
}

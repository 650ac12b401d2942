// The eye tracker's hand-written network pieces that need no network: the HTTP/RTSP response
// parser, URLs, mDNS browse output, the Time Echo estimate, and the settings from YAML.
#include "config.hpp"
#include "discovery.hpp"
#include "eyetracker_settings.hpp"
#include "http_message.hpp"
#include "neon_device.hpp"
#include "net_clients.hpp"
#include "rtsp_client.hpp"
#include "websocket.hpp"

#include "simulator_launch.hpp"

#include <doctest/doctest.h>

#include <algorithm>

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
    // The knobs are the simulator's: the module runtime passes them to neon-sim as flags.
    {
        pilogger::uv::Loop loop;
        pilogger::SimulatorLaunch launch(loop, *pilogger::neon::eyetracker_kind().simulator,
                                         [](std::string_view, const std::string&) {});
        const std::vector<std::string> args = launch.command(c.modules[0].settings);
        auto flag = std::find(args.begin(), args.end(), "--offset-s");
        REQUIRE(flag != args.end());
        REQUIRE(flag + 1 != args.end());
        CHECK(*(flag + 1) == "3.7");
        CHECK(std::find(args.begin(), args.end(), "--announce") != args.end());
    }

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

TEST_CASE("neon client: a header line with an empty name is malformed") {
    ResponseParser parser;
    parser.feed("HTTP/1.1 200 OK\r\n\r: x\r\nContent-Length: 0\r\n\r\n");
    CHECK_FALSE(parser.next());
    CHECK(parser.error().find("malformed") != std::string::npos);
}

namespace {
const std::string kUpgrade = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";

std::vector<WsEvent> ws_events(const std::string& bytes, size_t max_message = 1u << 20) {
    WsReader reader(max_message);
    std::vector<WsEvent> out;
    for (char c : bytes) {  // one byte at a time, the worst segmentation
        reader.feed(std::string_view(&c, 1));
        while (auto e = reader.next()) out.push_back(*e);
    }
    return out;
}
std::string frame(uint8_t first, std::string_view payload) {
    std::string f(1, static_cast<char>(first));
    f.push_back(static_cast<char>(payload.size()));
    return f + std::string(payload);
}
}  // namespace

TEST_CASE("websocket: handshake, text, ping, fragments and close") {
    std::string wire = kUpgrade + frame(0x81, "{\"a\":1}") + frame(0x89, "hi") + frame(0x01, "par") +
                       frame(0x8A, "") + frame(0x80, "ts") + frame(0x82, "\x01") + frame(0x88, "\x03\xe8");
    auto events = ws_events(wire);
    REQUIRE(events.size() == 6);
    CHECK(events[0].kind == WsEvent::Kind::Open);
    CHECK((events[1].kind == WsEvent::Kind::Text && events[1].data == "{\"a\":1}"));
    CHECK((events[2].kind == WsEvent::Kind::Ping && events[2].data == "hi"));
    CHECK((events[3].kind == WsEvent::Kind::Text && events[3].data == "parts"));  // a pong in between is skipped
    CHECK(events[4].kind == WsEvent::Kind::Binary);
    CHECK(events[5].kind == WsEvent::Kind::Close);
}

TEST_CASE("websocket: protocol errors end the stream and say why") {
    auto error_of = [](const std::string& frames) {
        auto events = ws_events(kUpgrade + frames + frame(0x81, "after"));
        REQUIRE(events.size() == 2);
        CHECK(events[1].kind == WsEvent::Kind::Error);
        return events[1].data;
    };
    CHECK(error_of(frame(0x80, "x")).find("continuation") != std::string::npos);
    CHECK(error_of(frame(0x01, "a") + frame(0x81, "b")).find("inside a fragmented") != std::string::npos);
    CHECK(error_of(frame(0x09, "x")).find("control frame") != std::string::npos);
    CHECK(error_of(std::string("\x89\x7e\x00\x80") + std::string(128, 'p')).find("125") != std::string::npos);
    CHECK(error_of(frame(0xC1, "x")).find("reserved") != std::string::npos);
    CHECK(error_of(frame(0x83, "x")).find("opcode 3") != std::string::npos);
    // An announced giant frame is refused from its header alone.
    auto events = ws_events(kUpgrade + std::string("\x81\x7f\x7f\xff\xff\xff\xff\xff\xff\xff"), 1024);
    REQUIRE(events.size() == 2);
    CHECK(events[1].data.find("over the limit") != std::string::npos);
    // Refused handshakes.
    events = ws_events("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    REQUIRE(events.size() == 1);
    CHECK(events[0].data == "handshake answered 403 Forbidden");
}

TEST_CASE("websocket: client frames of every length read back, masked") {
    for (size_t n : {size_t{0}, size_t{125}, size_t{126}, size_t{65535}, size_t{65536}, size_t{70000}}) {
        CAPTURE(n);
        std::string payload(n, 'z');
        std::string wire = ws_client_frame(0x1, payload, {1, 2, 3, 4});
        CHECK((static_cast<uint8_t>(wire[1]) & 0x80) != 0);
        auto events = ws_events(kUpgrade + wire);
        REQUIRE(events.size() == 2);
        CHECK(events[1].data == payload);
    }
}

TEST_CASE("rtsp: CSeq, the DESCRIBE track and the SETUP session") {
    Response r;
    r.headers["CSeq"] = "3";
    CHECK(rtsp_cseq(r) == 3);
    r.headers["CSeq"] = "3x";
    CHECK_FALSE(rtsp_cseq(r));

    Response describe;
    describe.headers["Content-Base"] = "rtsp://h:8086/?camera=world/";
    describe.body = "v=0\r\nm=audio 0 RTP/AVP 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n";
    std::string error;
    auto track = rtsp_describe_track(describe, "rtsp://h:8086/?camera=world", &error);
    REQUIRE(track);
    CHECK(track->media.media == "video");
    CHECK(track->media.clock_rate == 90000);
    CHECK(track->control_url == "rtsp://h:8086/?camera=world/trackID=0");
    describe.body = "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:track 0\r\n";
    CHECK_FALSE(rtsp_describe_track(describe, "rtsp://h/", &error));
    CHECK(error.find("control URL") != std::string::npos);
    describe.body = "m=video 0 RTP/AVP 96\r\n";
    CHECK_FALSE(rtsp_describe_track(describe, "rtsp://h/", &error));
    CHECK(error.find("clock rate") != std::string::npos);

    auto session = rtsp_session("5F2A9C01;timeout=30");
    REQUIRE(session);
    CHECK(session->id == "5F2A9C01");
    CHECK(session->timeout_s == 30);
    CHECK(rtsp_session("abc")->timeout_s == 60);
    CHECK(rtsp_session("abc;timeout=1")->timeout_s == 2);
    CHECK(rtsp_session("abc;timeout=99999999999")->timeout_s == 60);  // not a number we can hold
    CHECK(rtsp_session("abc;timeout=999999")->timeout_s == 86400);
    CHECK_FALSE(rtsp_session(""));
    CHECK_FALSE(rtsp_session(";timeout=5"));
    CHECK_FALSE(rtsp_session("a\rb"));
}

TEST_CASE("neon status: components of the wrong type or out of range change nothing") {
    NeonStatus status;
    nlohmann::json components = nlohmann::json::parse(R"([
        {"model": "Phone", "data": {"device_name": "N", "battery_level": 80, "time_echo_port": 12321}},
        {"model": "Sensor", "data": {"sensor": "gaze", "conn_type": "DIRECT", "ip": "h", "port": 8086, "params": "camera=gaze"}},
        {"model": "Sensor", "data": {"sensor": "world", "conn_type": "WEBSOCKET", "port": 8686}},
        7, null, {"model": "Phone", "data": 5}
    ])");
    CHECK(apply_neon_status(components, status));
    CHECK(status.info.device_name == "N");
    CHECK(status.time_echo_port == 12321);
    REQUIRE(status.sensors.size() == 1);
    CHECK(status.sensors[0].port == 8086);

    components = nlohmann::json::parse(R"([
        {"model": "Phone", "data": {"time_echo_port": 1e300, "battery_level": "full"}},
        {"model": "Sensor", "data": {"sensor": "gaze", "conn_type": "DIRECT", "port": -1e19}},
        {"model": "Sensor", "data": {"sensor": "imu", "conn_type": "DIRECT", "port": 4294967296}},
        {"model": "Sensor", "data": {"sensor": "eye_events", "conn_type": "DIRECT", "port": 8086.0}}
    ])");
    apply_neon_status(components, status);
    CHECK(status.time_echo_port == 12321);
    CHECK(status.info.battery_percent == 80);
    REQUIRE(status.sensors.size() == 2);
    CHECK(status.sensors[0].port == 8086);  // the gaze entry was not replaced
    CHECK(status.sensors[1].sensor == "eye_events");
    CHECK_FALSE(apply_neon_status(nlohmann::json::object(), status));
}

TEST_CASE("neon client: Time Echo replies and REST answers") {
    std::string reply = std::string("\x00\x00\x01\x8b\xcf\xe5\x68\x00", 8) + std::string("\x00\x00\x01\x8b\xcf\xe5\x76\x74", 8);
    CHECK(time_echo_phone_ms(reply, 1'700'000'000'000) == 1'700'000'003'700);
    CHECK_FALSE(time_echo_phone_ms(reply, 1'700'000'000'001));
    CHECK_FALSE(time_echo_phone_ms(reply.substr(0, 15), 1'700'000'000'000));
    // A phone time whose ns would not fit in int64 (the fuzzer sent 2^63-1 ms) is no time.
    std::string far = reply.substr(0, 8) + std::string("\x7f\xff\xff\xff\xff\xff\xff\xff", 8);
    CHECK_FALSE(time_echo_phone_ms(far, 1'700'000'000'000));

    Response r;
    r.status = 400;
    r.body = R"({"message":"busy"})";
    RestAnswer a = read_rest_answer(r, "POST", "/api/event");
    CHECK_FALSE(a.ok);
    CHECK(a.error == "POST /api/event answered 400: busy");
    r.status = 200;
    r.body = "not json";
    CHECK(read_rest_answer(r, "GET", "/x").error.find("not JSON") != std::string::npos);
    r.body = R"({"result":[1]})";
    a = read_rest_answer(r, "GET", "/x");
    CHECK(a.ok);
    CHECK(a.result == nlohmann::json::array({1}));
}

TEST_CASE("neon clock: a device time beyond int64 on the host clock maps to nothing") {
    NeonClock clock(10);
    TimeEchoSample s;
    s.host_unix_ms = 1'700'000'000'000;
    s.phone_unix_ms = 1'700'000'003'700;
    s.send_mono_ns = 1'000'000'000;
    s.receive_mono_ns = 1'002'000'000;
    clock.add_burst({s}, s.device_minus_mono_ns());
    CHECK(clock.to_mono_ns(s.phone_unix_ms * 1'000'000).has_value());
    CHECK_FALSE(clock.to_mono_ns(std::numeric_limits<int64_t>::min()));
    CHECK_FALSE(clock.to_device_ns(std::numeric_limits<int64_t>::max()));
}

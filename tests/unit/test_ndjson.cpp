#include "ndjson.hpp"

#include <doctest/doctest.h>

#include <vector>

using namespace pilogger;

namespace {
struct Collected {
    std::vector<std::string> lines;
    std::vector<size_t> overflows;
};

void feed(LineFramer& framer, std::string_view chunk, Collected& out) {
    framer.feed(
        chunk, [&](std::string_view line) { out.lines.emplace_back(line); },
        [&](size_t n) { out.overflows.push_back(n); });
}
}  // namespace

TEST_CASE("lines split across reads are joined, CRLF and empty lines handled") {
    LineFramer framer;
    Collected out;
    feed(framer, "{\"a\":", out);
    feed(framer, "1}\r\n\n{\"b\"", out);
    CHECK(out.lines == std::vector<std::string>{"{\"a\":1}"});
    feed(framer, ":2}\n", out);
    CHECK(out.lines == std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"});
    CHECK(framer.buffered_bytes() == 0);
}

TEST_CASE("an over-long line is dropped without being buffered, and the next line still parses") {
    LineFramer framer(1024);
    Collected out;
    std::string chunk(4096, 'x');
    // A 10 MiB line arriving in 4 KiB reads.
    for (int i = 0; i < 10 * 256; ++i) {
        feed(framer, chunk, out);
        CHECK(framer.buffered_bytes() <= 1024);
    }
    feed(framer, "tail\n{\"ok\":true}\n", out);
    REQUIRE(out.overflows.size() == 1);
    CHECK(out.overflows[0] == 10 * 1024 * 1024 + 5);
    CHECK(out.lines == std::vector<std::string>{"{\"ok\":true}"});
    CHECK(framer.overflowed_lines() == 1);
}

TEST_CASE("at the end of the input a last line without its newline still counts") {
    LineFramer framer(1024);
    Collected out;
    feed(framer, "{\"a\":1}\n{\"b\":2}", out);
    CHECK(out.lines.size() == 1);
    framer.finish([&](std::string_view line) { out.lines.emplace_back(line); }, [&](size_t n) { out.overflows.push_back(n); });
    CHECK(out.lines == std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"});
    CHECK(framer.buffered_bytes() == 0);
    // An over-long last line is reported, not delivered.
    feed(framer, std::string(2000, 'x'), out);
    framer.finish([&](std::string_view line) { out.lines.emplace_back(line); }, [&](size_t n) { out.overflows.push_back(n); });
    CHECK(out.lines.size() == 2);
    CHECK(out.overflows == std::vector<size_t>{2000});
}

TEST_CASE("a long line's buffer is given back once the line is done") {
    LineFramer framer;
    Collected out;
    feed(framer, std::string(200 * 1024, 'x'), out);
    CHECK(framer.memory_bytes() >= 200 * 1024);
    feed(framer, "\n", out);
    CHECK(out.lines.size() == 1);
    CHECK(framer.memory_bytes() <= 4 * 1024);
}

TEST_CASE("a NUL byte makes a line invalid, whatever comes before it") {
    using namespace std::string_literals;
    // nlohmann stops at a NUL: this was a status request, and the rest was never looked at.
    Message m = parse_message("{\"id\":1,\"cmd\":\"status\"}\0{\"id\":2,\"cmd\":\"shutdown\"}"s);
    CHECK(m.kind == Message::Kind::Invalid);
    CHECK(m.problem == "not valid JSON (a NUL byte at offset 23)");
    CHECK(parse_message("\0"s).kind == Message::Kind::Invalid);
    // Escaped, it is a character like any other.
    Message escaped = parse_message(R"({"event":"log","message":"a\u0000b"})");
    REQUIRE(escaped.kind == Message::Kind::Event);
    CHECK(escaped.body["message"].get<std::string>() == "a\0b"s);
}

TEST_CASE("messages are classified and bad ones explained") {
    CHECK(parse_message("{\"id\":1,\"cmd\":\"status\"}").kind == Message::Kind::Command);
    CHECK(parse_message("{\"id\":1,\"ok\":true,\"result\":{}}").kind == Message::Kind::Reply);
    CHECK(parse_message("{\"event\":\"stats\",\"frames\":3}").name == "stats");

    Message garbage = parse_message("this is not json");
    CHECK(garbage.kind == Message::Kind::Invalid);
    CHECK(garbage.problem == "not valid JSON");

    Message array = parse_message("[1,2,3]");
    CHECK(array.kind == Message::Kind::Invalid);
    CHECK(array.problem.find("array") != std::string::npos);

    CHECK(parse_message("{\"cmd\":\"status\"}").kind == Message::Kind::Invalid);          // no id
    CHECK(parse_message("{\"id\":\"x\",\"cmd\":\"status\"}").kind == Message::Kind::Invalid);
    CHECK(parse_message("{\"id\":2,\"cmd\":5}").kind == Message::Kind::Invalid);
    CHECK(parse_message("{\"id\":2,\"cmd\":\"x\",\"args\":[]}").kind == Message::Kind::Invalid);
    CHECK(parse_message("{\"ok\":\"maybe\"}").kind == Message::Kind::Invalid);
    CHECK(parse_message("{\"event\":7}").kind == Message::Kind::Invalid);
    CHECK(parse_message("{}").kind == Message::Kind::Invalid);
    // The id survives so the error can still be answered to the right request.
    CHECK(parse_message("{\"id\":5,\"cmd\":\"x\",\"args\":3}").id == 5);
}

TEST_CASE("builders make one-line JSON, even from invalid UTF-8") {
    std::string err = make_error(3, errc::kBadRequest, std::string("bad \xff byte"));
    CHECK(err.find('\n') == std::string::npos);
    Message m = parse_message(err);
    REQUIRE(m.kind == Message::Kind::Reply);
    CHECK(m.body["ok"] == false);
    CHECK(m.body["error"]["code"] == "bad_request");

    Message cmd = parse_message(make_command(7, "start_recording", json{{"trial", 1}}));
    CHECK(cmd.kind == Message::Kind::Command);
    CHECK(cmd.body["args"]["trial"] == 1);

    Message ev = parse_message(make_event("stats", json{{"frames", 10}}));
    CHECK(ev.kind == Message::Kind::Event);
    CHECK(ev.body["frames"] == 10);
    CHECK(parse_message(make_ok(std::nullopt)).body["id"].is_null());
}

TEST_CASE("a line budget stops the framer mid-chunk, and the rest is fed later in order") {
    LineFramer framer;
    std::vector<std::string> lines;
    auto on_line = [&](std::string_view line) { lines.emplace_back(line); };
    const std::string chunk = "a\nb\n\nc\nd";
    size_t used = framer.feed(chunk, on_line, {}, 2);
    CHECK(lines == std::vector<std::string>{"a", "b"});
    CHECK(used == 4);
    used += framer.feed(std::string_view(chunk).substr(used), on_line, {}, 1);
    CHECK(lines == std::vector<std::string>{"a", "b", "c"});
    CHECK(used == 7);  // the empty line costs nothing
    CHECK(framer.feed(std::string_view(chunk).substr(used), on_line, {}, 0) == 0);
    CHECK(framer.feed(std::string_view(chunk).substr(used), on_line, {}) == 1);
    framer.feed("\n", on_line, {});
    CHECK(lines == std::vector<std::string>{"a", "b", "c", "d"});
}

TEST_CASE("ids beyond 64-bit signed are refused, not wrapped") {
    CHECK(parse_message("{\"id\":9223372036854775807,\"cmd\":\"status\"}").id == INT64_MAX);
    Message big = parse_message("{\"id\":9223372036854775808,\"cmd\":\"status\"}");
    CHECK(big.kind == Message::Kind::Invalid);
    CHECK(!big.id);
    CHECK(big.problem == "\"id\" must be an integer");
    CHECK(parse_message("{\"id\":-9223372036854775808,\"ok\":true}").id == INT64_MIN);
}

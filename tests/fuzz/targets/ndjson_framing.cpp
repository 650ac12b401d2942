// NDJSON as the supervisor and the modules read it (logger_core/protocol/ndjson.hpp): a byte stream cut
// into fuzzer-chosen chunks through LineFramer, parse_message on every line, and what the
// supervisor does with a valid message's body: forward it, serialized again (make_event and
// friends, invalid UTF-8 replaced).
//
// Input: byte 0 picks the chunking (fuzz::for_each_chunk) and, with its top bit, a small line
// bound (64 bytes) instead of the default 1 MiB; the rest is the stream.
#include "fuzz_util.hpp"
#include "ndjson.hpp"

#include <string>

using pilogger::json;
using pilogger::Message;

namespace {

// Nesting depth of a parsed value, without recursion.
size_t depth_of(const json& root) {
    size_t deepest = 0;
    std::vector<std::pair<const json*, size_t>> stack{{&root, 1}};
    while (!stack.empty()) {
        auto [value, depth] = stack.back();
        stack.pop_back();
        deepest = std::max(deepest, depth);
        if (value->is_structured()) {
            for (const auto& child : *value) stack.emplace_back(&child, depth + 1);
        }
    }
    return deepest;
}

// parse_message refuses lines nested deeper than kMaxNestingDepth before it parses them, so what
// it accepts serializes without deep recursion (regressions/ndjson_framing/deep-nesting-* were a
// stack overflow before that limit).

void check_line(std::string_view line, size_t max_line) {
    FUZZ_CHECK(!line.empty());
    FUZZ_CHECK(line.size() <= max_line);
    FUZZ_CHECK(line.find('\n') == std::string_view::npos);

    Message m = pilogger::parse_message(line);
    if (m.kind == Message::Kind::Invalid) {
        FUZZ_CHECK(!m.problem.empty());
        // The supervisor answers with an error naming the problem.
        std::string reply = pilogger::make_error(m.id, pilogger::errc::kParseError, m.problem);
        FUZZ_CHECK(pilogger::parse_message(reply).kind == Message::Kind::Reply);
        return;
    }
    FUZZ_CHECK(m.problem.empty());
    FUZZ_CHECK(m.body.is_object());
    if (m.kind == Message::Kind::Command) FUZZ_CHECK(m.id.has_value());
    FUZZ_CHECK(depth_of(m.body) <= pilogger::kMaxNestingDepth);

    // Forwarded: serialized again with invalid UTF-8 replaced, it must still be one line that
    // parses to the same kind of message with the same id.
    std::string forwarded = m.body.dump(-1, ' ', false, json::error_handler_t::replace);
    FUZZ_CHECK(forwarded.find('\n') == std::string::npos);
    Message again = pilogger::parse_message(forwarded);
    FUZZ_CHECK(again.kind == m.kind);
    FUZZ_CHECK(again.id == m.id);

    // As the supervisor passes a module's message on to its control clients.
    std::string wrapped = pilogger::make_event("module_message", json{{"module", "fuzz"}, {"message", m.body}});
    FUZZ_CHECK(pilogger::parse_message(wrapped).kind == Message::Kind::Event);
    if (m.kind == Message::Kind::Event) {
        Message event = pilogger::parse_message(pilogger::make_event(m.name, m.body));
        FUZZ_CHECK(event.kind == Message::Kind::Event);
    }
    if (m.kind == Message::Kind::Command) {
        json args = m.body.value("args", json::object());
        std::string command = pilogger::make_command(*m.id, m.name, args);
        Message parsed = pilogger::parse_message(command);
        FUZZ_CHECK(parsed.kind == Message::Kind::Command);
        FUZZ_CHECK(parsed.id == m.id);
        pilogger::make_ok(m.id, args);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Input in(data, size);
    const uint8_t plan = in.u8();
    const size_t max_line = (plan & 0x80) != 0 ? 64 : pilogger::kDefaultMaxLineBytes;
    pilogger::LineFramer framer(max_line);
    uint64_t overflows = 0;
    fuzz::for_each_chunk(in.rest_text(), plan, [&](std::string_view chunk) {
        framer.feed(
            chunk, [&](std::string_view line) { check_line(line, max_line); },
            [&](size_t dropped) {
                FUZZ_CHECK(dropped > max_line);
                ++overflows;
            });
        FUZZ_CHECK(framer.buffered_bytes() <= max_line);
    });
    FUZZ_CHECK(framer.overflowed_lines() == overflows);
    return 0;
}

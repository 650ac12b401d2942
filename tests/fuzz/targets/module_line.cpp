// A module's stdout as the supervisor reads it (logger_core/protocol/module_message.hpp): the byte stream
// cut into fuzzer-chosen chunks by LineFramer, every line through read_module_line, and the
// invariants the supervisor relies on when it stores, forwards or answers with the result: the
// bounds of hello, replies and events hold, an event's body is a bounded object that serializes
// to one line again, an invalid line always says what was wrong.
//
// Input: byte 0 picks the chunking; the rest is the stream.
#include "fuzz_util.hpp"
#include "module_message.hpp"

#include <string>

using pilogger::json;
using pilogger::ModuleLine;

namespace {

void check_line(std::string_view text) {
    ModuleLine line = pilogger::read_module_line(text);
    switch (line.kind) {
        case ModuleLine::Kind::Hello:
            FUZZ_CHECK(line.hello.protocol >= 0);
            FUZZ_CHECK(line.hello.version.size() <= pilogger::kMaxModuleVersionBytes);
            FUZZ_CHECK(line.hello.capabilities.size() <= pilogger::kMaxCapabilities);
            for (const std::string& c : line.hello.capabilities) FUZZ_CHECK(c.size() <= pilogger::kMaxCapabilityBytes);
            break;
        case ModuleLine::Kind::Reply:
            FUZZ_CHECK(line.reply.result.is_object());
            if (line.reply.ok) FUZZ_CHECK(line.reply.code.empty());
            break;
        case ModuleLine::Kind::Event: {
            FUZZ_CHECK(pilogger::is_module_event_name(line.event.name));
            FUZZ_CHECK(line.event.name != "hello");
            FUZZ_CHECK(line.event.body.is_object());
            FUZZ_CHECK(line.event.message.size() <= pilogger::kMaxModuleMessageBytes);
            // Stored in session.json and events.csv, forwarded to subscribers: one line, and
            // it must not throw (invalid UTF-8 replaced as the supervisor does).
            std::string forwarded = line.event.body.dump(-1, ' ', false, json::error_handler_t::replace);
            FUZZ_CHECK(forwarded.find('\n') == std::string::npos);
            if (line.event.name == "stats") FUZZ_CHECK(forwarded.size() <= pilogger::kMaxStatsBytes + 64);
            std::string wrapped = pilogger::make_event("module_message", json{{"module", "fuzz"}, {"message", line.event.body}});
            FUZZ_CHECK(pilogger::parse_message(wrapped).kind == pilogger::Message::Kind::Event);
            break;
        }
        case ModuleLine::Kind::Invalid:
            FUZZ_CHECK(!line.problem.empty());
            // The problem goes into events.csv and the module's log.
            (void)json(line.problem).dump(-1, ' ', false, json::error_handler_t::replace);
            break;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Input in(data, size);
    const uint8_t plan = in.u8();
    pilogger::LineFramer framer(64 * 1024);
    fuzz::for_each_chunk(in.rest_text(), plan, [&](std::string_view chunk) {
        framer.feed(chunk, [](std::string_view line) { check_line(line); }, [](size_t) {});
    });
    return 0;
}

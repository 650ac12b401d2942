// A control-socket client's lines as the supervisor reads them (logger_core/protocol/control_request.hpp):
// LineFramer over fuzzer-chosen chunks, parse_message, then read_control_request on every
// command, and the answer the supervisor would send. Invariants: a refused request says why with
// an error code; an accepted one has its arguments within their bounds; every answer is one line
// that parses back as a reply with the request's id.
//
// Input: byte 0 picks the chunking; the rest is the stream.
#include "control_request.hpp"
#include "fuzz_util.hpp"

#include <string>

using pilogger::ControlRequest;
using pilogger::json;
using pilogger::Message;

namespace {

void check_answer(const std::string& answer, std::optional<int64_t> id) {
    FUZZ_CHECK(answer.find('\n') == std::string::npos);
    Message parsed = pilogger::parse_message(answer);
    FUZZ_CHECK(parsed.kind == Message::Kind::Reply);
    FUZZ_CHECK(parsed.id == id);
}

void check_line(std::string_view text) {
    Message m = pilogger::parse_message(text);
    if (m.kind != Message::Kind::Command) {
        FUZZ_CHECK(m.kind != Message::Kind::Invalid || !m.problem.empty());
        check_answer(pilogger::make_error(m.id, pilogger::errc::kParseError, m.problem), m.id);
        return;
    }
    ControlRequest r = pilogger::read_control_request(m);
    FUZZ_CHECK(r.id == *m.id);
    if (!r.ok()) {
        FUZZ_CHECK(!r.error_code.empty());
        check_answer(pilogger::make_error(r.id, r.error_code, r.problem), r.id);
        return;
    }
    FUZZ_CHECK(r.error_code.empty());
    FUZZ_CHECK(!r.cmd.empty());
    FUZZ_CHECK(r.label.size() <= pilogger::kMaxLabelBytes);
    FUZZ_CHECK(r.text.size() <= pilogger::kMaxNoteBytes);
    FUZZ_CHECK(r.name.size() <= pilogger::kMaxModuleNameBytes);
    FUZZ_CHECK(r.module_args.is_object());
    // A module command goes on to the module as one line.
    if (r.cmd == "module_command") {
        std::string command = pilogger::make_command(1, r.module_cmd, r.module_args);
        FUZZ_CHECK(command.find('\n') == std::string::npos);
        FUZZ_CHECK(pilogger::parse_message(command).kind == Message::Kind::Command);
    }
    check_answer(pilogger::make_ok(r.id, json{{"cmd", r.cmd}, {"label", r.label}, {"text", r.text}}), r.id);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Input in(data, size);
    const uint8_t plan = in.u8();
    pilogger::LineFramer framer(256 * 1024);  // the control server's request bound
    fuzz::for_each_chunk(in.rest_text(), plan, [&](std::string_view chunk) {
        framer.feed(chunk, [](std::string_view line) { check_line(line); }, [](size_t) {});
    });
    return 0;
}

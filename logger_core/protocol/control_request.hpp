// One control-socket request (from the CLI, the GUI, or anything that can open the socket),
// checked in one pure function: the command and each argument it needs, typed and bounded.
#pragma once

#include "ndjson.hpp"

#include <optional>
#include <string>

namespace pilogger {

// Longest note text accepted: Python's csv module refuses fields over 131072 characters by
// default, and a note is something a person typed.
inline constexpr size_t kMaxNoteBytes = 64 * 1024;
inline constexpr size_t kMaxLabelBytes = 256;
inline constexpr size_t kMaxModuleNameBytes = 64;

struct ControlRequest {
    int64_t id = 0;
    std::string cmd;
    std::string label;                      // session_start, trial_start
    std::string text;                       // note
    std::optional<int64_t> mono_ns;         // note: when it was typed
    std::string name;                       // module_*: the module ("*" for every one)
    std::string module_cmd;                 // module_command
    json module_args = json::object();      // module_command
    // Not empty when the request must be refused: the error code and what was wrong.
    std::string error_code;
    std::string problem;
    bool ok() const { return problem.empty(); }
};

// message must be a Command (parse_message); the result says what to run or why not.
ControlRequest read_control_request(const Message& message);

}  // namespace pilogger

#include "control_request.hpp"

#include "json_read.hpp"

#include <array>

namespace pilogger {

namespace {
using Need = FieldReader::Need;

constexpr std::array<std::string_view, 12> kCommands = {
    "status",       "subscribe",   "shutdown",      "session_start",  "session_stop",   "trial_start",
    "trial_stop",   "note",        "module_command", "module_enable", "module_disable", "module_restart"};

// Module commands only the supervisor sends: the lifecycle, and notes (it numbers and stamps
// them; one sent around it would write a row with any id, time and trial into notes.csv).
constexpr std::array<std::string_view, 7> kSupervisorOnly = {"configure",    "start_session", "start_recording",
                                                             "stop_recording", "stop_session", "shutdown", "note"};

bool supervisor_only(std::string_view cmd) {
    for (auto c : kSupervisorOnly) {
        if (c == cmd) return true;
    }
    return false;
}

bool known(std::string_view cmd) {
    for (auto c : kCommands) {
        if (c == cmd) return true;
    }
    return false;
}
}  // namespace

ControlRequest read_control_request(const Message& message) {
    ControlRequest r;
    r.id = message.id.value_or(0);
    r.cmd = message.name;
    auto refuse = [&r](const char* code, std::string problem) {
        r.error_code = code;
        r.problem = std::move(problem);
        return r;
    };
    if (!known(r.cmd)) {
        std::string shown = r.cmd.size() > 64 ? r.cmd.substr(0, 64) + "..." : r.cmd;
        return refuse(errc::kUnknownCommand, "unknown command \"" + shown + "\"");
    }
    static const json kNoArgs = json::object();
    auto it = message.body.find("args");
    const json& args = it != message.body.end() && it->is_object() ? *it : kNoArgs;
    FieldReader f(args);
    auto bad = [&] { return refuse(errc::kBadRequest, r.cmd + ": " + f.problem()); };

    if (r.cmd == "session_start" || r.cmd == "trial_start") {
        auto label = f.text("label", Need::Optional, kMaxLabelBytes);
        if (!f.ok()) return bad();
        r.label = label.value_or("");
    } else if (r.cmd == "note") {
        auto text = f.text("text", Need::Required, kMaxNoteBytes);
        // Any clock reading of this host fits easily; far-off values are refused, not wrapped.
        auto at = f.integer("mono_ns", Need::Optional, 0, int64_t{1} << 62);
        if (!f.ok()) return bad();
        if (text->empty()) return refuse(errc::kBadRequest, "a note needs some text");
        r.text = *text;
        r.mono_ns = at;
    } else if (r.cmd == "module_command") {
        auto name = f.text("name", Need::Required, kMaxModuleNameBytes);
        auto cmd = f.text("cmd", Need::Required, 64);
        const json* module_args = f.object("args");
        if (!f.ok()) return bad();
        if (name->empty() || cmd->empty()) {
            return refuse(errc::kBadRequest, "module_command needs \"name\" (or \"*\"), \"cmd\" and an object \"args\"");
        }
        if (supervisor_only(*cmd)) {
            return refuse(errc::kBadRequest, *cmd + " is sent by the supervisor; use the " +
                                                 (*cmd == "note" ? "note command" : "session and trial commands"));
        }
        r.name = *name;
        r.module_cmd = *cmd;
        if (module_args != nullptr) r.module_args = *module_args;
    } else if (r.cmd == "module_enable" || r.cmd == "module_disable" || r.cmd == "module_restart") {
        auto name = f.text("name", Need::Required, kMaxModuleNameBytes);
        if (!f.ok()) return bad();
        if (name->empty()) return refuse(errc::kBadRequest, "needs \"name\" of a module");
        r.name = *name;
    }
    return r;
}

}  // namespace pilogger

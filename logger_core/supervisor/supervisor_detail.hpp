// What the supervisor's source files (supervisor*.cpp) share; not part of its interface.
#pragma once

#include "module_process.hpp"

namespace pilogger::supervisor_detail {

inline CommandResult ok_result(json result = json::object()) { return CommandResult{true, std::move(result), {}, {}}; }

// A module's status with its capabilities even before its hello: its kind's (the config's, what
// the supervisor goes by), then any the instance added in its hello.
json module_status(const ModuleProcess& module);

}  // namespace pilogger::supervisor_detail

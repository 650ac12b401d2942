// A module's settings read from its YAML mapping by its kind's description (settings_schema.hpp):
// types, ranges, allowed values and defaults, with the file, line and column of anything wrong;
// with check_host also what this machine must have (programs, folders, the simulator's program).
#pragma once

#include "settings_schema.hpp"
#include "yaml_map.hpp"

#include <nlohmann/json.hpp>

namespace pilogger {

nlohmann::json module_settings_from_yaml(const ModuleKind& kind, YamlMap& m, bool check_host);

}  // namespace pilogger

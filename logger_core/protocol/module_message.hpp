// One line from a module's stdout as the supervisor reads it: classified and type-checked in one
// pure function, so nothing downstream touches an unchecked field (and a fuzzer can reach all of
// it). Whatever a module prints, the result is a value, never an exception.
#pragma once

#include "ndjson.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pilogger {

// Bounds on what a module may say; beyond them a line is refused (and counted) or cut.
inline constexpr size_t kMaxModuleVersionBytes = 128;
inline constexpr size_t kMaxCapabilities = 64;
inline constexpr size_t kMaxCapabilityBytes = 64;
inline constexpr size_t kMaxModuleMessageBytes = 4096;   // warning/error/log text, cut beyond
inline constexpr size_t kMaxStatsBytes = 16 * 1024;      // a stats object, serialized
inline constexpr size_t kMaxModuleEventDepth = 8;        // nesting inside an event

struct ModuleHello {
    int64_t protocol = 0;
    std::string version;
    std::string type;  // "" when the module did not say
    std::vector<std::string> capabilities;
};

struct ModuleReply {
    int64_t id = 0;
    bool ok = false;
    json result = json::object();  // ok: the module's result (an object)
    std::string code;              // !ok
    std::string message;
};

// The events a module may send besides hello: state, stats, warning, error, log, device.
struct ModuleEvent {
    std::string name;
    json body;            // the whole object, checked: safe to forward and to store
    std::string message;  // warning, error, log: the text (cut to kMaxModuleMessageBytes)
    std::string state;    // state: the state name
};

struct ModuleLine {
    enum class Kind { Hello, Reply, Event, Invalid };
    Kind kind = Kind::Invalid;
    ModuleHello hello;
    ModuleReply reply;
    ModuleEvent event;
    // Invalid: what was wrong, and the field when one field was ("" for the line as a whole).
    std::string problem;
    std::string field;
    std::optional<int64_t> id;  // Invalid: the id when the line had a valid one (a broken reply)
};

ModuleLine read_module_line(std::string_view line);

// The event names a module may send (hello included).
bool is_module_event_name(std::string_view name);

}  // namespace pilogger

// NDJSON framing and the message shapes shared by the module protocol and the control socket.
#pragma once

#include "line_framer.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace pilogger {

using json = nlohmann::json;

inline constexpr int kProtocolVersion = 1;
// Deepest nesting of arrays and objects accepted in a message. nlohmann's serializer and copies
// recurse, so 100,000 levels in a 200 KB line would overflow the stack; no message needs more
// than a handful.
inline constexpr size_t kMaxNestingDepth = 32;

// True when text nests arrays/objects deeper than limit (strings are skipped; O(n), no parse).
bool nests_deeper_than(std::string_view text, size_t limit);

// One decoded inbound line.
struct Message {
    enum class Kind { Command, Reply, Event, Invalid };
    Kind kind = Kind::Invalid;
    json body;             // the whole object
    std::optional<int64_t> id;
    std::string name;      // cmd name or event name
    std::string problem;   // for Invalid: what was wrong
};

// Classifies a line: {"id","cmd"} command, {"id","ok"} reply, {"event"} event, else Invalid.
Message parse_message(std::string_view line);

// Builders; each returns one line without the trailing newline.
std::string make_command(int64_t id, std::string_view cmd, const json& args = json::object());
std::string make_ok(std::optional<int64_t> id, const json& result = json::object());
std::string make_error(std::optional<int64_t> id, std::string_view code, std::string_view message);
std::string make_event(std::string_view event, json fields = json::object());

// Standard error codes.
namespace errc {
inline constexpr const char* kParseError = "parse_error";
inline constexpr const char* kBadRequest = "bad_request";
inline constexpr const char* kUnknownCommand = "unknown_command";
inline constexpr const char* kBadState = "bad_state";
inline constexpr const char* kTimeout = "timeout";
inline constexpr const char* kUnavailable = "unavailable";
inline constexpr const char* kIoError = "io_error";
inline constexpr const char* kInternal = "internal";
inline constexpr const char* kLineTooLong = "line_too_long";
}  // namespace errc

}  // namespace pilogger

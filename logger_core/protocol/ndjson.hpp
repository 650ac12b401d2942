// NDJSON framing and the message shapes shared by the module protocol and the control socket.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace pilogger {

using json = nlohmann::json;

inline constexpr int kProtocolVersion = 1;
// Longest accepted line. Anything longer is discarded up to its newline and reported once.
inline constexpr size_t kDefaultMaxLineBytes = 1024 * 1024;
// Deepest nesting of arrays and objects accepted in a message. nlohmann's serializer and copies
// recurse, so 100,000 levels in a 200 KB line would overflow the stack; no message needs more
// than a handful.
inline constexpr size_t kMaxNestingDepth = 32;

// True when text nests arrays/objects deeper than limit (strings are skipped; O(n), no parse).
bool nests_deeper_than(std::string_view text, size_t limit);

// Splits a byte stream into lines. Partial lines are kept across feeds; an over-long line is
// dropped (never buffered past the bound) and reported through on_overflow.
class LineFramer {
public:
    using LineCallback = std::function<void(std::string_view line)>;
    using OverflowCallback = std::function<void(size_t dropped_bytes)>;

    explicit LineFramer(size_t max_line_bytes = kDefaultMaxLineBytes)
        : max_line_bytes_(max_line_bytes) {}

    // Delivers at most max_lines lines (over-long ones included) and returns how many bytes of
    // chunk it consumed: all of them, unless max_lines stopped it (the caller keeps the rest).
    size_t feed(std::string_view chunk, const LineCallback& on_line, const OverflowCallback& on_overflow,
                size_t max_lines = SIZE_MAX);
    // End of the input: a last line without its newline is delivered (an over-long one reported).
    void finish(const LineCallback& on_line, const OverflowCallback& on_overflow);
    size_t buffered_bytes() const { return partial_.size(); }
    // What the partial line holds in memory (its capacity), for those who count what peers cost.
    size_t memory_bytes() const { return partial_.capacity(); }
    uint64_t overflowed_lines() const { return overflowed_lines_; }

private:
    size_t max_line_bytes_;
    std::string partial_;
    bool discarding_ = false;
    size_t discarded_bytes_ = 0;
    uint64_t overflowed_lines_ = 0;
};

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

// Splitting a byte stream into bounded lines: the module protocol, the control socket, the Pico's
// serial lines and every child's output.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace pilogger {

// Longest accepted line. Anything longer is discarded up to its newline and reported once.
inline constexpr size_t kDefaultMaxLineBytes = 1024 * 1024;

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

}  // namespace pilogger

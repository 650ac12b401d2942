// A token bucket: at most `per_second` on average, bursts up to `burst`. What it refuses is
// counted, so the owner can report "N suppressed" instead of each one.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

namespace pilogger {

class RateLimit {
public:
    RateLimit(double per_second, double burst) : per_second_(per_second), burst_(burst), tokens_(burst) {}

    bool allow(int64_t now_ns) {
        if (last_ns_ != 0) tokens_ = std::min(burst_, tokens_ + per_second_ * static_cast<double>(now_ns - last_ns_) / 1e9);
        last_ns_ = now_ns;
        if (tokens_ >= 1) {
            tokens_ -= 1;
            return true;
        }
        ++suppressed_;
        return false;
    }
    // Refused since the last call (and resets the count).
    uint64_t take_suppressed() { return std::exchange(suppressed_, 0); }

private:
    double per_second_;
    double burst_;
    double tokens_;
    int64_t last_ns_ = 0;
    uint64_t suppressed_ = 0;
};

// How much a peer may make us read in one window; past it, reading pauses until the window ends,
// so one flooding peer costs a bounded share of the loop and its pipe fills instead.
class ReadBudget {
public:
    ReadBudget(int64_t window_ns, uint64_t max_lines, uint64_t max_bytes)
        : window_ns_(window_ns), max_lines_(max_lines), max_bytes_(max_bytes) {}

    void add(int64_t now_ns, uint64_t lines, uint64_t bytes) {
        roll(now_ns);
        lines_ += lines;
        bytes_ += bytes;
    }
    bool exhausted(int64_t now_ns) {
        roll(now_ns);
        return lines_ >= max_lines_ || bytes_ >= max_bytes_;
    }
    // Lines still allowed in the current window.
    uint64_t lines_left(int64_t now_ns) {
        roll(now_ns);
        return lines_ >= max_lines_ ? 0 : max_lines_ - lines_;
    }
    // Nanoseconds until the current window ends.
    int64_t remaining_ns(int64_t now_ns) const { return std::max<int64_t>(0, start_ns_ + window_ns_ - now_ns); }

private:
    void roll(int64_t now_ns) {
        if (now_ns - start_ns_ >= window_ns_) {
            start_ns_ = now_ns;
            lines_ = 0;
            bytes_ = 0;
        }
    }
    int64_t window_ns_;
    uint64_t max_lines_;
    uint64_t max_bytes_;
    int64_t start_ns_ = 0;
    uint64_t lines_ = 0;
    uint64_t bytes_ = 0;
};

}  // namespace pilogger

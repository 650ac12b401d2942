// The rate at which the session grows on disk, from the modules' bytes_written counters.
// A display computation only: nothing here is stored or sent back.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>

namespace pilogger::gui {

class DataRate {
public:
    explicit DataRate(int64_t window_ns = 10'000'000'000) : window_ns_(window_ns) {}

    // One module's bytes_written counter at time now_ns. A counter that went backwards belongs
    // to a restarted process: everything it reports is new.
    void add(const std::string& module, int64_t bytes_written, int64_t now_ns);
    void reset();

    // Bytes per second over the window; nothing until two samples span at least a second.
    std::optional<double> bytesPerSecond() const;
    // Seconds until free_bytes - reserve_bytes is used up at the current rate; nothing while
    // nothing is being written.
    std::optional<double> secondsLeft(int64_t free_bytes, int64_t reserve_bytes) const;

private:
    int64_t window_ns_;
    std::map<std::string, int64_t> last_;
    int64_t total_ = 0;
    std::deque<std::pair<int64_t, int64_t>> samples_;  // (time, total)
};

}  // namespace pilogger::gui

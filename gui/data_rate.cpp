#include "data_rate.hpp"

#include <algorithm>

namespace pilogger::gui {

void DataRate::add(const std::string& module, int64_t bytes_written, int64_t now_ns) {
    auto it = last_.find(module);
    int64_t delta = 0;
    if (it == last_.end()) {
        // The first report of a module sets its baseline; its past is not a rate.
        last_[module] = bytes_written;
    } else {
        delta = bytes_written >= it->second ? bytes_written - it->second : bytes_written;
        it->second = bytes_written;
    }
    total_ += delta;
    samples_.emplace_back(now_ns, total_);
    while (samples_.size() > 2 && samples_[1].first < now_ns - window_ns_) samples_.pop_front();
}

void DataRate::reset() {
    last_.clear();
    samples_.clear();
    total_ = 0;
}

std::optional<double> DataRate::bytesPerSecond() const {
    if (samples_.size() < 2) return std::nullopt;
    const auto& [t0, b0] = samples_.front();
    const auto& [t1, b1] = samples_.back();
    if (t1 - t0 < 1'000'000'000) return std::nullopt;
    return static_cast<double>(b1 - b0) * 1e9 / static_cast<double>(t1 - t0);
}

std::optional<double> DataRate::secondsLeft(int64_t free_bytes, int64_t reserve_bytes) const {
    auto rate = bytesPerSecond();
    if (!rate || *rate < 1.0 || free_bytes < 0) return std::nullopt;
    return static_cast<double>(std::max<int64_t>(0, free_bytes - reserve_bytes)) / *rate;
}

}  // namespace pilogger::gui

#include "line_framer.hpp"

namespace pilogger {

namespace {
constexpr size_t kKeptCapacityBytes = 4 * 1024;   // a partial line's buffer kept between lines
}  // namespace

size_t LineFramer::feed(std::string_view chunk, const LineCallback& on_line, const OverflowCallback& on_overflow,
                        size_t max_lines) {
    const size_t total = chunk.size();
    size_t delivered = 0;
    while (!chunk.empty()) {
        if (delivered >= max_lines) return total - chunk.size();
        size_t newline = chunk.find('\n');
        std::string_view piece = chunk.substr(0, newline);
        bool complete = newline != std::string_view::npos;
        chunk = complete ? chunk.substr(newline + 1) : std::string_view{};

        if (discarding_) {
            discarded_bytes_ += piece.size() + (complete ? 1 : 0);
            if (complete) {
                discarding_ = false;
                ++overflowed_lines_;
                ++delivered;
                if (on_overflow) on_overflow(discarded_bytes_);
                discarded_bytes_ = 0;
            }
            continue;
        }
        if (partial_.size() + piece.size() > max_line_bytes_) {
            discarding_ = true;
            discarded_bytes_ = partial_.size() + piece.size() + (complete ? 1 : 0);
            partial_.clear();
            partial_.shrink_to_fit();
            if (complete) {
                discarding_ = false;
                ++overflowed_lines_;
                ++delivered;
                if (on_overflow) on_overflow(discarded_bytes_);
                discarded_bytes_ = 0;
            }
            continue;
        }
        if (!complete) {
            partial_.append(piece);
            continue;
        }
        std::string_view line = piece;
        if (!partial_.empty()) {
            partial_.append(piece);
            line = partial_;
        }
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (!line.empty()) {
            ++delivered;
            on_line(line);
        }
        partial_.clear();
        // One long line must not cost its peer that much memory for as long as it stays connected.
        if (partial_.capacity() > kKeptCapacityBytes) partial_.shrink_to_fit();
    }
    return total;
}

void LineFramer::finish(const LineCallback& on_line, const OverflowCallback& on_overflow) {
    if (discarding_) {
        discarding_ = false;
        ++overflowed_lines_;
        if (on_overflow) on_overflow(discarded_bytes_);
        discarded_bytes_ = 0;
        return;
    }
    std::string line = std::move(partial_);
    partial_ = std::string();
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) on_line(line);
}

}  // namespace pilogger

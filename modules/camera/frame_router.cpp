#include "frame_router.hpp"

#include "clock.hpp"

namespace pilogger::camera {

void FrameRouter::arm(uint64_t generation, int64_t start_at_ns) {
    std::lock_guard lock(mutex_);
    armed_ = true;
    close_sent_ = false;
    generation_ = generation;
    start_at_ns_ = start_at_ns;
    stop_at_ns_ = INT64_MAX;
    in_window_ = false;
    pending_drops_ = 0;
    stats_.trial_dropped = 0;
}

void FrameRouter::set_stop(int64_t stop_at_ns) {
    std::lock_guard lock(mutex_);
    stop_at_ns_ = stop_at_ns;
}

bool FrameRouter::close_now() {
    std::lock_guard lock(mutex_);
    armed_ = false;
    if (close_sent_) return false;
    close_sent_ = true;
    hooks_.recorder->close(generation_);
    return true;
}

void FrameRouter::disarm() {
    std::lock_guard lock(mutex_);
    armed_ = false;
    close_sent_ = true;
}

void FrameRouter::want_snapshot() {
    std::lock_guard lock(mutex_);
    snapshot_wanted_ = true;
}

void FrameRouter::cancel_snapshot() {
    std::lock_guard lock(mutex_);
    snapshot_wanted_ = false;
}

FrameRouter::Stats FrameRouter::stats(int64_t now_ns) const {
    std::lock_guard lock(mutex_);
    Stats s = stats_;
    size_t n = 0;
    for (int64_t t : recent_) {
        if (t > now_ns - 1'000'000'000) ++n;
    }
    s.fps = static_cast<double>(n);
    return s;
}

void FrameRouter::on_frame(FramePtr frame) {
    std::lock_guard lock(mutex_);
    ++stats_.captured;
    stats_.last_frame_ns = frame->time_ns;
    stats_.last_sequence = frame->sequence;
    recent_.push_back(frame->time_ns);
    while (!recent_.empty() && recent_.front() <= frame->time_ns - 1'000'000'000) recent_.pop_front();

    if (armed_) {
        if (frame->time_ns >= stop_at_ns_) {
            // The first frame past the stop instant closes the file; it is not recorded.
            armed_ = false;
            if (!close_sent_) {
                close_sent_ = true;
                hooks_.recorder->close(generation_);
            }
        } else if (frame->time_ns >= start_at_ns_) {
            in_window_ = true;
            if (hooks_.recorder->push(frame, generation_, pending_drops_, nullptr)) {
                pending_drops_ = 0;
                ++stats_.recorded;
            } else {
                ++pending_drops_;
                ++stats_.dropped_queue_full;
                ++stats_.trial_dropped;
            }
        }
    }
    if (hooks_.preview != nullptr) hooks_.preview->offer(frame);
    if (snapshot_wanted_ && hooks_.snapshot_frame) {
        snapshot_wanted_ = false;
        hooks_.snapshot_frame(frame);
    }
}

void FrameRouter::on_frames_lost(uint64_t count) {
    std::lock_guard lock(mutex_);
    stats_.lost_at_source += count;
    // Losses count toward the next row's dropped_before only once the trial has begun.
    if (armed_ && (in_window_ || mono_ns() >= start_at_ns_)) {
        pending_drops_ += count;
        stats_.trial_dropped += count;
    }
}

void FrameRouter::on_source_warning(const std::string& message) {
    if (hooks_.warning) hooks_.warning(message);
}

}  // namespace pilogger::camera

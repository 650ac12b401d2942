// The capture side's switchboard: every frame from the source passes through on_frame (on the
// source's thread) and goes, without ever waiting, to the encoder queue when it falls inside the
// trial window, to the preview when one is due, and to a snapshot when one was asked for.
#pragma once

#include "frame_source.hpp"
#include "preview.hpp"
#include "recorder.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>

namespace pilogger::camera {

class FrameRouter : public FrameSink {
public:
    struct Hooks {
        Recorder* recorder = nullptr;
        PreviewPublisher* preview = nullptr;          // may be null (preview off)
        std::function<void(FramePtr)> snapshot_frame;  // hands a frame to the event loop
        std::function<void(const std::string&)> warning;
    };
    explicit FrameRouter(Hooks hooks) : hooks_(std::move(hooks)) {}

    // ---- event loop side ----
    // Frames at or after start_at_ns go to the recording `generation`.
    void arm(uint64_t generation, int64_t start_at_ns);
    // Frames at or after stop_at_ns are not recorded; the first of them closes the file.
    void set_stop(int64_t stop_at_ns);
    // Closes the file now if no frame has done it (a stalled camera). True when it did.
    bool close_now();
    // Forget the recording without closing it again (its file failed to open).
    void disarm();
    void want_snapshot();
    void cancel_snapshot();

    struct Stats {
        uint64_t captured = 0;
        uint64_t lost_at_source = 0;   // sensor overruns, failed frames, empty pool
        uint64_t dropped_queue_full = 0;
        uint64_t recorded = 0;         // handed to the encoder queue
        uint64_t trial_dropped = 0;    // lost inside the current trial window
        double fps = 0;                // frames in the last second
        int64_t last_frame_ns = 0;
        uint64_t last_sequence = 0;
    };
    Stats stats(int64_t now_ns) const;

    // ---- source side ----
    void on_frame(FramePtr frame) override;
    void on_frames_lost(uint64_t count) override;
    void on_source_warning(const std::string& message) override;

private:
    Hooks hooks_;
    mutable std::mutex mutex_;
    bool armed_ = false;
    bool close_sent_ = true;
    uint64_t generation_ = 0;
    int64_t start_at_ns_ = 0;
    int64_t stop_at_ns_ = INT64_MAX;
    bool in_window_ = false;        // a frame at or after start_at has been seen
    uint64_t pending_drops_ = 0;    // lost since the last recorded frame (dropped_before)
    bool snapshot_wanted_ = false;
    Stats stats_;
    std::deque<int64_t> recent_;    // frame instants of the last second
};

}  // namespace pilogger::camera

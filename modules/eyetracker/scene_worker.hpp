// The scene writer's own thread: everything that blocks or costs CPU for the scene video, off the
// loop thread. It owns the fragmented MP4 (media::Fmp4Writer) and, in overlay mode, the
// decoder/encoder (OverlayTranscoder).
//   pass-through: access units muxed as they came (ffmpeg's -c copy), pts in the RTP clock.
//   overlay:      decoded, gaze ring drawn, encoded with libx264; each picture is reported to the
//                 loop (which gives it its CSV row) before its packet goes to the muxer.
// A fragment goes to the file only once the rows of all its frames are on the disk: the muxer's
// before_write hook waits for release_through() to cover them.
#pragma once

#include "loop_queue.hpp"
#include "scene_overlay.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace pilogger::media {
class Fmp4Writer;
}

namespace pilogger::neon {

struct SceneWorkerConfig {
    std::string path;
    uint32_t rtp_clock_rate = 90000;
    bool overlay = false;
    std::string overlay_preset;
    int overlay_crf = 23;
};

struct SceneWorkItem {
    std::string annexb;
    bool keyframe = false;
    std::string parameter_sets;  // the first unit: SPS/PPS (Annex B) for the MP4's avcC
    int64_t pts = 0;             // RTP clock ticks from the file's first frame
    int64_t device_time_ns = 0;
    int64_t mono_ns = 0;
    bool intact = true;
    Gaze gaze;
    bool finish = false;         // the last item: write the trailer
};

// What the worker tells the loop.
struct SceneWorkerOutput {
    enum class Kind { frame, warning, fatal, finished } kind = Kind::warning;
    int64_t pts = 0;  // frame: a picture of the overlay, on its way to the file
    int64_t device_time_ns = 0;
    int64_t mono_ns = 0;
    bool intact = true;
    std::string text;  // warning / fatal: for the log; finished: empty when the file is complete
};

class SceneWorker {
public:
    SceneWorker(SceneWorkerConfig config, LoopQueue<SceneWorkerOutput>& outputs);
    // Stops waiting for rows, abandons the queue and joins: the file keeps its complete fragments.
    ~SceneWorker();
    SceneWorker(const SceneWorker&) = delete;
    SceneWorker& operator=(const SceneWorker&) = delete;

    // Loop thread. False when max_items wait already (finish items always go in).
    bool push(SceneWorkItem item, size_t max_items);
    // Loop thread: the rows of the frames before `frames` are on the disk.
    void release_through(uint64_t frames);

    size_t queued_bytes() const { return queued_bytes_.load(); }
    uint64_t dropped() const { return dropped_.load(); }
    uint64_t syncs() const { return syncs_.load(); }

private:
    struct Pending {
        int64_t pts;
        int64_t device_time_ns;
        int64_t mono_ns;
        bool intact;
        Gaze gaze;
    };

    void run();
    void handle(SceneWorkItem& item);
    void pass_through(SceneWorkItem& item);
    void overlay(SceneWorkItem& item);
    void overlay_pictures();
    void open_overlay_file();
    // Creates the MP4 (the first frame's parameters): fragments of a second, RTP clock timescale.
    void open_file(const AVCodecParameters& params);
    void mux(AVPacket& packet);
    void finish();
    // The muxer's before_write hook: waits until the rows of `frames` frames are on the disk.
    int wait_for_rows(uint64_t frames);
    void warn(std::string text);

    SceneWorkerConfig config_;
    AVRational time_base_;
    LoopQueue<SceneWorkerOutput>& outputs_;

    // Worker thread only.
    std::unique_ptr<media::Fmp4Writer> mp4_;
    std::unique_ptr<OverlayTranscoder> transcoder_;
    std::deque<Pending> pending_;
    bool need_keyframe_ = false;
    bool failed_ = false;  // a fatal error was reported: the rest is ignored until finish

    std::atomic<size_t> queued_bytes_{0};
    std::atomic<uint64_t> dropped_{0};
    std::atomic<uint64_t> syncs_{0};

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<SceneWorkItem> queue_;
    uint64_t released_ = 0;
    bool quit_ = false;
    std::thread thread_;  // last: starts after everything above exists
};

}  // namespace pilogger::neon

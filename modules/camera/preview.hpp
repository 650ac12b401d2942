// Preview frames for the GUI in POSIX shared memory, guarded by a sequence counter (a seqlock):
// the writer never waits for a reader, and a reader retries when the counter moved under it.
// The layout (header_bytes 64 here) and the seqlock writer live in logger_core/sdk/preview_shm.hpp,
// shared with the eye tracker's scene preview; docs/camera.md and docs/gui.md describe it.
#pragma once

#include "av_util.hpp"
#include "frame.hpp"
#include "preview_shm.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace pilogger::camera {

using pilogger::kPreviewGray8;
using pilogger::kPreviewMagic;
using pilogger::kPreviewRgb24;
using pilogger::kPreviewVersion;
using pilogger::PreviewHeader;

class PreviewPublisher {
public:
    // Throws std::runtime_error naming the shared-memory object when it cannot be made.
    PreviewPublisher(std::string shm_name, int width, int height, bool gray, double fps);
    // Joins the scaler thread and removes the shared-memory object.
    ~PreviewPublisher();
    PreviewPublisher(const PreviewPublisher&) = delete;
    PreviewPublisher& operator=(const PreviewPublisher&) = delete;

    // Capture thread: takes the frame when a preview is due and the scaler is idle; never waits.
    void offer(const FramePtr& frame);

    const std::string& name() const { return shm_.name(); }
    // Set when the default name was taken by another live process.
    const std::string& warning() const { return shm_.warning(); }
    uint64_t published() const { return published_.load(); }

    // "/pilogger-<uid>-<module>-preview"
    static std::string default_name(const std::string& module);

    // A reader's copy of the latest stable frame (tests; the GUI does the same in its own code).
    using Image = PreviewShm::Image;
    // False when there is no such object, no frame yet, or the writer kept it busy.
    static bool read(const std::string& shm_name, Image& out) { return PreviewShm::read(shm_name, out); }

private:
    void run();
    void publish(const Frame& frame);

    PreviewShm shm_;
    int width_;
    int height_;
    bool gray_;
    int64_t period_ns_;
    std::vector<uint8_t> scratch_;
    SwsContextPtr sws_;  // scaler thread only
    int64_t next_due_ns_ = 0;  // capture thread only

    std::mutex mutex_;
    std::condition_variable wake_;
    FramePtr pending_;
    bool quit_ = false;
    std::atomic<uint64_t> published_{0};
    std::thread thread_;
};

}  // namespace pilogger::camera

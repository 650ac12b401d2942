// Preview frames for the GUI in POSIX shared memory, guarded by a sequence counter (a seqlock):
// the writer never waits for a reader, and a reader retries when the counter moved under it.
//
// Layout (little-endian, docs/camera.md):
//   0  char[8]  magic "PILOGPV" + NUL
//   8  u32      version (1)
//  12  u32      header_bytes (64): pixels start here
//  16  u32      width
//  20  u32      height
//  24  u32      stride (bytes per pixel row)
//  28  u32      format: 1 = RGB24, 2 = GRAY8
//  32  u64      sequence: odd while a frame is being written, even when stable; +2 per frame
//  40  i64      frame_mono_ns: the frame's instant on CLOCK_MONOTONIC (0: no frame yet)
//  48  u64      frame_index: the source's frame counter
//  56  u32      writer_pid
//  60  u32      frame_bytes (height * stride)
//  64  pixels
#pragma once

#include "av_util.hpp"
#include "frame.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace pilogger::camera {

struct PreviewHeader {
    char magic[8];
    uint32_t version;
    uint32_t header_bytes;
    uint32_t width;
    uint32_t height;
    uint32_t stride;
    uint32_t format;
    uint64_t sequence;
    int64_t frame_mono_ns;
    uint64_t frame_index;
    uint32_t writer_pid;
    uint32_t frame_bytes;
};
static_assert(sizeof(PreviewHeader) == 64, "the preview header is part of the GUI contract");

inline constexpr char kPreviewMagic[8] = {'P', 'I', 'L', 'O', 'G', 'P', 'V', '\0'};
inline constexpr uint32_t kPreviewVersion = 1;
inline constexpr uint32_t kPreviewRgb24 = 1;
inline constexpr uint32_t kPreviewGray8 = 2;

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

    const std::string& name() const { return name_; }
    // Set when the default name was taken by another live process.
    const std::string& warning() const { return warning_; }
    uint64_t published() const { return published_.load(); }

    // "/pilogger-<uid>-<module>-preview"
    static std::string default_name(const std::string& module);

    // A reader's copy of the latest stable frame (tests; the GUI does the same in its own code).
    struct Image {
        PreviewHeader header{};
        std::vector<uint8_t> pixels;
    };
    // False when there is no such object, no frame yet, or the writer kept it busy.
    static bool read(const std::string& shm_name, Image& out);

private:
    int open_shared_memory();
    void run();
    void publish(const Frame& frame);

    std::string name_;
    std::string warning_;
    int width_;
    int height_;
    bool gray_;
    int64_t period_ns_;
    uint32_t stride_;
    size_t map_bytes_ = 0;
    uint8_t* map_ = nullptr;
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

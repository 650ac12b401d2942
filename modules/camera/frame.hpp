// A captured frame (YUV 4:2:0 planar, 8 bit) and the pool its pixels come from.
//
// Frames are shared: the encoder queue, the preview and a snapshot may each hold one. The pixels go
// back to the pool when the last holder lets go, so the pool's size bounds the memory a camera uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace pilogger::camera {

// How the YUV values are meant (carried into the video file's colour tags).
struct ColorInfo {
    bool full_range = false;
    int matrix = 1;     // AVColorSpace: 1 BT.709, 6 SMPTE 170M (BT.601), 9 BT.2020
    int primaries = 1;  // AVColorPrimaries
    int transfer = 1;   // AVColorTransferCharacteristic
};

struct Frame {
    int width = 0;
    int height = 0;
    uint8_t* data[3] = {nullptr, nullptr, nullptr};  // Y, U, V
    int linesize[3] = {0, 0, 0};

    uint64_t sequence = 0;     // the source's own frame counter
    int64_t sensor_ns = 0;     // the device's timestamp, in its own clock (see docs/camera.md)
    int64_t time_ns = 0;       // the frame's instant on CLOCK_MONOTONIC: trial window and pts
    int64_t mono_ns = 0;       // the CSV's mono_ns column
    int64_t exposure_us = -1;  // -1: unknown
};

using FramePtr = std::shared_ptr<const Frame>;

// Fixed-size YUV420 buffers, allocated on first use up to a capacity and reused after that.
class FramePool : public std::enable_shared_from_this<FramePool> {
public:
    static std::shared_ptr<FramePool> create(int width, int height, size_t capacity);
    ~FramePool();
    FramePool(const FramePool&) = delete;
    FramePool& operator=(const FramePool&) = delete;

    // A frame to fill, or nullptr when every buffer is in use (the caller counts a drop).
    std::shared_ptr<Frame> acquire();

    int width() const { return width_; }
    int height() const { return height_; }
    size_t capacity() const { return capacity_; }
    size_t in_use() const;
    size_t frame_bytes() const { return frame_bytes_; }

private:
    FramePool(int width, int height, size_t capacity);
    void release(uint8_t* buffer);

    const int width_;
    const int height_;
    const size_t capacity_;
    int linesize_[3];
    size_t plane_offset_[3];
    size_t frame_bytes_;
    mutable std::mutex mutex_;
    std::vector<uint8_t*> free_;
    std::vector<uint8_t*> all_;
};

}  // namespace pilogger::camera

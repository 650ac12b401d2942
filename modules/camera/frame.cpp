#include "frame.hpp"

extern "C" {
#include <libavutil/mem.h>
}

#include <new>
#include <stdexcept>

namespace pilogger::camera {

namespace {
// Rows aligned for the SIMD code in x264 and swscale.
constexpr int kAlign = 64;
int aligned(int n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

std::shared_ptr<FramePool> FramePool::create(int width, int height, size_t capacity) {
    return std::shared_ptr<FramePool>(new FramePool(width, height, capacity));
}

FramePool::FramePool(int width, int height, size_t capacity)
    : width_(width), height_(height), capacity_(capacity) {
    if (width <= 0 || height <= 0 || width % 2 != 0 || height % 2 != 0 || capacity == 0) {
        throw std::invalid_argument("frame pool: bad size " + std::to_string(width) + "x" + std::to_string(height));
    }
    linesize_[0] = aligned(width);
    linesize_[1] = linesize_[2] = aligned(width / 2);
    plane_offset_[0] = 0;
    plane_offset_[1] = static_cast<size_t>(linesize_[0]) * static_cast<size_t>(height);
    plane_offset_[2] = plane_offset_[1] + static_cast<size_t>(linesize_[1]) * static_cast<size_t>(height / 2);
    frame_bytes_ = plane_offset_[2] + static_cast<size_t>(linesize_[2]) * static_cast<size_t>(height / 2);
}

FramePool::~FramePool() {
    // Every frame holds the pool, so by now each buffer is back.
    for (uint8_t* b : all_) av_free(b);
}

size_t FramePool::in_use() const {
    std::lock_guard lock(mutex_);
    return all_.size() - free_.size();
}

std::shared_ptr<Frame> FramePool::acquire() {
    uint8_t* buffer = nullptr;
    {
        std::lock_guard lock(mutex_);
        if (!free_.empty()) {
            buffer = free_.back();
            free_.pop_back();
        } else if (all_.size() < capacity_) {
            buffer = static_cast<uint8_t*>(av_malloc(frame_bytes_));
            if (buffer == nullptr) return nullptr;
            all_.push_back(buffer);
        } else {
            return nullptr;
        }
    }
    auto* frame = new Frame;
    frame->width = width_;
    frame->height = height_;
    for (int p = 0; p < 3; ++p) {
        frame->data[p] = buffer + plane_offset_[p];
        frame->linesize[p] = linesize_[p];
    }
    std::shared_ptr<FramePool> self = shared_from_this();
    return std::shared_ptr<Frame>(frame, [self, buffer](Frame* f) {
        delete f;
        self->release(buffer);
    });
}

void FramePool::release(uint8_t* buffer) {
    std::lock_guard lock(mutex_);
    free_.push_back(buffer);
}

}  // namespace pilogger::camera

#include "preview.hpp"

#include "av_util.hpp"

#include <cmath>

namespace pilogger::camera {

std::string PreviewPublisher::default_name(const std::string& module) { return preview_default_name(module); }

PreviewPublisher::PreviewPublisher(std::string shm_name, int width, int height, bool gray, double fps)
    : shm_(std::move(shm_name), static_cast<uint32_t>(width), static_cast<uint32_t>(height),
           gray ? kPreviewGray8 : kPreviewRgb24),
      width_(width),
      height_(height),
      gray_(gray) {
    period_ns_ = fps > 0 ? std::llround(1e9 / fps) : INT64_MAX;
    scratch_.resize(shm_.frame_bytes());
    thread_ = std::thread([this] { run(); });
}

PreviewPublisher::~PreviewPublisher() {
    {
        std::lock_guard lock(mutex_);
        quit_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void PreviewPublisher::offer(const FramePtr& frame) {
    if (frame->time_ns < next_due_ns_) return;
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock() || pending_) return;  // the scaler is busy: skip this one
    pending_ = frame;
    // Keep to the preview rate without drifting; after a gap, start again from this frame.
    next_due_ns_ = std::max(next_due_ns_ + period_ns_, frame->time_ns + period_ns_ / 2);
    lock.unlock();
    wake_.notify_one();
}

void PreviewPublisher::run() {
    while (true) {
        FramePtr frame;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return quit_ || pending_; });
            if (quit_) return;
            frame = pending_;
        }
        publish(*frame);
        {
            // Let the pool have the buffer back before taking the next one.
            std::lock_guard lock(mutex_);
            pending_.reset();
        }
        frame.reset();
    }
}

void PreviewPublisher::publish(const Frame& frame) {
    // Cached: rebuilt only if the camera's frame size changes.
    sws_.reset(sws_getCachedContext(sws_.release(), frame.width, frame.height, AV_PIX_FMT_YUV420P, width_, height_,
                                    gray_ ? AV_PIX_FMT_GRAY8 : AV_PIX_FMT_RGB24, SWS_BILINEAR, nullptr, nullptr,
                                    nullptr));
    if (!sws_) return;
    // Scaled in scratch first: the seqlock bracket is one short copy.
    uint8_t* dst[4] = {scratch_.data(), nullptr, nullptr, nullptr};
    int dst_stride[4] = {static_cast<int>(shm_.stride()), 0, 0, 0};
    sws_scale(sws_.get(), frame.data, frame.linesize, 0, frame.height, dst, dst_stride);
    shm_.publish(scratch_.data(), frame.time_ns, frame.sequence);
    ++published_;
}

}  // namespace pilogger::camera

// The libcamera backend: CSI cameras through the Pi's ISP and USB (UVC) cameras.
//
// Buffers are allocated and mmapped once. Every completed request is copied (or converted, or
// decoded) into a pooled YUV420 frame and re-queued at once, so the encoder queue never holds the
// camera's buffers. Cancelled requests and silence are handled by restarting the camera; frames
// without FrameSuccess and gaps in the sensor's sequence are counted as lost.
#include "clock.hpp"
#include "frame_source.hpp"
#include "libcamera_cameras.hpp"
#include "libcamera_frames.hpp"

#include <libcamera/control_ids.h>
#include <libcamera/controls.h>
#include <libcamera/formats.h>
#include <libcamera/framebuffer_allocator.h>
#include <libcamera/request.h>
#include <libcamera/stream.h>
#if PILOGGER_LIBCAMERA_AT_LEAST(0, 2)
#include <libcamera/orientation.h>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace pilogger::camera {

namespace {

class LibcameraSource : public FrameSource {
public:
    LibcameraSource(const CameraSettings& settings, std::string name) : settings_(settings), name_(std::move(name)) {
        period_ns_ = settings_.frame_period_ns();
    }
    ~LibcameraSource() override { stop(); }

    SourceInfo start(FrameSink& sink) override {
        stop();
        sink_ = &sink;
        quit_ = false;
        std::promise<SourceInfo> ready;
        std::future<SourceInfo> result = ready.get_future();
        thread_ = std::thread([this, ready = std::move(ready)]() mutable { thread_main(ready); });
        try {
            return result.get();
        } catch (...) {
            thread_.join();  // the thread has cleaned up and ended
            throw;
        }
    }

    void stop() override {
        {
            std::lock_guard lock(mutex_);
            quit_ = true;
        }
        wake_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

    nlohmann::json stats() const override {
        return {{"camera_id", camera_id()},
                {"failed_frames", failed_frames_.load()},
                {"sequence_gaps", sequence_gap_frames_.load()},
                {"camera_restarts", restarts_.load()}};
    }

private:
    // ---- the camera thread ----

    void thread_main(std::promise<SourceInfo>& ready) {
        SourceInfo info;
        try {
            quiet_libcamera_logs();
            manager_ = std::make_unique<lc::CameraManager>();
            int rc = manager_->start();
            if (rc < 0) {
                throw std::runtime_error("libcamera " + libcamera_version() + " would not start: " + std::strerror(-rc));
            }
            info = open_camera(find_camera(sorted_cameras(*manager_), settings_.camera));
            start_streaming();
        } catch (...) {
            close_camera();
            if (manager_) manager_->stop();
            manager_.reset();
            ready.set_exception(std::current_exception());
            return;
        }
        ready.set_value(info);
        run();
        close_camera();
        manager_->stop();
        manager_.reset();
    }

    void run() {
        int64_t retry_at_ns = 0;
        while (true) {
            std::deque<lc::Request*> batch;
            bool disconnected = false;
            {
                std::unique_lock lock(mutex_);
                wake_.wait_for(lock, std::chrono::milliseconds(100),
                               [this] { return quit_ || disconnected_ || !completed_.empty(); });
                if (quit_) return;
                batch.swap(completed_);
                disconnected = std::exchange(disconnected_, false);
            }
            if (disconnected) {
                warn("camera " + camera_id() + " was disconnected; waiting for it to come back");
                close_camera();
                retry_at_ns = mono_ns();
                continue;
            }
            for (lc::Request* request : batch) {
                if (!process(request)) break;  // the camera was restarted: the rest is stale
            }
            const int64_t now = mono_ns();
            if (!camera_ && now >= retry_at_ns) {
                // Disconnected (or a restart failed): look for the same camera again once a second.
                retry_at_ns = now + 1'000'000'000;
                reopen();
            } else if (streaming_ && now - last_completion_ns_ > timeout_ns()) {
                restart("no frame for " + std::to_string((now - last_completion_ns_) / 1'000'000) + " ms");
            }
        }
    }

    std::string camera_id() const {
        std::lock_guard lock(id_mutex_);
        return camera_id_;
    }

    int64_t timeout_ns() const { return std::max<int64_t>(2'000'000'000, 10 * period_ns_); }

    void warn(const std::string& message) { sink_->on_source_warning(message); }

    SourceInfo open_camera(std::shared_ptr<lc::Camera> camera) {
        camera_ = std::move(camera);
        {
            std::lock_guard lock(id_mutex_);
            camera_id_ = camera_->id();
        }
        if (camera_->acquire() < 0) {
            std::string id = camera_->id();
            camera_.reset();
            throw std::runtime_error("camera " + id + " is busy: another program (rpicam-*, another pilogger-camera) uses it");
        }
        acquired_ = true;
        camera_->requestCompleted.connect(this, &LibcameraSource::request_completed);
        camera_->disconnected.connect(this, &LibcameraSource::camera_disconnected);

        std::vector<lc::StreamRole> roles{lc::StreamRole::VideoRecording};
        config_ = camera_->generateConfiguration(roles);
        if (!config_ || config_->empty()) throw std::runtime_error("camera " + camera_->id() + " cannot record video");
        lc::StreamConfiguration& stream_config = config_->at(0);
        const lc::PixelFormat wanted_format = lc::PixelFormat::fromString(settings_.pixel_format);
        stream_config.pixelFormat = wanted_format;
        stream_config.size = lc::Size(static_cast<unsigned>(settings_.width), static_cast<unsigned>(settings_.height));
        stream_config.bufferCount = static_cast<unsigned>(settings_.buffer_count);
        apply_flips();
        const std::string asked = stream_config.toString();
        lc::CameraConfiguration::Status status = config_->validate();
        if (status == lc::CameraConfiguration::Invalid) {
            throw std::runtime_error("camera " + camera_->id() + " cannot do " + asked);
        }
        if (status == lc::CameraConfiguration::Adjusted) {
            warn("camera " + camera_->id() + " cannot do " + asked + "; it gives " + stream_config.toString());
        }
        if (stream_config.size.width % 2 != 0 || stream_config.size.height % 2 != 0) {
            throw std::runtime_error("camera " + camera_->id() + " gives an odd frame size " + stream_config.size.toString());
        }
        if (camera_->configure(config_.get()) < 0) {
            throw std::runtime_error("camera " + camera_->id() + " refused the configuration " + stream_config.toString());
        }
        stream_ = stream_config.stream();
        const int width = static_cast<int>(stream_config.size.width);
        const int height = static_cast<int>(stream_config.size.height);
        converter_ = std::make_unique<FrameConverter>(stream_config.pixelFormat, width, height, stream_config.stride);

        allocator_ = std::make_unique<lc::FrameBufferAllocator>(camera_);
        if (allocator_->allocate(stream_) < 0) {
            throw std::runtime_error("camera " + camera_->id() + ": cannot allocate " +
                                     std::to_string(settings_.buffer_count) + " buffers (too little CMA memory?)");
        }
        uint64_t cookie = 0;
        for (const auto& buffer : allocator_->buffers(stream_)) {
            mapped_[buffer.get()] = std::make_unique<MappedBuffer>(*buffer);
            std::unique_ptr<lc::Request> request = camera_->createRequest(cookie++);
            if (!request || request->addBuffer(stream_, buffer.get()) < 0) {
                throw std::runtime_error("camera " + camera_->id() + ": cannot make a capture request");
            }
            requests_.push_back(std::move(request));
        }
        if (!pool_ || pool_->width() != width || pool_->height() != height) {
            pool_ = FramePool::create(width, height, static_cast<size_t>(settings_.queue_frames) + 6);
        }

        SourceInfo info;
        info.description = camera_model(*camera_) + " (" + camera_->id() + ") " + stream_config.toString() + " at " +
                           std::to_string(settings_.fps) + " fps, libcamera " + libcamera_version();
        info.width = width;
        info.height = height;
        info.pixel_format = stream_config.pixelFormat.toString();
        // Frames from a decoded JPEG or a converted RGB format are BT.601 limited range after swscale.
        info.color = stream_config.pixelFormat == lc::formats::MJPEG || info.pixel_format.find("RGB") != std::string::npos ||
                             info.pixel_format.find("BGR") != std::string::npos
                         ? ColorInfo{false, AVCOL_SPC_SMPTE170M, AVCOL_PRI_BT709, AVCOL_TRC_IEC61966_2_1}
                         : color_info(stream_config.colorSpace);
        return info;
    }

    void apply_flips() {
        if (!settings_.hflip && !settings_.vflip) return;
#if PILOGGER_LIBCAMERA_AT_LEAST(0, 2)
        if (settings_.hflip && settings_.vflip) {
            config_->orientation = lc::Orientation::Rotate180;
        } else if (settings_.hflip) {
            config_->orientation = lc::Orientation::Rotate0Mirror;
        } else {
            config_->orientation = lc::Orientation::Rotate180Mirror;
        }
#else
        lc::Transform t = lc::Transform::Identity;
        if (settings_.hflip) t = t | lc::Transform::HFlip;
        if (settings_.vflip) t = t | lc::Transform::VFlip;
        config_->transform = t;
#endif
    }

    lc::ControlList start_controls() {
        const lc::ControlInfoMap& info = camera_->controls();
        lc::ControlList controls(info);
        auto has = [&](const lc::ControlId& id) { return info.count(&id) > 0; };
        if (has(lc::controls::FrameDurationLimits)) {
            const int64_t period_us = std::llround(1e6 / settings_.fps);
            const std::array<int64_t, 2> limits{period_us, period_us};
            controls.set(lc::controls::FrameDurationLimits, lc::Span<const int64_t, 2>(limits));
        } else {
            warn("camera " + camera_->id() + " cannot be told a frame rate; it runs at its own");
        }
        if (settings_.exposure_us > 0) {
            if (has(lc::controls::ExposureTime)) {
#if PILOGGER_LIBCAMERA_AT_LEAST(0, 5)
                if (has(lc::controls::ExposureTimeMode)) {
                    controls.set(lc::controls::ExposureTimeMode, lc::controls::ExposureTimeModeManual);
                }
#else
                if (has(lc::controls::AeEnable)) controls.set(lc::controls::AeEnable, false);
#endif
                controls.set(lc::controls::ExposureTime, static_cast<int32_t>(settings_.exposure_us));
            } else {
                warn("camera " + camera_->id() + " has no manual exposure; exposure_us is ignored");
            }
        }
        if (settings_.analogue_gain > 0) {
            if (has(lc::controls::AnalogueGain)) {
#if PILOGGER_LIBCAMERA_AT_LEAST(0, 5)
                if (has(lc::controls::AnalogueGainMode)) {
                    controls.set(lc::controls::AnalogueGainMode, lc::controls::AnalogueGainModeManual);
                }
#else
                if (has(lc::controls::AeEnable)) controls.set(lc::controls::AeEnable, false);
#endif
                controls.set(lc::controls::AnalogueGain, static_cast<float>(settings_.analogue_gain));
            } else {
                warn("camera " + camera_->id() + " has no manual gain; analogue_gain is ignored");
            }
        }
        if (settings_.af_mode != "default") {
            if (has(lc::controls::AfMode)) {
                int32_t mode = settings_.af_mode == "manual" ? lc::controls::AfModeManual
                               : settings_.af_mode == "auto" ? lc::controls::AfModeAuto
                                                             : lc::controls::AfModeContinuous;
                controls.set(lc::controls::AfMode, mode);
                if (settings_.af_mode == "manual" && has(lc::controls::LensPosition)) {
                    controls.set(lc::controls::LensPosition, static_cast<float>(settings_.lens_position));
                }
            } else {
                warn("camera " + camera_->id() + " has no autofocus; af_mode is ignored");
            }
        }
        return controls;
    }

    void start_streaming() {
        lc::ControlList controls = start_controls();
        int rc = camera_->start(&controls);
        if (rc < 0) throw std::runtime_error("camera " + camera_->id() + " would not start: " + std::strerror(-rc));
        streaming_ = true;
        have_sequence_ = false;
        for (auto& request : requests_) {
            request->reuse(lc::Request::ReuseBuffers);
            rc = camera_->queueRequest(request.get());
            if (rc < 0) throw std::runtime_error("camera " + camera_->id() + " refused a request: " + std::strerror(-rc));
        }
        // A sensor takes a moment to deliver its first frame.
        last_completion_ns_ = mono_ns() + 3'000'000'000;
    }

    void stop_streaming() {
        if (!streaming_) return;
        streaming_ = false;
        camera_->stop();  // returns every queued request, cancelled, through request_completed
        std::lock_guard lock(mutex_);
        completed_.clear();
    }

    void close_camera() {
        if (camera_ && streaming_) stop_streaming();
        requests_.clear();  // requests before the buffers they point to
        mapped_.clear();
        if (allocator_ && stream_ != nullptr) allocator_->free(stream_);
        allocator_.reset();
        config_.reset();
        stream_ = nullptr;
        if (camera_) {
            camera_->requestCompleted.disconnect(this);
            camera_->disconnected.disconnect(this);
            if (acquired_) camera_->release();
            camera_.reset();
        }
        acquired_ = false;
        std::lock_guard lock(mutex_);
        completed_.clear();
    }

    void restart(const std::string& why) {
        ++restarts_;
        warn("camera " + camera_id() + ": " + why + "; restarting it");
        stop_streaming();
        try {
            start_streaming();
        } catch (const std::exception& e) {
            warn(std::string("restart failed: ") + e.what() + "; opening the camera again");
            close_camera();  // run() reopens it
        }
    }

    void reopen() {
        const std::string id = camera_id();
        std::shared_ptr<lc::Camera> camera = manager_->get(id);
        if (!camera) return;
        try {
            open_camera(camera);
            start_streaming();
            warn("camera " + id + " is back");
        } catch (const std::exception& e) {
            warn(e.what());
            close_camera();
        }
    }

    // False when the camera was restarted (the other completed requests are stale).
    bool process(lc::Request* request) {
        if (!streaming_) return true;
        if (request->status() == lc::Request::RequestCancelled) {
            restart("a request was cancelled");
            return false;
        }
        last_completion_ns_ = mono_ns();
        lc::FrameBuffer* buffer = request->findBuffer(stream_);
        if (buffer == nullptr) return requeue(request);
        const lc::FrameMetadata& meta = buffer->metadata();
        if (meta.status != lc::FrameMetadata::FrameSuccess) {
            ++failed_frames_;
            sink_->on_frames_lost(1);
            return requeue(request);
        }

        // SensorTimestamp is CLOCK_BOOTTIME; map it onto CLOCK_MONOTONIC with a fresh offset.
        const int64_t sensor_ns = request->metadata().get(lc::controls::SensorTimestamp).value_or(static_cast<int64_t>(meta.timestamp));
        const int64_t now = mono_ns();
        if (now - offset_read_ns_ > 1'000'000'000) {
            ClockTriple t = read_clock_triple();
            boot_minus_mono_ns_ = t.boottime_ns - t.mono_ns;
            offset_read_ns_ = now;
        }
        const int64_t time_ns = sensor_ns - boot_minus_mono_ns_;

        uint64_t lost = 0;
        if (have_sequence_) {
            if (meta.sequence > last_sequence_ + 1) lost = meta.sequence - last_sequence_ - 1;
        } else if (last_time_ns_ > 0 && time_ns > last_time_ns_) {
            // After a restart the sequence starts again: estimate the gap from the timestamps.
            const int64_t periods = (time_ns - last_time_ns_ + period_ns_ / 2) / period_ns_;
            if (periods > 1) lost = static_cast<uint64_t>(periods - 1);
        }
        have_sequence_ = true;
        last_sequence_ = meta.sequence;
        if (lost > 0) {
            sequence_gap_frames_ += lost;
            sink_->on_frames_lost(lost);
        }

        std::shared_ptr<Frame> frame = pool_->acquire();
        bool converted = frame && converter_->convert(*mapped_.at(buffer), meta, *frame);
        auto exposure = request->metadata().get(lc::controls::ExposureTime);
        // The buffer is ours no longer: back to the camera before anything else.
        if (!requeue(request)) return false;
        if (!converted) {
            ++failed_frames_;
            sink_->on_frames_lost(1);
            return true;
        }
        last_time_ns_ = time_ns;
        frame->sequence = frame_counter_++;
        frame->sensor_ns = sensor_ns;
        frame->time_ns = time_ns;
        frame->mono_ns = time_ns;
        frame->exposure_us = exposure ? *exposure : -1;
        sink_->on_frame(std::move(frame));
        return true;
    }

    bool requeue(lc::Request* request) {
        request->reuse(lc::Request::ReuseBuffers);
        int rc = camera_->queueRequest(request);
        if (rc < 0) {
            restart(std::string("re-queueing a request failed: ") + std::strerror(-rc));
            return false;
        }
        return true;
    }

    // ---- libcamera's thread: hand over, never work here ----

    void request_completed(lc::Request* request) {
        {
            std::lock_guard lock(mutex_);
            completed_.push_back(request);
        }
        wake_.notify_one();
    }

    void camera_disconnected() {
        {
            std::lock_guard lock(mutex_);
            disconnected_ = true;
        }
        wake_.notify_one();
    }

    CameraSettings settings_;
    std::string name_;
    int64_t period_ns_ = 33'333'333;
    FrameSink* sink_ = nullptr;
    std::thread thread_;

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<lc::Request*> completed_;
    bool quit_ = false;
    bool disconnected_ = false;

    // The camera thread's own state.
    std::unique_ptr<lc::CameraManager> manager_;
    std::shared_ptr<lc::Camera> camera_;
    bool acquired_ = false;
    bool streaming_ = false;
    std::unique_ptr<lc::CameraConfiguration> config_;
    std::unique_ptr<lc::FrameBufferAllocator> allocator_;
    lc::Stream* stream_ = nullptr;
    std::vector<std::unique_ptr<lc::Request>> requests_;
    std::map<const lc::FrameBuffer*, std::unique_ptr<MappedBuffer>> mapped_;
    std::unique_ptr<FrameConverter> converter_;
    std::shared_ptr<FramePool> pool_;
    int64_t last_completion_ns_ = 0;
    int64_t boot_minus_mono_ns_ = 0;
    int64_t offset_read_ns_ = INT64_MIN / 2;
    bool have_sequence_ = false;
    uint64_t last_sequence_ = 0;
    int64_t last_time_ns_ = 0;
    uint64_t frame_counter_ = 0;

    mutable std::mutex id_mutex_;
    std::string camera_id_;
    std::atomic<uint64_t> failed_frames_{0};
    std::atomic<uint64_t> sequence_gap_frames_{0};
    std::atomic<uint64_t> restarts_{0};
};

}  // namespace

std::unique_ptr<FrameSource> make_libcamera_source(const CameraSettings& settings, const std::string& name) {
    return std::make_unique<LibcameraSource>(settings, name);
}

}  // namespace pilogger::camera

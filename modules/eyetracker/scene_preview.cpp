#include "scene_preview.hpp"

#include "preview_shm.hpp"
#include "scene_av.hpp"

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

namespace pilogger::neon {

namespace {
// A gaze sample further than this from the frame's instant is not shown with it.
constexpr int64_t kGazeMaxAgeNs = 500'000'000;

// A preview side in pixels, checked before the shared memory is sized from it (the GUI reads up
// to 8192).
uint32_t preview_side(int pixels, const std::string& shm_name) {
    if (pixels <= 0 || pixels > 8192) {
        throw std::invalid_argument("scene preview " + shm_name + ": size " + std::to_string(pixels) +
                                    " is outside 1..8192");
    }
    return static_cast<uint32_t>(pixels);
}
}  // namespace

struct ScenePreview::Impl {
    struct GazeSample {
        float x_px = 0.0f;
        float y_px = 0.0f;
        int64_t mono_ns = 0;  // 0: none
    };
    // One keyframe for the worker.
    struct Job {
        std::string annexb;
        int64_t mono_ns = 0;
        uint64_t index = 0;
        GazeSample gaze;
    };

    Impl(std::string shm_name, int preview_width, int preview_height, double fps, std::string sets)
        : shm(shm_name, preview_side(preview_width, shm_name), preview_side(preview_height, shm_name), kPreviewRgb24,
              kPreviewGazeHeaderBytes),
          width(preview_width),
          height(preview_height),
          period_ns(fps > 0 ? std::llround(1e9 / fps) : INT64_MAX),
          parameter_sets(std::move(sets)),
          // Keyframes only, one at a time: no frame threads (they would hold a keyframe back
          // until the next ones arrive) and no reordering wait.
          decoder(open_h264_decoder("scene preview " + shm.name(), 1, true)),
          frame(av_frame_alloc()) {
        if (!frame) throw std::runtime_error("scene preview " + shm.name() + ": out of memory for frames");
        // Inter frames are not even handed over (offer() keeps keyframes only); this makes sure.
        decoder->skip_frame = AVDISCARD_NONKEY;
        rgb.resize(shm.frame_bytes());
        thread = std::thread([this] { run(); });
    }

    ~Impl() {
        {
            std::lock_guard lock(mutex);
            quit = true;
        }
        wake.notify_all();
        if (thread.joinable()) thread.join();
    }

    // Loop thread.
    void offer(const AccessUnit& unit, int64_t mono_ns) {
        const uint64_t index = offered++;
        // An IDR frame decodes on its own: a keyframe a second is a preview at a fraction of
        // the cost of decoding every frame.
        if (!unit.keyframe || unit.damaged || mono_ns < next_due_ns) return;
        std::unique_lock lock(mutex, std::try_to_lock);
        if (!lock.owns_lock() || job) return;  // the worker is busy: skip this one
        Job next;
        next.annexb.reserve(unit.annexb.size() + parameter_sets.size());
        if (!unit.has_sps_pps) next.annexb.append(parameter_sets);
        next.annexb.append(unit.annexb);
        next.mono_ns = mono_ns;
        next.index = index;
        next.gaze = gaze;
        job = std::move(next);
        next_due_ns = std::max(next_due_ns + period_ns, mono_ns + period_ns / 2);
        lock.unlock();
        wake.notify_one();
    }

    void run() {
        while (true) {
            Job current;
            {
                std::unique_lock lock(mutex);
                wake.wait(lock, [this] { return quit || job.has_value(); });
                if (quit) return;
                current = std::move(*job);
            }
            publish(current);
            {
                std::lock_guard lock(mutex);
                job.reset();
            }
        }
    }

    // Worker thread.
    void publish(const Job& current) {
        AvPacketPtr packet = packet_copy_of(current.annexb);
        if (!packet) return;
        packet->flags |= AV_PKT_FLAG_KEY;
        if (avcodec_send_packet(decoder.get(), packet.get()) < 0) return;  // damaged: the next keyframe will do
        while (avcodec_receive_frame(decoder.get(), frame.get()) == 0) {
            sws.reset(sws_getCachedContext(sws.release(), frame->width, frame->height,
                                           static_cast<AVPixelFormat>(frame->format), width, height, AV_PIX_FMT_RGB24,
                                           SWS_BILINEAR, nullptr, nullptr, nullptr));
            if (sws) {
                uint8_t* dst[4] = {rgb.data(), nullptr, nullptr, nullptr};
                int dst_stride[4] = {static_cast<int>(shm.stride()), 0, 0, 0};
                sws_scale(sws.get(), frame->data, frame->linesize, 0, frame->height, dst, dst_stride);
                const PreviewGaze shown = normalised(current.gaze, current.mono_ns, frame->width, frame->height);
                shm.publish(rgb.data(), current.mono_ns, current.index, &shown);
                ++published;
            }
            av_frame_unref(frame.get());
        }
    }

    // Scene pixels to 0..1 of the scene; none when there is no sample near the frame's instant.
    static PreviewGaze normalised(const GazeSample& g, int64_t frame_mono_ns, int scene_width, int scene_height) {
        if (g.mono_ns == 0 || scene_width <= 0 || scene_height <= 0 || !std::isfinite(g.x_px) ||
            !std::isfinite(g.y_px) || std::llabs(g.mono_ns - frame_mono_ns) > kGazeMaxAgeNs) {
            return PreviewGaze{0.0f, 0.0f, 0};
        }
        return PreviewGaze{g.x_px / static_cast<float>(scene_width), g.y_px / static_cast<float>(scene_height), g.mono_ns};
    }

    PreviewShm shm;
    int width;
    int height;
    int64_t period_ns;
    std::string parameter_sets;

    // Loop thread only.
    int64_t next_due_ns = 0;
    uint64_t offered = 0;
    GazeSample gaze;

    // Worker thread only.
    AvCodecContextPtr decoder;
    AvFramePtr frame;
    SwsContextPtr sws;
    std::vector<uint8_t> rgb;

    std::mutex mutex;
    std::condition_variable wake;
    std::optional<Job> job;
    bool quit = false;
    std::atomic<uint64_t> published{0};
    std::thread thread;  // last: starts after everything above exists
};

ScenePreview::ScenePreview(std::string shm_name, int width, int height, double fps, std::string parameter_sets_annexb)
    : impl_(std::make_unique<Impl>(std::move(shm_name), width, height, fps, std::move(parameter_sets_annexb))) {}

ScenePreview::~ScenePreview() = default;

void ScenePreview::offer(const AccessUnit& unit, int64_t mono_ns) { impl_->offer(unit, mono_ns); }

void ScenePreview::set_gaze(float x_px, float y_px, int64_t mono_ns) { impl_->gaze = {x_px, y_px, mono_ns}; }

const std::string& ScenePreview::name() const { return impl_->shm.name(); }

uint64_t ScenePreview::published() const { return impl_->published.load(); }

}  // namespace pilogger::neon

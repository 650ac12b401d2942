#include "scene_worker.hpp"

#include "fmp4_writer.hpp"
#include "h264.hpp"

#include <cerrno>
#include <stdexcept>
#include <utility>

namespace pilogger::neon {

namespace {

// The Neon's scene rate: the nominal duration of the last sample of a file.
constexpr int kSceneFps = 30;
constexpr int kFragmentMs = 1000;

}  // namespace

SceneWorker::SceneWorker(SceneWorkerConfig config, LoopQueue<SceneWorkerOutput>& outputs)
    : config_(std::move(config)), time_base_{1, static_cast<int>(config_.rtp_clock_rate)}, outputs_(outputs) {
    if (config_.overlay) {
        transcoder_ = std::make_unique<OverlayTranscoder>(config_.path, time_base_, config_.overlay_preset,
                                                          config_.overlay_crf);
    }
    thread_ = std::thread([this] { run(); });
}

SceneWorker::~SceneWorker() {
    {
        std::lock_guard lock(mutex_);
        quit_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

bool SceneWorker::push(SceneWorkItem item, size_t max_items) {
    {
        std::lock_guard lock(mutex_);
        if (!item.finish && queue_.size() >= max_items) return false;
        queued_bytes_ += item.annexb.size();
        queue_.push_back(std::move(item));
    }
    wake_.notify_all();
    return true;
}

void SceneWorker::release_through(uint64_t frames) {
    {
        std::lock_guard lock(mutex_);
        if (frames <= released_) return;
        released_ = frames;
    }
    wake_.notify_all();
}

int SceneWorker::wait_for_rows(uint64_t frames) {
    std::unique_lock lock(mutex_);
    wake_.wait(lock, [&] { return quit_ || released_ >= frames; });
    return quit_ ? ECANCELED : 0;
}

void SceneWorker::run() {
    std::string fatal;
    while (true) {
        SceneWorkItem item;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return quit_ || !queue_.empty(); });
            if (quit_) return;
            item = std::move(queue_.front());
            queue_.pop_front();
        }
        queued_bytes_ -= item.annexb.size();
        if (item.finish) {
            SceneWorkerOutput out;
            out.kind = SceneWorkerOutput::Kind::finished;
            out.text = fatal;
            if (!failed_) {
                try {
                    finish();
                } catch (const std::exception& e) {
                    out.text = e.what();
                }
            }
            outputs_.post(std::move(out));
            return;
        }
        if (failed_) continue;
        try {
            handle(item);
        } catch (const std::exception& e) {
            // The file keeps its complete fragments; the rest of the trial goes nowhere.
            failed_ = true;
            fatal = e.what();
            mp4_.reset();
            SceneWorkerOutput out;
            out.kind = SceneWorkerOutput::Kind::fatal;
            out.text = fatal;
            outputs_.post(std::move(out));
        }
    }
}

void SceneWorker::handle(SceneWorkItem& item) {
    if (config_.overlay) {
        overlay(item);
    } else {
        pass_through(item);
    }
}

void SceneWorker::pass_through(SceneWorkItem& item) {
    if (!mp4_) {
        open_file(*media::h264_stream_parameters(config_.path, item.parameter_sets, item.annexb));
    }
    const bool keyframe = item.keyframe;
    AvPacketPtr packet = media::packet_taking(std::move(item.annexb));
    if (!packet) throw std::runtime_error(config_.path + ": out of memory for a packet");
    packet->pts = packet->dts = item.pts;
    if (keyframe) packet->flags |= AV_PKT_FLAG_KEY;
    mux(*packet);
}

void SceneWorker::mux(AVPacket& packet) {
    mp4_->write(packet);
    syncs_ = mp4_->syncs();
}

void SceneWorker::overlay(SceneWorkItem& item) {
    if (need_keyframe_ && !item.keyframe) {
        ++dropped_;
        return;
    }
    const int rc = transcoder_->send(item.annexb, item.pts, item.keyframe);
    if (rc < 0) {
        ++dropped_;
        need_keyframe_ = true;
        warn("cannot decode the frame at pts " + std::to_string(item.pts) + ": " + av_error_text(rc) +
             "; skipping to the next keyframe");
        return;
    }
    need_keyframe_ = false;
    pending_.push_back({item.pts, item.device_time_ns, item.mono_ns, item.intact, item.gaze});
    overlay_pictures();
}

void SceneWorker::open_overlay_file() {
    AvCodecParametersPtr params(avcodec_parameters_alloc());
    if (!params) throw std::runtime_error(config_.path + ": out of memory");
    const int rc = avcodec_parameters_from_context(params.get(), transcoder_->encoder());
    if (rc < 0) throw std::runtime_error(config_.path + ": encoder parameters: " + av_error_text(rc));
    open_file(*params);
}

void SceneWorker::open_file(const AVCodecParameters& params) {
    media::Fmp4Options options;
    options.fragment_ms = kFragmentMs;
    // The track counts in the RTP clock: every pts exact.
    options.track_timescale = static_cast<int>(config_.rtp_clock_rate);
    options.default_duration = config_.rtp_clock_rate / kSceneFps;
    mp4_ = std::make_unique<media::Fmp4Writer>(config_.path, params, time_base_, AVRational{kSceneFps, 1}, options,
                                               [this](uint64_t frames) { return wait_for_rows(frames); });
}

void SceneWorker::overlay_pictures() {
    const auto sink = [this](AVPacket& packet) {
        if (!mp4_) open_overlay_file();
        mux(packet);
    };
    while (true) {
        std::string error;
        const AVFrame* picture = transcoder_->receive(error);
        if (!error.empty()) warn(error);
        if (picture == nullptr) return;
        // Units the decoder swallowed (no picture) are dropped frames.
        while (!pending_.empty() && pending_.front().pts < picture->pts) {
            pending_.pop_front();
            ++dropped_;
        }
        if (pending_.empty() || pending_.front().pts != picture->pts) continue;
        const Pending p = pending_.front();
        pending_.pop_front();
        const AVCodecContext* encoder = transcoder_->encoder();
        if (encoder != nullptr && (picture->width != encoder->width || picture->height != encoder->height)) {
            ++dropped_;
            warn("the scene changed size to " + std::to_string(picture->width) + "x" + std::to_string(picture->height) +
                 " within one file; frame dropped");
            continue;
        }
        // The loop gives the picture its row before its packet can reach the file.
        SceneWorkerOutput out;
        out.kind = SceneWorkerOutput::Kind::frame;
        out.pts = p.pts;
        out.device_time_ns = p.device_time_ns;
        out.mono_ns = p.mono_ns;
        out.intact = p.intact;
        outputs_.post(std::move(out));
        transcoder_->encode(*picture, p.gaze, sink);
    }
}

void SceneWorker::finish() {
    if (transcoder_) {
        transcoder_->send_end();
        overlay_pictures();
        dropped_ += pending_.size();  // never came out of the decoder
        pending_.clear();
        transcoder_->flush([this](AVPacket& packet) {
            if (!mp4_) open_overlay_file();
            mux(packet);
        });
    }
    if (mp4_) {
        mp4_->finish();
        syncs_ = mp4_->syncs();
    }
}

void SceneWorker::warn(std::string text) {
    SceneWorkerOutput out;
    out.kind = SceneWorkerOutput::Kind::warning;
    out.text = std::move(text);
    outputs_.post(std::move(out));
}

}  // namespace pilogger::neon

#include "scene_writer.hpp"

#include "loop_queue.hpp"
#include "scene_av.hpp"
#include "scene_worker.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <utility>

namespace pilogger::neon {

namespace {

// Pass-through: the byte bound (max_pipe_bytes) decides, not the count.
constexpr size_t kMaxCopyUnits = SIZE_MAX;

}  // namespace

struct SceneWriter::Impl {
    Impl(uv::Loop& loop_ref, SceneWriterOptions opts, Callbacks cbs)
        : options(std::move(opts)), callbacks(std::move(cbs)), failed_timer(loop_ref), done_timer(loop_ref) {
        const std::string& path = options.output_path;
        if (path.empty()) throw std::runtime_error("scene video: no output path");
        if (options.rtp_clock_rate == 0 || options.rtp_clock_rate > 1'000'000'000u) {
            throw std::runtime_error(path + ": invalid RTP clock rate " + std::to_string(options.rtp_clock_rate));
        }
        // The worker creates the file (O_EXCL) with the first frame; say what is wrong right away.
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0) {
            throw std::runtime_error(path + " already exists; pilogger never overwrites a recording");
        }
        const std::filesystem::path folder = std::filesystem::path(path).parent_path();
        std::error_code ec;
        if (!folder.empty() && !std::filesystem::is_directory(folder, ec)) {
            throw std::runtime_error("cannot write " + path + ": the folder " + folder.string() + " does not exist");
        }
        outputs = std::make_unique<LoopQueue<SceneWorkerOutput>>(loop_ref, [this](SceneWorkerOutput& out) { on_output(out); });
        SceneWorkerConfig config;
        config.path = path;
        config.rtp_clock_rate = options.rtp_clock_rate;
        config.overlay = options.overlay;
        config.overlay_preset = options.overlay_preset;
        config.overlay_crf = options.overlay_crf;
        worker = std::make_unique<SceneWorker>(std::move(config), *outputs);
        if (!options.hold_until_released) release_through(UINT64_MAX);
    }

    // ---- frames ----
    // RTP timestamps unwrapped (they wrap every 13 h at 90 kHz) over every unit seen.
    int64_t unwrap(uint32_t rtp_timestamp) {
        if (!have_rtp) {
            have_rtp = true;
            position = 0;
        } else {
            position += static_cast<int32_t>(rtp_timestamp - last_rtp);
        }
        last_rtp = rtp_timestamp;
        return position;
    }

    bool drop(bool until_keyframe) {
        ++dropped;
        if (until_keyframe) need_keyframe = true;
        return false;
    }

    void warn_once(bool& said, const std::string& text) {
        if (said) return;
        said = true;
        log("warning", text);
    }

    void log(const std::string& level, const std::string& line) {
        if (callbacks.log) callbacks.log(level, line);
    }

    bool write(AccessUnit&& unit, const SceneFrameTimes& times) {
        const int64_t at = unwrap(unit.rtp_timestamp);
        if (stop_requested || failed) return drop(false);
        // A frame with lost packets, and every frame after it up to a whole keyframe, may show
        // artefacts where the decoder conceals what is missing.
        if (unit.damaged) {
            chain_intact = false;
            if (!options.keep_damaged) return drop(true);
            if (!has_slice(unit.annexb)) return drop(false);  // nothing of the picture came
        } else if (unit.keyframe) {
            chain_intact = true;
        }
        if (need_keyframe && !unit.keyframe) return drop(false);
        const bool intact = chain_intact;
        const int64_t pts = have_first ? at - first_position : 0;
        if (have_first && pts <= last_pts) {
            warn_once(said_non_increasing, options.output_path + ": a frame's RTP timestamp does not increase (" +
                                               std::to_string(unit.rtp_timestamp) + "); dropped until the next keyframe");
            return drop(true);
        }
        // Pass-through decides here; the overlay worker's queue decides there (raw frames need no
        // keyframe to resume, so its decoder sees every unit it can take).
        if (!options.overlay && backlog() > options.max_pipe_bytes) return drop(true);
        SceneWorkItem item;
        if (!parameter_sets_sent) {
            item.parameter_sets = unit.has_sps_pps ? parameter_sets_of(unit.annexb) : options.parameter_sets_annexb;
            if (item.parameter_sets.empty()) {
                warn_once(said_no_parameter_sets, options.output_path + ": no SPS/PPS in the SDP nor in the keyframe; " +
                                                      "waiting for a keyframe that carries them");
                return drop(true);
            }
            if (!unit.has_sps_pps) unit.annexb.insert(0, item.parameter_sets);
        }
        item.keyframe = unit.keyframe;
        item.annexb = std::move(unit.annexb);
        item.pts = pts;
        item.device_time_ns = times.device_time_ns;
        item.mono_ns = times.mono_ns;
        item.intact = intact;
        item.gaze = gaze;
        if (options.overlay) {
            if (!worker->push(std::move(item), options.overlay_queue_frames)) {
                warn_once(said_worker_behind, options.output_path + ": the overlay decoder falls behind; dropping frames "
                                                                    "until the next keyframe");
                return drop(true);
            }
        } else {
            hold_or_send(std::move(item), written + 1);
        }
        parameter_sets_sent = true;
        need_keyframe = false;
        if (!have_first) {
            have_first = true;
            first_position = at;
        }
        last_pts = pts;
        // Pass-through: the frame is on its way now; overlay: once the worker has decoded it.
        if (!options.overlay) frame_on_its_way(pts, times, intact);
        note_backlog();
        return true;
    }

    int64_t pts_us(int64_t pts) const {
        const auto rate = static_cast<int64_t>(options.rtp_clock_rate);
        return (pts * 1'000'000 + rate / 2) / rate;
    }

    void frame_on_its_way(int64_t pts, const SceneFrameTimes& times, bool intact) {
        const uint64_t index = written++;
        if (!intact) ++written_damaged;
        if (callbacks.frame_written) callbacks.frame_written(index, pts_us(pts), times, intact);
    }

    // ---- holding pass-through frames until their rows are on the disk ----
    void hold_or_send(SceneWorkItem&& item, uint64_t frames_after) {
        if (held.empty() && frames_after <= released) {
            worker->push(std::move(item), kMaxCopyUnits);
            return;
        }
        held_bytes += item.annexb.size();
        held.push_back(Held{frames_after, std::move(item)});
    }

    void release_through(uint64_t frames) {
        released = std::max(released, frames);
        while (!held.empty() && held.front().frames_after <= released) {
            held_bytes -= held.front().item.annexb.size();
            worker->push(std::move(held.front().item), kMaxCopyUnits);
            held.pop_front();
        }
        worker->release_through(released);
        note_backlog();
    }

    size_t backlog() const { return held_bytes + worker->queued_bytes(); }

    void note_backlog() { backlog_max = std::max(backlog_max, backlog()); }

    // ---- what the worker reports ----
    void on_output(SceneWorkerOutput& out) {
        switch (out.kind) {
        case SceneWorkerOutput::Kind::frame:
            if (!failed) frame_on_its_way(out.pts, SceneFrameTimes{out.device_time_ns, out.mono_ns}, out.intact);
            break;
        case SceneWorkerOutput::Kind::warning:
            log("warning", out.text);
            break;
        case SceneWorkerOutput::Kind::fatal:
            on_fatal(out.text);
            break;
        case SceneWorkerOutput::Kind::finished:
            on_finished(out.text);
            break;
        }
    }

    void on_fatal(const std::string& why) {
        if (failed) return;
        failed = true;
        failure = why + " (" + std::to_string(written) + " frames sent; " + options.output_path +
                  " keeps its complete fragments)";
        log("error", failure);
        lost += held.size();
        held.clear();
        held_bytes = 0;
        if (stop_requested) return;  // the finished report says it
        // From a timer: the owner may destroy this writer from inside the callback.
        failed_timer.start(0, 0, [this] {
            if (auto failed_cb = callbacks.failed) failed_cb(failure);
        });
    }

    void on_finished(const std::string& error) {
        const bool ok = error.empty() && !failed;
        std::string message;
        if (ok) {
            message = options.output_path + " finished: " + std::to_string(written) + " frames, " +
                      std::to_string(total_dropped()) + " dropped";
        } else {
            message = (failed ? failure : error) + " while finishing " + options.output_path;
            if (written == 0) message += " (no frame was written)";
        }
        done_timer.start(0, 0, [this, ok, message] {
            auto done_cb = std::move(done);
            done = nullptr;
            if (done_cb) done_cb(ok, message);
        });
    }

    // ---- stop ----
    void stop(std::function<void(bool, const std::string&)> done_cb) {
        if (stop_requested) {
            log("warning", options.output_path + ": stop() called again; the first call's callback reports");
            return;
        }
        stop_requested = true;
        done = std::move(done_cb);
        release_all();  // the owner has the rows of every frame on the disk
        SceneWorkItem finish;
        finish.finish = true;
        worker->push(std::move(finish), kMaxCopyUnits);
    }

    void release_all() { release_through(UINT64_MAX); }

    uint64_t total_dropped() const { return dropped + lost + worker->dropped(); }

    ~Impl() {
        worker.reset();  // joined before the queue it posts to goes away
    }

    SceneWriterOptions options;
    Callbacks callbacks;
    // Callbacks run from these, not from inside the worker's queue: the owner may destroy the
    // writer in them.
    uv::Timer failed_timer;
    uv::Timer done_timer;
    std::unique_ptr<LoopQueue<SceneWorkerOutput>> outputs;
    std::unique_ptr<SceneWorker> worker;
    Gaze gaze;

    // Pass-through frames waiting for release_through() (hold_until_released): each with the
    // number of frames the file holds once it is in.
    struct Held {
        uint64_t frames_after;
        SceneWorkItem item;
    };
    std::deque<Held> held;
    size_t held_bytes = 0;
    size_t backlog_max = 0;
    uint64_t released = 0;
    uint64_t lost = 0;  // accepted frames that never reached the worker (it had failed)

    // Timestamps.
    bool have_rtp = false;
    uint32_t last_rtp = 0;
    int64_t position = 0;
    bool have_first = false;
    int64_t first_position = 0;
    int64_t last_pts = -1;

    bool need_keyframe = true;
    bool chain_intact = true;  // no loss since the last whole keyframe
    bool parameter_sets_sent = false;
    bool said_non_increasing = false;
    bool said_no_parameter_sets = false;
    bool said_worker_behind = false;

    uint64_t written = 0;
    uint64_t written_damaged = 0;
    uint64_t dropped = 0;

    bool failed = false;
    std::string failure;
    bool stop_requested = false;
    std::function<void(bool, const std::string&)> done;
};

SceneWriter::SceneWriter(uv::Loop& loop, SceneWriterOptions options, Callbacks callbacks)
    : impl_(std::make_unique<Impl>(loop, std::move(options), std::move(callbacks))) {}

SceneWriter::~SceneWriter() = default;

bool SceneWriter::write(AccessUnit&& unit, const SceneFrameTimes& times) { return impl_->write(std::move(unit), times); }

void SceneWriter::set_gaze(float x_px, float y_px, bool valid) { impl_->gaze = Gaze{x_px, y_px, valid}; }

void SceneWriter::stop(std::function<void(bool ok, const std::string& message)> done) { impl_->stop(std::move(done)); }

uint64_t SceneWriter::frames_written() const { return impl_->written; }

uint64_t SceneWriter::frames_dropped() const { return impl_->total_dropped(); }

uint64_t SceneWriter::frames_damaged() const { return impl_->written_damaged; }

size_t SceneWriter::pipe_bytes() const { return impl_->backlog(); }

void SceneWriter::release_through(uint64_t frames) { impl_->release_through(frames); }

uint64_t SceneWriter::frames_held() const {
    // Pass-through: frames waiting here; overlay: frames whose rows the worker still waits for.
    if (!impl_->options.overlay) return impl_->held.size();
    return impl_->written > impl_->released ? impl_->written - impl_->released : 0;
}

uint64_t SceneWriter::output_syncs() const { return impl_->worker->syncs(); }

size_t SceneWriter::pipe_bytes_max() const { return impl_->backlog_max; }

const std::string& SceneWriter::output_path() const { return impl_->options.output_path; }

}  // namespace pilogger::neon

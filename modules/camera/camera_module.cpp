#include "camera_module.hpp"

#include "av_util.hpp"
#include "clock.hpp"
#include "paths.hpp"
#include "reconcile.hpp"
#include "snapshot.hpp"

#include <stdexcept>

namespace pilogger::camera {

namespace {
// A snapshot waits this long for a frame before it gives up.
constexpr uint64_t kSnapshotTimeoutMs = 3000;
// After the stop instant, a camera that delivers no later frame is closed anyway after this.
constexpr int64_t kStopGraceMs = 1000;
// A frames CSV or MP4 still open in another process is looked at again this often, this often.
constexpr uint64_t kReconcileRetryMs = 500;
constexpr int kReconcileAttempts = 40;

std::string video_of(const std::string& csv_path) {
    const std::string suffix = "_frames.csv";
    return csv_path.substr(0, csv_path.size() - suffix.size()) + ".mp4";
}
}  // namespace

CameraModule::CameraModule(ModuleRuntime& runtime) : runtime_(runtime), requests_(runtime.loop()) {
    // FFmpeg's informational lines (x264's banner and summary) would flood the module log.
    route_ffmpeg_log(AV_LOG_WARNING);
    events_ = std::make_unique<LoopQueue<Event>>(runtime_.loop(), [this](Event& e) { handle(e); });
    stop_timer_ = std::make_unique<uv::Timer>(runtime_.loop());
    snapshot_timer_ = std::make_unique<uv::Timer>(runtime_.loop());
    reconcile_timer_ = std::make_unique<uv::Timer>(runtime_.loop());
}

CameraModule::~CameraModule() {
    // finish() normally tore everything down; this is the last line of defence (threads joined
    // before the queue they post to goes away).
    pipeline_.reset();
    recording_.reset();
    events_.reset();
}

void CameraModule::off_loop(std::function<std::string()> work, std::function<void(const std::string&)> then) {
    ++off_loop_jobs_;
    requests_.work(std::move(work), [this, then = std::move(then)](const std::string& error) {
        --off_loop_jobs_;
        then(error);
        if (finishing_) continue_finish();
    });
}

std::unique_ptr<CameraModule::Pipeline> CameraModule::build_pipeline(const CameraSettings& settings) {
    auto p = std::make_unique<Pipeline>();
    p->settings = settings;
    LoopQueue<Event>* events = events_.get();
    p->recorder = std::make_unique<Recorder>(runtime_.name(), static_cast<size_t>(settings.queue_frames),
                                             [events](RecorderEvent&& e) { events->post(std::move(e)); });
    if (settings.preview_fps > 0) {
        try {
            p->preview = std::make_unique<PreviewPublisher>(PreviewPublisher::default_name(runtime_.name()),
                                                            settings.preview_width, settings.preview_height,
                                                            settings.preview_format == "gray", settings.preview_fps);
            if (!p->preview->warning().empty()) runtime_.log("warning", p->preview->warning());
        } catch (const std::exception& e) {
            // The recording matters more than the preview: carry on without it.
            runtime_.log("warning", std::string(e.what()) + "; no preview");
        }
    }
    FrameRouter::Hooks hooks;
    hooks.recorder = p->recorder.get();
    hooks.preview = p->preview.get();
    hooks.snapshot_frame = [events](FramePtr frame) { events->post(SnapshotEvent{std::move(frame)}); };
    hooks.warning = [events](const std::string& message) { events->post(WarningEvent{message}); };
    p->router = std::make_unique<FrameRouter>(std::move(hooks));
    if (settings.backend == "test_pattern") {
        p->source = make_test_pattern_source(settings);
    } else {
        p->source = make_libcamera_source(settings, runtime_.name());
    }
    return p;
}

// ---- lifecycle ----

void CameraModule::configure(const json& settings_json, Reply reply) {
    if (pipeline_busy_ || recording_) {
        reply.error(errc::kBadState, "the camera is busy starting, stopping or recording");
        return;
    }
    CameraSettings settings;
    try {
        settings = CameraSettings::from_json(settings_json);
    } catch (const std::exception& e) {
        reply.error(errc::kBadRequest, e.what());
        return;
    }
    if (pipeline_ && pipeline_->running && pipeline_->settings.to_json() == settings.to_json()) {
        reply.ok(json{{"camera", pipeline_->info.description}});
        return;
    }
    // The old pipeline (if any) stops first, so the new one never meets its camera or preview
    // object; both steps block and run on the thread pool.
    auto shared_reply = std::make_shared<Reply>(std::move(reply));
    if (!pipeline_) {
        start_pipeline(settings, shared_reply);
        return;
    }
    Pipeline* old = pipeline_.release();
    pipeline_busy_ = true;
    off_loop([old] { delete old; return std::string(); },
             [this, settings, shared_reply](const std::string&) {
                 pipeline_busy_ = false;
                 start_pipeline(settings, shared_reply);
             });
}

void CameraModule::start_pipeline(const CameraSettings& settings, const std::shared_ptr<Reply>& reply) {
    if (finishing_) {
        reply->error(errc::kBadState, "the camera is shutting down");
        return;
    }
    try {
        pipeline_ = build_pipeline(settings);
    } catch (const std::exception& e) {
        reply->error(errc::kInternal, e.what());
        return;
    }
    Pipeline* p = pipeline_.get();
    pipeline_busy_ = true;
    off_loop(
        [p] {
            p->info = p->source->start(*p->router);
            return std::string();
        },
        [this, p, reply](const std::string& error) {
            pipeline_busy_ = false;
            if (!error.empty()) {
                last_error_ = error;
                reply->error(errc::kInternal, error);
                // The failed source has no thread left; the recorder and preview are idle.
                Pipeline* failed = pipeline_.release();
                pipeline_busy_ = true;
                off_loop([failed] { delete failed; return std::string(); },
                         [this](const std::string&) { pipeline_busy_ = false; });
                return;
            }
            p->running = true;
            runtime_.log("info", "camera: " + p->info.description);
            reply->ok(json{{"camera", p->info.description},
                           {"width", p->info.width},
                           {"height", p->info.height},
                           {"preview_shm", p->preview ? p->preview->name() : ""}});
        });
}

void CameraModule::start_session(const SessionInfo& session, Reply reply) {
    std::string dir = session.session_dir + "/camera/" + runtime_.name();
    auto shared_reply = std::make_shared<Reply>(std::move(reply));
    // Files already there were written by an earlier process of this camera (this one was
    // restarted into the session): listed now, before this process records anything.
    auto earlier = std::make_shared<std::vector<std::string>>();
    off_loop(
        [dir, earlier] {
            std::string error = create_directories(dir);
            if (error.empty()) *earlier = list_frame_csvs(dir, "_frames.csv");
            return error;
        },
        [this, dir, shared_reply, earlier](const std::string& error) {
            if (!error.empty()) {
                shared_reply->error(errc::kIoError, error);
                return;
            }
            camera_dir_ = dir;
            shared_reply->ok(json{{"dir", dir}});
            if (!earlier->empty()) reconcile(std::move(*earlier));
        });
}

void CameraModule::reconcile(std::vector<std::string> csv_paths, int attempt) {
    auto paths = std::make_shared<std::vector<std::string>>(std::move(csv_paths));
    auto results = std::make_shared<std::vector<ReconcileResult>>();
    off_loop(
        [paths, results] {
            for (const std::string& csv : *paths) results->push_back(reconcile_frames_csv(video_of(csv), csv));
            return std::string();
        },
        [this, paths, results, attempt](const std::string&) {
            std::vector<std::string> busy =
                report_reconciled(*paths, *results, rows_moved_unwritten_, [this](bool is_error, const std::string& m) {
                    runtime_.log(is_error ? "error" : "warning", m);
                });
            if (busy.empty()) return;
            if (finishing_ || attempt + 1 >= kReconcileAttempts) {
                for (const std::string& csv : busy) {
                    runtime_.log("warning", csv + " is still open in another process; its rows were not matched to " +
                                                video_of(csv));
                }
                return;
            }
            reconcile_waiting_.insert(reconcile_waiting_.end(), busy.begin(), busy.end());
            reconcile_timer_->start(kReconcileRetryMs, 0,
                                    [this, attempt] { reconcile(std::exchange(reconcile_waiting_, {}), attempt + 1); });
        });
}

void CameraModule::start_recording(const RecordingInfo& rec, Reply reply) {
    if (!pipeline_ || !pipeline_->running) {
        reply.error(errc::kBadState, "the camera is not running" +
                                         (last_error_.empty() ? "" : " (" + last_error_ + ")"));
        return;
    }
    if (recording_) {
        reply.error(errc::kBadState, "still finishing the previous recording");
        return;
    }
    if (camera_dir_.empty()) {
        reply.error(errc::kBadState, "no session is open");
        return;
    }
    recording_ = std::make_unique<Recording>();
    Recording& r = *recording_;
    r.generation = ++generation_;
    r.info = rec;
    const std::string stem = trial_file_stem(rec.trial, rec.part);
    r.video_path = camera_dir_ + "/" + stem + ".mp4";
    r.csv_path = camera_dir_ + "/" + stem + "_frames.csv";
    r.start_reply = std::move(reply);

    RecordingRequest request;
    request.generation = r.generation;
    request.video_path = r.video_path;
    request.csv_path = r.csv_path;
    request.start_at_ns = rec.start_at_mono_ns;
    request.width = pipeline_->info.width;
    request.height = pipeline_->info.height;
    request.color = pipeline_->info.color;
    request.settings = pipeline_->settings;
    // The recorder opens the files first; frames from start_at on queue up behind that.
    pipeline_->recorder->open(std::move(request));
    pipeline_->router->arm(r.generation, rec.start_at_mono_ns);
}

void CameraModule::stop_recording(int64_t stop_at_mono_ns, Reply reply) {
    if (!recording_) {
        reply.ok(json{{"frames", 0}});
        return;
    }
    begin_stop(stop_at_mono_ns, std::move(reply));
}

void CameraModule::begin_stop(int64_t stop_at_ns, Reply reply) {
    Recording& r = *recording_;
    r.stop_reply = std::move(reply);
    if (r.stopping) return;
    r.stopping = true;
    pipeline_->router->set_stop(stop_at_ns);
    // Normally the first frame at or after stop_at closes the file; a stalled camera must not
    // hold the stop forever.
    const int64_t wait_ms = std::max<int64_t>(0, (stop_at_ns - mono_ns()) / 1'000'000) + kStopGraceMs +
                            2 * pipeline_->settings.frame_period_ns() / 1'000'000;
    stop_timer_->start(static_cast<uint64_t>(wait_ms), 0, [this] {
        if (pipeline_ && pipeline_->router->close_now()) {
            runtime_.log("warning", "no frame after the stop instant; closing the file anyway");
        }
    });
}

void CameraModule::stop_session(Reply reply) {
    camera_dir_.clear();
    fail_snapshots(errc::kBadState, "the session stopped before a frame came");
    reply.ok();
}

// ---- events from the threads ----

void CameraModule::handle(Event& event) {
    if (auto* r = std::get_if<RecorderEvent>(&event)) {
        on_recorder(*r);
    } else if (auto* w = std::get_if<WarningEvent>(&event)) {
        runtime_.log("warning", w->message);
    } else if (auto* s = std::get_if<SnapshotEvent>(&event)) {
        on_snapshot_frame(std::move(s->frame));
    }
}

void CameraModule::on_recorder(RecorderEvent& e) {
    if (!recording_ || e.generation != recording_->generation) return;
    Recording& r = *recording_;
    switch (e.kind) {
        case RecorderEvent::Kind::Opened: {
            if (!e.ok) {
                pipeline_->router->disarm();
                last_error_ = e.text;
                runtime_.log("error", e.text);
                Reply reply = std::move(r.start_reply);
                recording_.reset();
                reply.error(errc::kIoError, e.text);
                if (finishing_) continue_finish();
                return;
            }
            r.opened = true;
            runtime_.log("info", "recording trial " + std::to_string(r.info.trial) + " into " + r.video_path);
            r.start_reply.ok(json{{"video", r.video_path}, {"frames_csv", r.csv_path}});
            if (finishing_) continue_finish();
            return;
        }
        case RecorderEvent::Kind::Failed:
            r.error = e.text;
            last_error_ = e.text;
            runtime_.log("error", e.text + "; the rest of this trial is not recorded");
            return;
        case RecorderEvent::Kind::Closed:
            recording_closed(e);
            return;
    }
}

void CameraModule::recording_closed(RecorderEvent& e) {
    stop_timer_->stop();
    Recording* r = recording_.get();
    if (!e.ok && r->error.empty()) {
        r->error = e.text;
        last_error_ = e.text;
        runtime_.log("error", e.text);
    }
    json result{{"video", r->video_path},
                {"frames_csv", r->csv_path},
                {"frames", e.frames},
                {"video_bytes", e.bytes},
                {"dropped", pipeline_ ? pipeline_->router->stats(mono_ns()).trial_dropped : 0}};
    if (!r->error.empty()) result["error"] = r->error;
    Reply reply = std::move(r->stop_reply);
    runtime_.log("info", "closed " + r->video_path + " (" + std::to_string(e.frames) + " frames)");
    // A write that failed (a full disk) can leave the rows of a fragment that never made it.
    if (!r->error.empty()) reconcile({r->csv_path});
    recording_.reset();
    reply.ok(result);
    if (finishing_) continue_finish();
}

// ---- snapshots ----

bool CameraModule::command(const std::string& name, const json& args, Reply& reply) {
    (void)args;
    if (name != "snapshot") return false;
    if (!pipeline_ || !pipeline_->running) {
        reply.error(errc::kBadState, "the camera is not running");
        return true;
    }
    if (camera_dir_.empty()) {
        reply.error(errc::kBadState, "no session is open: snapshots go into the session's camera folder");
        return true;
    }
    snapshot_replies_.push_back(std::move(reply));
    if (snapshot_replies_.size() == 1) {
        pipeline_->router->want_snapshot();
        snapshot_timer_->start(kSnapshotTimeoutMs, 0, [this] {
            if (pipeline_) pipeline_->router->cancel_snapshot();
            fail_snapshots(errc::kTimeout, "no frame came within " +
                                               std::to_string(kSnapshotTimeoutMs) + " ms");
        });
    }
    return true;
}

void CameraModule::fail_snapshots(const std::string& code, const std::string& message) {
    snapshot_timer_->stop();
    auto replies = std::move(snapshot_replies_);
    snapshot_replies_.clear();
    for (auto& r : replies) r.error(code, message);
}

void CameraModule::on_snapshot_frame(FramePtr frame) {
    snapshot_timer_->stop();
    if (snapshot_replies_.empty() || camera_dir_.empty()) return;
    auto replies = std::make_shared<std::vector<Reply>>(std::move(snapshot_replies_));
    snapshot_replies_.clear();
    struct Job {
        FramePtr frame;
        std::string dir;
        std::string format;
        uint64_t counter;
        std::string path;
    };
    auto job = std::make_shared<Job>(Job{std::move(frame), camera_dir_, pipeline_->settings.snapshot_format,
                                         snapshot_counter_, {}});
    snapshot_counter_ += 1;
    const int64_t realtime_at_frame = realtime_ns() - (mono_ns() - job->frame->time_ns);
    off_loop(
        [job, realtime_at_frame] {
            job->path = write_snapshot(*job->frame, job->dir, job->format, realtime_at_frame, job->counter);
            job->frame.reset();  // the pool buffer goes back now
            return std::string();
        },
        [this, job, replies](const std::string& error) {
            snapshot_counter_ = std::max(snapshot_counter_, job->counter);
            for (auto& r : *replies) {
                if (error.empty()) {
                    r.ok(json{{"path", job->path}});
                } else {
                    r.error(errc::kIoError, "snapshot failed: " + error);
                }
            }
            if (error.empty()) {
                ++snapshots_written_;
                runtime_.log("info", "snapshot " + job->path);
            } else {
                last_error_ = error;
                runtime_.log("error", "snapshot failed: " + error);
            }
        });
}

void CameraModule::standalone_input(const std::string& line) {
    if (line == "snapshot" || line == "s") {
        Reply reply(&runtime_, -1, "snapshot");
        if (!command("snapshot", json::object(), reply)) reply.error(errc::kUnknownCommand, "snapshot");
        return;
    }
    runtime_.log("info", "type 'snapshot' (or 's') and Enter for a snapshot; Ctrl-C stops");
}

// ---- stats ----

json CameraModule::stats() {
    json s{{"backend", pipeline_ ? pipeline_->settings.backend : ""}};
    if (!last_error_.empty()) s["last_error"] = last_error_;
    if (!pipeline_) return s;
    const Pipeline& p = *pipeline_;
    s["camera"] = p.info.description;
    s["width"] = p.info.width;
    s["height"] = p.info.height;
    s["fps_target"] = p.settings.fps;
    if (!p.running) return s;
    FrameRouter::Stats r = p.router->stats(mono_ns());
    Recorder::Stats e = p.recorder->stats();
    s["captured"] = r.captured;
    s["encoded"] = e.encoded;
    s["dropped"] = r.lost_at_source + r.dropped_queue_full + e.lost_after_error;
    s["dropped_camera"] = r.lost_at_source;
    s["dropped_queue_full"] = r.dropped_queue_full;
    s["trial_dropped"] = r.trial_dropped;
    s["queue_depth"] = e.depth;
    s["queue_max_depth"] = e.max_depth;
    s["queue_capacity"] = p.recorder->capacity();
    s["fps"] = r.fps;
    s["last_frame_mono_ns"] = r.last_frame_ns;
    s["video_bytes"] = e.bytes_written;
    s["bytes_written"] = e.bytes_written + e.csv_bytes_written;
    if (recording_) {
        s["trial"] = recording_->info.trial;
        s["file"] = recording_->video_path;
    }
    if (p.preview) {
        s["preview_shm"] = p.preview->name();
        s["previews"] = p.preview->published();
    }
    s["snapshots"] = snapshots_written_;
    s["rows_moved_unwritten"] = rows_moved_unwritten_;
    const json source = p.source->stats();
    for (const auto& [key, value] : source.items()) s[key] = value;
    return s;
}

// ---- finish: close the files, stop the camera, join every thread ----

void CameraModule::finish(std::function<void()> done) {
    finish_done_ = std::move(done);
    finishing_ = true;
    continue_finish();
}

void CameraModule::continue_finish() {
    if (!finish_done_) return;
    if (pipeline_busy_) return;  // resumes when the start or stop completes
    if (recording_) {
        if (!recording_->opened) return;  // resumes on Opened
        if (!recording_->stopping) begin_stop(mono_ns(), Reply());
        return;  // resumes when the file is closed
    }
    fail_snapshots(errc::kBadState, "the camera is shutting down");
    if (off_loop_jobs_ > 0) return;  // a snapshot or mkdir in flight
    if (pipeline_) {
        Pipeline* p = pipeline_.release();
        pipeline_busy_ = true;
        off_loop([p] { delete p; return std::string(); }, [this](const std::string&) { pipeline_busy_ = false; });
        return;
    }
    // Every thread is joined: close our handles so the loop can end.
    events_->drain();
    events_.reset();
    stop_timer_.reset();
    snapshot_timer_.reset();
    reconcile_timer_.reset();
    auto done = std::move(finish_done_);
    finish_done_ = nullptr;
    done();
}

}  // namespace pilogger::camera

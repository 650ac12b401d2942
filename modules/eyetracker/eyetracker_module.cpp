// The module's lifecycle: configure, the session, a trial's start and stop, stats and finish.
// The rest of the class is by responsibility in eyetracker_connection.cpp (the device),
// eyetracker_trial_files.cpp (a trial part's files), eyetracker_samples.cpp (the sample rows),
// eyetracker_scene.cpp (the scene video). `address: simulator` never reaches this class: the module
// runtime starts neon-sim through the kind's simulator hook and hands over its address.
#include "eyetracker_module.hpp"

#include "av_util.hpp"
#include "clock.hpp"
#include "paths.hpp"
#include "reconcile.hpp"

#include <unistd.h>

namespace pilogger::neon {

namespace {

// Samples arriving this long after the stop instant still belong to the trial (network,
// reorder buffer); the files close then.
constexpr int64_t kStopGraceMs = 300;

}  // namespace

EyetrackerModule::EyetrackerModule(ModuleRuntime& runtime) : runtime_(runtime), requests_(runtime.loop()) {
    // Decoder warnings (a damaged scene frame) go to the module log without ever blocking.
    route_ffmpeg_log(AV_LOG_WARNING);
}

EyetrackerModule::~EyetrackerModule() = default;

void EyetrackerModule::file_error(const std::string& message) {
    last_error_ = message;
    runtime_.log("error", message);
}

void EyetrackerModule::configure(const json& settings, Reply reply) {
    if (device_ || browser_) {
        reply.error(errc::kBadState, "already configured");
        return;
    }
    try {
        settings_ = EyetrackerSettings::from_json(settings);
    } catch (const std::exception& e) {
        reply.error(errc::kBadRequest, e.what());
        return;
    }
    preview_name_ = settings_.preview
                        ? "/pilogger-" + std::to_string(getuid()) + "-" + runtime_.name() + "-preview"
                        : "";
    if (settings_.address == "auto") {
        discover();
    } else {
        connect_device(settings_.address, settings_.port);
    }
    // The device joins in the background: a missing Neon never holds up the other modules.
    reply.ok(json{{"address", settings_.address}, {"preview_shm", preview_name_}});
}

void EyetrackerModule::start_session(const SessionInfo& session, Reply reply) {
    std::string dir = session.session_dir + "/" + runtime_.name();
    auto shared = std::make_shared<Reply>(std::move(reply));
    // Scene files already there come from an earlier process of this module (this one was
    // restarted into the session): listed before this process records anything.
    auto earlier = std::make_shared<std::vector<std::string>>();
    requests_.work(
        [dir, earlier] {
            std::string error = create_directories(dir);
            if (error.empty()) *earlier = list_frame_csvs(dir, "_scene_frames.csv");
            return error;
        },
        [this, dir, shared, earlier](const std::string& error) {
            if (!error.empty()) {
                shared->error(errc::kIoError, error);
                return;
            }
            dir_ = dir;
            shared->ok(json{{"dir", dir}});
            if (!earlier->empty()) reconcile(std::move(*earlier));
        });
}

void EyetrackerModule::start_recording(const RecordingInfo& recording, Reply reply) {
    if (dir_.empty()) {
        reply.error(errc::kBadState, "no session");
        return;
    }
    if (trial_) {
        reply.error(errc::kBadState, "still finishing the previous trial");
        return;
    }
    trial_ = std::make_unique<Trial>();
    trial_->info = recording;
    trial_->part = recording.part;
    if (!device_ || !device_->connected()) {
        runtime_.log("warning", "the Neon is not connected: trial " + std::to_string(recording.trial) +
                                    " has no eye-tracker files until it connects");
        reply.ok(json{{"connected", false}});
        return;
    }
    auto shared = std::make_shared<Reply>(std::move(reply));
    open_part(recording.part, [this, shared](const std::string& error) {
        if (!error.empty()) {
            shared->error(errc::kIoError, error);
            trial_.reset();
            return;
        }
        if (!trial_) return;
        announce_trial_start();
        shared->ok(json{{"files", trial_->files->stem + "_*"}});
    });
}

// The Neon hears of a trial once, when its first files open: at the start, or when the device
// connects after a trial began without it.
void EyetrackerModule::announce_trial_start() {
    if (!trial_ || trial_->announced) return;
    trial_->announced = true;
    post_trial_event("start", trial_->info.start_at_mono_ns);
    // A module restarted mid-trial (part > 1) finds the Neon's recording already running.
    if (settings_.neon_recording && trial_->info.part == 1) {
        device_->start_recording([this](bool ok, const json& result, const std::string& why) {
            if (!ok) {
                runtime_.log("warning", "the Neon did not start its own recording: " + why);
            } else {
                runtime_.log("info", "Neon recording " + result.value("id", std::string("?")) + " started");
            }
        });
    }
}

void EyetrackerModule::post_trial_event(const std::string& what, int64_t mono) {
    if (!settings_.trial_events || !device_ || !device_->connected() || !trial_) return;
    std::string name = trial_file_stem(trial_->info.trial, 1) + "." + what;
    device_->send_event(name, device_->to_device_ns(mono), [this, name](bool ok, const json&, const std::string& error) {
        if (!ok) runtime_.log("warning", "the Neon did not take the event " + name + ": " + error);
    });
}

void EyetrackerModule::stop_recording(int64_t stop_at_mono_ns, Reply reply) {
    if (!trial_ || trial_->stopping) {
        reply.ok();
        return;
    }
    trial_->stopping = true;
    trial_->stop_at_mono_ns = stop_at_mono_ns;
    trial_->stop_reply = std::move(reply);
    int64_t wait_ms = std::max<int64_t>(0, (stop_at_mono_ns - mono_ns()) / 1'000'000) + kStopGraceMs;
    trial_->stop_timer = std::make_unique<uv::Timer>(runtime_.loop());
    trial_->stop_timer->start(static_cast<uint64_t>(wait_ms), 0, [this] { finish_stop(); });
}

void EyetrackerModule::finish_stop() {
    if (!trial_) return;
    if (trial_->opening) {
        // Part selection is on the thread pool; come back when it is done.
        trial_->stop_timer->start(20, 0, [this] { finish_stop(); });
        return;
    }
    post_trial_event("stop", trial_->stop_at_mono_ns);
    if (settings_.neon_recording && device_ && device_->connected()) {
        device_->stop_and_save_recording([this](bool ok, const json&, const std::string& error) {
            if (!ok) runtime_.log("warning", "the Neon did not save its own recording: " + error);
        });
    }
    std::unique_ptr<Trial> trial = std::move(trial_);
    std::string stem = trial->files ? trial->files->stem : "";
    auto reply = std::make_shared<Reply>(std::move(trial->stop_reply));
    close_files(std::move(trial->files), [reply, stem] { reply->ok(json{{"files", stem.empty() ? "" : stem + "_*"}}); });
    maybe_idle();
}

void EyetrackerModule::stop_session(Reply reply) {
    auto shared = std::make_shared<Reply>(std::move(reply));
    if (trial_) {
        // A session ending mid-trial stops the trial now.
        if (!trial_->stopping) {
            trial_->stopping = true;
            trial_->stop_at_mono_ns = mono_ns();
        }
        finish_stop();
    }
    when_idle([this, shared] {
        dir_.clear();
        shared->ok();
    });
}

void EyetrackerModule::when_idle(std::function<void()> then) {
    after_closing_ = std::move(then);
    maybe_idle();
}

void EyetrackerModule::maybe_idle() {
    if (closing_ > 0 || trial_ || !after_closing_) return;
    auto then = std::move(after_closing_);
    after_closing_ = nullptr;
    then();
}

json EyetrackerModule::stats() {
    json out = device_ ? device_->stats() : json{{"connected", false}};
    out["rate_hz"] = out.value("gaze_rate_hz", 0.0);
    uint64_t scene_dropped = scene_dropped_closed_;
    uint64_t scene_damaged = scene_damaged_closed_;
    if (trial_ && trial_->files) {
        const TrialFiles& f = *trial_->files;
        out["gaze_rows"] = f.gaze_rows;
        out["imu_rows"] = f.imu_rows;
        out["event_rows"] = f.event_rows;
        out["frames"] = f.frame_rows;
        if (f.scene) {
            scene_dropped += f.scene->frames_dropped();
            scene_damaged += f.scene->frames_damaged();
            out["scene_pipe_bytes"] = f.scene->pipe_bytes();
        }
    }
    out["scene_frames_dropped"] = scene_dropped;
    out["scene_rows_moved_unwritten"] = rows_moved_unwritten_;
    out["scene_frames_damaged"] = scene_damaged;
    out["drops"] = rows_dropped_ + scene_dropped;
    // The name may carry a pid suffix when another live process held the usual one.
    out["preview_shm"] = preview_ ? preview_->name() : "";
    if (!last_error_.empty()) out["last_error"] = last_error_;
    return out;
}

void EyetrackerModule::finish(std::function<void()> done) {
    finishing_ = true;
    auto finish_rest = [this, done = std::move(done)] {
        device_.reset();
        preview_.reset();
        browser_.reset();  // kills avahi-browse if it still runs
        rediscover_timer_.reset();
        reconcile_timer_.reset();
        discovery_retry_.reset();
        done();
    };
    if (trial_) {
        if (!trial_->stopping) {
            trial_->stopping = true;
            trial_->stop_at_mono_ns = mono_ns();
        }
        finish_stop();
    }
    when_idle(std::move(finish_rest));
}

}  // namespace pilogger::neon

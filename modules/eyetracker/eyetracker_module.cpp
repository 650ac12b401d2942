#include "eyetracker_module.hpp"

#include "av_util.hpp"
#include "clock.hpp"
#include "discovery.hpp"
#include "paths.hpp"
#include "reconcile.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace pilogger::neon {

namespace {

const std::vector<std::string> kGazeColumns = {
    "mono_ns", "device_time_ns", "x_px", "y_px", "worn",
    "left_x_px", "left_y_px", "right_x_px", "right_y_px",
    "pupil_diameter_left_mm", "eyeball_center_left_x_mm", "eyeball_center_left_y_mm", "eyeball_center_left_z_mm",
    "optical_axis_left_x", "optical_axis_left_y", "optical_axis_left_z",
    "pupil_diameter_right_mm", "eyeball_center_right_x_mm", "eyeball_center_right_y_mm", "eyeball_center_right_z_mm",
    "optical_axis_right_x", "optical_axis_right_y", "optical_axis_right_z",
    "eyelid_angle_top_left_rad", "eyelid_angle_bottom_left_rad", "eyelid_aperture_left_mm",
    "eyelid_angle_top_right_rad", "eyelid_angle_bottom_right_rad", "eyelid_aperture_right_mm"};

const std::vector<std::string> kImuColumns = {
    "mono_ns", "device_time_ns", "gyro_x_dps", "gyro_y_dps", "gyro_z_dps", "accel_x_g", "accel_y_g", "accel_z_g",
    "quat_w", "quat_x", "quat_y", "quat_z"};

const std::vector<std::string> kEventColumns = {
    "mono_ns", "device_time_ns", "type", "start_device_ns", "end_device_ns", "start_mono_ns", "end_mono_ns",
    "start_x_px", "start_y_px", "end_x_px", "end_y_px", "mean_x_px", "mean_y_px",
    "amplitude_px", "amplitude_deg", "mean_velocity_px_s", "max_velocity_px_s"};

const std::vector<std::string> kFrameColumns = {"frame_index", "device_time_ns", "mono_ns", "pts_us", "intact"};

const std::vector<std::string> kTimeEchoColumns = {
    "mono_ns", "burst", "host_unix_ms", "phone_unix_ms", "rtt_us", "offset_ms", "device_minus_mono_ns",
    "burst_estimate_device_minus_mono_ns"};

// Samples arriving this long after the stop instant still belong to the trial (network,
// reorder buffer); the files close then.
constexpr int64_t kStopGraceMs = 300;
// At most this many frames are kept from before a trial to begin its video at a keyframe.
constexpr size_t kMaxPrerollFrames = 150;
// With address: auto, a Neon unreachable this long is looked for again by mDNS.
constexpr uint64_t kRediscoverAfterMs = 10000;
// The scene frames CSV is fdatasync'd at most this often to let frames go to the MP4 (they wait
// for it: a frame never reaches the MP4 before its row reaches the disk).
constexpr int64_t kRowSyncMinMs = 200;
// A scene MP4 still open in another process (an ffmpeg finishing the file of a process that was
// killed) is looked at again this often, this many times.
constexpr uint64_t kReconcileRetryMs = 500;
constexpr int kReconcileAttempts = 40;

std::string scene_video_of(const std::string& frames_csv) {
    const std::string suffix = "_scene_frames.csv";
    return frames_csv.substr(0, frames_csv.size() - suffix.size()) + "_scene.mp4";
}

void add_eye(CsvRow& row, const EyeState& eye) {
    row.add(static_cast<double>(eye.pupil_diameter_mm), 4)
        .add(static_cast<double>(eye.eyeball_center_mm.x), 4)
        .add(static_cast<double>(eye.eyeball_center_mm.y), 4)
        .add(static_cast<double>(eye.eyeball_center_mm.z), 4)
        .add(static_cast<double>(eye.optical_axis.x), 6)
        .add(static_cast<double>(eye.optical_axis.y), 6)
        .add(static_cast<double>(eye.optical_axis.z), 6);
}

void add_empty(CsvRow& row, int count) {
    for (int i = 0; i < count; ++i) row.empty();
}

// Counts a row the writer took, or one it refused.
void write_counted(AsyncFileWriter& writer, const CsvRow& row, uint64_t& rows, uint64_t& dropped) {
    if (writer.write_row(row)) {
        ++rows;
    } else {
        ++dropped;
    }
}

}  // namespace

EyetrackerModule::EyetrackerModule(ModuleRuntime& runtime) : runtime_(runtime) {
    // Decoder warnings (a damaged scene frame) go to the module log without ever blocking.
    route_ffmpeg_log(AV_LOG_WARNING);
}

EyetrackerModule::~EyetrackerModule() {
    if (simulator_) simulator_->kill(SIGTERM);
}

void EyetrackerModule::file_error(const std::string& message) {
    last_error_ = message;
    runtime_.log("error", message);
}

void EyetrackerModule::configure(const json& settings, Reply reply) {
    if (device_ || simulator_ || browser_) {
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
    if (settings_.address == "simulator") {
        try {
            start_simulator();
        } catch (const std::exception& e) {
            reply.error(errc::kUnavailable, e.what());
            return;
        }
    } else if (settings_.address == "auto") {
        discover();
    } else {
        connect_device(settings_.address, settings_.port);
    }
    // The device joins in the background: a missing Neon never holds up the other modules.
    reply.ok(json{{"address", settings_.address}, {"preview_shm", preview_name_}});
}

void EyetrackerModule::connect_device(const std::string& host, int port) {
    NeonDeviceOptions options;
    options.host = host;
    options.port = port;
    options.scene = settings_.scene;
    options.time_echo_count = settings_.time_echo_count;
    options.time_echo_interval_s = settings_.time_echo_interval_s;
    NeonDevice::Callbacks callbacks;
    callbacks.connection = [this](bool connected, const std::string& why) { on_connection(connected, why); };
    callbacks.gaze = [this](const GazeSample& s, int64_t d, int64_t m) { on_gaze(s, d, m); };
    callbacks.imu = [this](const ImuSample& s, int64_t d, int64_t m) { on_imu(s, d, m); };
    callbacks.eye_event = [this](const EyeEvent& e, int64_t d, int64_t m) { on_eye_event(e, d, m); };
    callbacks.scene = [this](AccessUnit&& u, int64_t d, int64_t m) { on_scene(std::move(u), d, m); };
    callbacks.time_echo = [this](const std::vector<TimeEchoSample>& samples, std::optional<int64_t> estimate) {
        on_time_echo(samples, estimate);
    };
    device_ = std::make_unique<NeonDevice>(runtime_.loop(), options, std::move(callbacks));
    runtime_.log("info", "connecting to the Neon at " + host + ":" + std::to_string(port));
    device_->start();
}

void EyetrackerModule::start_simulator() {
    std::string exe = executable_dir() + "/neon-sim";
    if (!std::filesystem::exists(exe)) exe = "neon-sim";
    simulator_port_file_ = runtime_dir() + "/neon-sim-" + std::to_string(getpid()) + ".json";
    std::remove(simulator_port_file_.c_str());
    uv::ProcessOptions options;
    options.file = exe;
    options.args = {exe, "--host", "127.0.0.1", "--http-port", "0", "--rtsp-port", "0", "--time-echo-port", "0",
                    "--port-file", simulator_port_file_};
    for (const auto& [key, value] : settings_.simulator) {
        std::string flag = "--" + key;
        for (char& c : flag) c = c == '_' ? '-' : c;
        if (value == "false") continue;
        options.args.push_back(flag);
        if (value != "true") options.args.push_back(value);
    }
    simulator_stderr_ = std::make_unique<uv::Stream>(runtime_.loop());
    options.stderr_pipe = simulator_stderr_.get();
    simulator_ = std::make_unique<uv::Process>(runtime_.loop());
    simulator_->spawn(options, [this](int64_t status, int signal) {
        if (finishing_) return;
        std::string why = "neon-sim exited (status " + std::to_string(status) + ", signal " + std::to_string(signal) + ")";
        last_error_ = why;
        runtime_.log("error", why);
    });
    auto pending = std::make_shared<std::string>();
    simulator_stderr_->start_read(
        [this, pending](std::string_view chunk) {
            pending->append(chunk);
            size_t newline;
            while ((newline = pending->find('\n')) != std::string::npos) {
                runtime_.log("info", "neon-sim: " + pending->substr(0, newline));
                pending->erase(0, newline + 1);
            }
            if (pending->size() > 64 * 1024) pending->clear();
        },
        [](int) {});
    // The simulator writes its ports once it listens; look for them without blocking the loop.
    simulator_wait_ = std::make_unique<uv::Timer>(runtime_.loop());
    simulator_wait_->start(100, 100, [this] {
        if (device_) return;
        auto ports = std::make_shared<int>(0);
        uv::queue_work(
            runtime_.loop(),
            [file = simulator_port_file_, ports] {
                std::ifstream in(file);
                if (!in) return std::string("not yet");
                std::stringstream text;
                text << in.rdbuf();
                json parsed = json::parse(text.str(), nullptr, false);
                if (!parsed.is_object() || !parsed.contains("http")) return std::string("not yet");
                *ports = parsed["http"].get<int>();
                return std::string();
            },
            [this, ports](const std::string& error) {
                if (!error.empty() || device_ || finishing_ || *ports <= 0) return;
                simulator_wait_->stop();
                std::remove(simulator_port_file_.c_str());
                connect_device("127.0.0.1", *ports);
            });
    });
}

void EyetrackerModule::discover() {
    if (!discovery_retry_) discovery_retry_ = std::make_unique<uv::Timer>(runtime_.loop());
    if (!browser_) browser_ = std::make_unique<ChildOutput>(runtime_.loop());
    const std::vector<std::string> args = avahi_browse_arguments();
    browser_->start(args.front(), args, kAvahiBrowseTimeoutMs, [this](ChildOutput::Result&& result) {
        if (finishing_) return;
        auto retry = [this](const std::string& why) {
            last_error_ = why;
            runtime_.log("warning", why + "; looking again in 5 s");
            discovery_retry_->start(5000, 0, [this] { discover(); });
        };
        const std::vector<NeonService> found = parse_avahi_browse(result.out);
        if (found.empty() && !result.ok()) {
            retry("address: auto cannot look for the Neon by mDNS: " + avahi_browse_failure(result) +
                  "; or give the Neon's address in the config");
            return;
        }
        auto chosen = choose_service(found, settings_.device_name, unreachable_endpoint_);
        if (!chosen) {
            retry(settings_.device_name.empty()
                      ? "no Neon found by mDNS (is the Companion app open, on the same network?)"
                      : "no Neon named '" + settings_.device_name + "' found by mDNS");
            return;
        }
        runtime_.log("info", "found " + chosen->name + " at " + chosen->address + ":" + std::to_string(chosen->port));
        found_endpoint_ = endpoint_of(*chosen);
        connect_device(chosen->address, chosen->port);
        watch_found_device();
    });
}

// A phone found by mDNS can come back at another address (a new Wi-Fi lease, another hotspot):
// when it stays unreachable, it is looked for again instead of being waited for where it was.
void EyetrackerModule::watch_found_device() {
    if (!rediscover_timer_) rediscover_timer_ = std::make_unique<uv::Timer>(runtime_.loop());
    rediscover_timer_->start(kRediscoverAfterMs, 0, [this] {
        if (finishing_ || !device_ || device_->connected()) return;
        runtime_.log("warning", "the Neon at " + found_endpoint_ + " has not answered for " +
                                    std::to_string(kRediscoverAfterMs / 1000) + " s; looking for it again by mDNS");
        unreachable_endpoint_ = found_endpoint_;
        device_.reset();
        discover();
    });
}

void EyetrackerModule::start_session(const SessionInfo& session, Reply reply) {
    std::string dir = session.session_dir + "/" + runtime_.name();
    auto shared = std::make_shared<Reply>(std::move(reply));
    // Scene files already there come from an earlier process of this module (this one was
    // restarted into the session): listed before this process records anything.
    auto earlier = std::make_shared<std::vector<std::string>>();
    uv::queue_work(
        runtime_.loop(),
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

void EyetrackerModule::reconcile(std::vector<std::string> csv_paths, int attempt) {
    if (!reconcile_timer_) reconcile_timer_ = std::make_unique<uv::Timer>(runtime_.loop());
    auto paths = std::make_shared<std::vector<std::string>>(std::move(csv_paths));
    auto results = std::make_shared<std::vector<ReconcileResult>>();
    ++closing_;  // finish() waits for it
    uv::queue_work(
        runtime_.loop(),
        [paths, results] {
            for (const std::string& csv : *paths) results->push_back(reconcile_frames_csv(scene_video_of(csv), csv));
            return std::string();
        },
        [this, paths, results, attempt](const std::string&) {
            std::vector<std::string> busy;
            for (size_t i = 0; i < results->size(); ++i) {
                const ReconcileResult& r = (*results)[i];
                switch (r.outcome) {
                    case ReconcileResult::Outcome::Matched:
                        break;
                    case ReconcileResult::Outcome::Moved:
                        rows_moved_unwritten_ += r.moved;
                        runtime_.log("warning", r.message);
                        break;
                    case ReconcileResult::Outcome::Busy:
                        busy.push_back((*paths)[i]);
                        break;
                    case ReconcileResult::Outcome::RowsMissing:
                    case ReconcileResult::Outcome::Failed:
                        runtime_.log("error", r.message);
                        break;
                }
            }
            if (!busy.empty()) {
                if (finishing_ || attempt + 1 >= kReconcileAttempts) {
                    for (const std::string& csv : busy) {
                        runtime_.log("warning", scene_video_of(csv) + " is still open in another process; " + csv +
                                                    " was not matched to it");
                    }
                } else {
                    reconcile_waiting_.insert(reconcile_waiting_.end(), busy.begin(), busy.end());
                    reconcile_timer_->start(kReconcileRetryMs, 0, [this, attempt] {
                        reconcile(std::exchange(reconcile_waiting_, {}), attempt + 1);
                    });
                }
            }
            --closing_;
            maybe_idle();
        });
}

bool EyetrackerModule::in_trial(int64_t mono) const {
    return trial_ && trial_->files && mono >= trial_->info.start_at_mono_ns && mono < trial_->stop_at_mono_ns;
}

void EyetrackerModule::open_part(int first_part, std::function<void(const std::string&)> done) {
    // The first part whose files do not exist yet: a restart of this module and a reconnect of
    // the device both continue a trial, and neither may overwrite the other's files.
    auto part = std::make_shared<int>(first_part);
    const std::string base = dir_ + "/";
    const int trial = trial_->info.trial;
    trial_->opening = true;
    uv::queue_work(
        runtime_.loop(),
        [base, trial, part] {
            for (;; ++*part) {
                if (!std::filesystem::exists(base + trial_file_stem(trial, *part) + "_gaze.csv")) return std::string();
            }
        },
        [this, base, trial, part, done = std::move(done)](const std::string& error) {
            if (!trial_) return;
            trial_->opening = false;
            if (!error.empty()) {
                done(error);
                return;
            }
            trial_->part = *part;
            auto files = std::make_unique<TrialFiles>();
            files->stem = base + trial_file_stem(trial, *part);
            auto on_error = [this](const std::string& message) { file_error(message); };
            uv::Loop& loop = runtime_.loop();
            files->gaze = std::make_unique<AsyncFileWriter>(loop, files->stem + "_gaze.csv", kGazeColumns, FileWriterOptions{}, on_error);
            files->imu = std::make_unique<AsyncFileWriter>(loop, files->stem + "_imu.csv", kImuColumns, FileWriterOptions{}, on_error);
            files->events = std::make_unique<AsyncFileWriter>(loop, files->stem + "_events.csv", kEventColumns, FileWriterOptions{}, on_error);
            files->time_echo = std::make_unique<AsyncFileWriter>(loop, files->stem + "_time_echo.csv", kTimeEchoColumns, FileWriterOptions{}, on_error);
            if (settings_.scene) {
                files->frames = std::make_unique<AsyncFileWriter>(loop, files->stem + "_scene_frames.csv", kFrameColumns, FileWriterOptions{}, on_error);
            }
            trial_->files = std::move(files);
            runtime_.log("info", "recording into " + trial_->files->stem + "_*");
            // A fresh clock measurement into every part's time-echo file.
            if (device_) device_->measure_clock();
            done("");
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

void EyetrackerModule::close_files(std::unique_ptr<TrialFiles> files, std::function<void()> done) {
    if (!files) {
        done();
        return;
    }
    ++closing_;
    std::shared_ptr<TrialFiles> shared(std::move(files));
    auto close_writers = [this, shared, done = std::move(done)] {
        std::vector<AsyncFileWriter*> writers;
        for (auto* w : {shared->gaze.get(), shared->imu.get(), shared->events.get(), shared->frames.get(),
                        shared->time_echo.get()}) {
            if (w != nullptr) writers.push_back(w);
        }
        auto remaining = std::make_shared<size_t>(writers.size());
        for (auto* writer : writers) {
            writer->close([this, shared, remaining, done] {
                if (--*remaining > 0) return;
                // The scene writer failed: frames that never reached the MP4 may have rows.
                if (shared->scene_failed && shared->frames) reconcile({shared->stem + "_scene_frames.csv"});
                done();
                --closing_;
                maybe_idle();
            });
        }
    };
    if (shared->scene) {
        // The rows of the frames still held go to the disk first; then the frames go to the MP4.
        auto stop_scene = [this, shared, close_writers] {
            SceneWriter* scene = shared->scene.get();
            const uint64_t dropped_before_stop = scene->frames_dropped();
            const uint64_t damaged_before_stop = scene->frames_damaged();
            scene_dropped_closed_ += dropped_before_stop;
            scene_damaged_closed_ += damaged_before_stop;
            scene->stop([this, shared, close_writers, dropped_before_stop, damaged_before_stop](
                            bool ok, const std::string& message) {
                scene_dropped_closed_ += shared->scene->frames_dropped() - dropped_before_stop;
                scene_damaged_closed_ += shared->scene->frames_damaged() - damaged_before_stop;
                if (!ok) {
                    runtime_.log("warning", "scene video " + shared->scene->output_path() + ": " + message);
                    shared->scene_failed = true;
                }
                close_writers();
            });
        };
        shared->rows_timer.reset();
        if (shared->frames) {
            shared->frames->flush(true, [stop_scene](bool) { stop_scene(); });
        } else {
            stop_scene();
        }
    } else {
        close_writers();
    }
}

void EyetrackerModule::on_connection(bool connected, const std::string& why) {
    if (connected) {
        const NeonDeviceInfo& info = device_->info();
        runtime_.log("info", "connected to " + (info.device_name.empty() ? std::string("the Neon") : info.device_name) +
                                 (info.ip.empty() ? "" : " (" + info.ip + ")"));
        runtime_.emit("device", json{{"connected", true}, {"device_name", info.device_name}});
        if (rediscover_timer_) rediscover_timer_->stop();
        unreachable_endpoint_.clear();
        if (trial_ && !trial_->files && !trial_->stopping && !trial_->opening) {
            open_part(trial_->part, [this](const std::string& error) {
                if (!error.empty()) {
                    file_error(error);
                    return;
                }
                announce_trial_start();
            });
        }
        return;
    }
    runtime_.log("warning", "the Neon disconnected: " + why +
                                (trial_ && trial_->files ? "; the trial goes on and continues in a part file when it returns"
                                                         : ""));
    runtime_.emit("device", json{{"connected", false}, {"why", why}});
    if (settings_.address == "auto") watch_found_device();
    scene_preroll_.clear();
    if (trial_ && trial_->files) {
        trial_->part += 1;
        close_files(std::move(trial_->files), [] {});
    }
}

void EyetrackerModule::on_gaze(const GazeSample& s, int64_t device_ns, int64_t mono) {
    // The dual-monocular layout (17 bytes) has no binocular point: its marker is the mean of the eyes.
    Point2 marker = s.has_binocular ? s.gaze : Point2{(s.left.x + s.right.x) / 2, (s.left.y + s.right.y) / 2};
    if (preview_) preview_->set_gaze(marker.x, marker.y, mono);
    if (trial_ && trial_->files && trial_->files->scene) trial_->files->scene->set_gaze(marker.x, marker.y, s.worn);
    if (!in_trial(mono)) return;
    CsvRow row;
    row.add(mono).add(device_ns);
    if (s.has_binocular) {
        row.add(static_cast<double>(s.gaze.x), 3).add(static_cast<double>(s.gaze.y), 3);
    } else {
        add_empty(row, 2);
    }
    row.add(s.worn ? 1 : 0);
    if (s.has_monocular) {
        row.add(static_cast<double>(s.left.x), 3).add(static_cast<double>(s.left.y), 3)
            .add(static_cast<double>(s.right.x), 3).add(static_cast<double>(s.right.y), 3);
    } else {
        add_empty(row, 4);
    }
    if (s.has_eye_state) {
        add_eye(row, s.left_eye);
        add_eye(row, s.right_eye);
    } else {
        add_empty(row, 14);
    }
    if (s.has_eyelids) {
        for (const EyeState* eye : {&s.left_eye, &s.right_eye}) {
            row.add(static_cast<double>(eye->eyelid_angle_top_rad), 6)
                .add(static_cast<double>(eye->eyelid_angle_bottom_rad), 6)
                .add(static_cast<double>(eye->eyelid_aperture_mm), 4);
        }
    } else {
        add_empty(row, 6);
    }
    write_counted(*trial_->files->gaze, row, trial_->files->gaze_rows, rows_dropped_);
}

void EyetrackerModule::on_imu(const ImuSample& s, int64_t device_ns, int64_t mono) {
    if (!in_trial(mono)) return;
    CsvRow row;
    row.add(mono).add(device_ns);
    for (float v : {s.gyro_dps.x, s.gyro_dps.y, s.gyro_dps.z, s.accel_g.x, s.accel_g.y, s.accel_g.z}) {
        row.add(static_cast<double>(v), 6);
    }
    for (float v : {s.quat_w, s.quat_x, s.quat_y, s.quat_z}) row.add(static_cast<double>(v), 7);
    write_counted(*trial_->files->imu, row, trial_->files->imu_rows, rows_dropped_);
}

void EyetrackerModule::on_eye_event(const EyeEvent& e, int64_t device_ns, int64_t mono) {
    if (!in_trial(mono)) return;
    CsvRow row;
    row.add(mono).add(device_ns).add(to_string(e.type)).add(e.start_ns);
    if (e.end_ns != 0) {
        row.add(e.end_ns);
    } else {
        row.empty();
    }
    auto start_mono = device_->to_mono_ns(e.start_ns);
    if (start_mono) {
        row.add(*start_mono);
    } else {
        row.empty();
    }
    auto end_mono = e.end_ns != 0 ? device_->to_mono_ns(e.end_ns) : std::nullopt;
    if (end_mono) {
        row.add(*end_mono);
    } else {
        row.empty();
    }
    if (e.has_details) {
        for (float v : {e.start.x, e.start.y, e.end.x, e.end.y, e.mean.x, e.mean.y}) row.add(static_cast<double>(v), 3);
        row.add(static_cast<double>(e.amplitude_px), 3).add(static_cast<double>(e.amplitude_deg), 4)
            .add(static_cast<double>(e.mean_velocity), 3).add(static_cast<double>(e.max_velocity), 3);
    } else {
        add_empty(row, 10);
    }
    write_counted(*trial_->files->events, row, trial_->files->event_rows, rows_dropped_);
}

void EyetrackerModule::on_scene(AccessUnit&& unit, int64_t device_ns, int64_t mono) {
    if (settings_.preview && !preview_ && !preview_name_.empty()) {
        try {
            int height = settings_.preview_width * 3 / 4;
            preview_ = std::make_unique<ScenePreview>(preview_name_, settings_.preview_width, height & ~1,
                                                      settings_.preview_fps, device_->scene_parameter_sets());
        } catch (const std::exception& e) {
            runtime_.log("warning", std::string("no scene preview: ") + e.what());
            preview_name_.clear();
        }
    }
    if (preview_) preview_->offer(unit, mono);
    if (!in_trial(mono) || !trial_->files->frames) {
        // The frames since the last keyframe, so a trial's video can begin at the keyframe at or
        // before its start instead of losing up to a keyframe interval of the trial.
        if (unit.keyframe) scene_preroll_.clear();
        if (scene_preroll_.size() < kMaxPrerollFrames) scene_preroll_.push_back({std::move(unit), device_ns, mono});
        return;
    }
    TrialFiles& files = *trial_->files;
    if (!files.scene && !files.scene_failed) {
        SceneWriterOptions options;
        options.output_path = files.stem + "_scene.mp4";
        options.rtp_clock_rate = device_->scene_clock_rate();
        options.parameter_sets_annexb = device_->scene_parameter_sets();
        options.overlay = settings_.overlay;
        options.keep_damaged = settings_.damaged_frames == "keep";
        options.overlay_preset = settings_.overlay_preset;
        options.overlay_crf = settings_.overlay_crf;
        // A frame reaches the MP4 only once its row is on the disk (sync_scene_rows).
        options.hold_until_released = true;
        SceneWriter::Callbacks callbacks;
        TrialFiles* target = &files;
        callbacks.frame_written = [this, target](uint64_t index, int64_t pts_us, const SceneFrameTimes& times,
                                                 bool intact) {
            CsvRow row;
            row.add(index).add(times.device_time_ns).add(times.mono_ns).add(pts_us).add(intact ? 1 : 0);
            write_counted(*target->frames, row, target->frame_rows, rows_dropped_);
            target->rows_made = index + 1;
            sync_scene_rows(*target);
        };
        // The writer's lines go to the log file (as before, one level down); its failures arrive
        // through `failed`.
        callbacks.log = [this](const std::string& level, const std::string& line) {
            runtime_.log(level == "error" ? "warning" : "info", line);
        };
        callbacks.failed = [this, target](const std::string& why) {
            target->scene_failed = true;
            runtime_.log("error", why);
        };
        try {
            files.scene = std::make_unique<SceneWriter>(runtime_.loop(), options, std::move(callbacks));
        } catch (const std::exception& e) {
            files.scene_failed = true;
            file_error(std::string("scene video: ") + e.what());
            return;
        }
    }
    if (!scene_preroll_.empty()) {
        bool usable = files.scene && files.scene->frames_written() == 0 && !unit.keyframe &&
                      scene_preroll_.front().unit.keyframe;
        for (PrerollFrame& frame : scene_preroll_) {
            if (usable) files.scene->write(std::move(frame.unit), SceneFrameTimes{frame.device_ns, frame.mono_ns});
        }
        scene_preroll_.clear();
    }
    if (files.scene && !files.scene_failed) files.scene->write(std::move(unit), SceneFrameTimes{device_ns, mono});
}

void EyetrackerModule::sync_scene_rows(TrialFiles& files) {
    if (files.rows_syncing || !files.scene || !files.frames) return;
    const int64_t since_ms = (mono_ns() - files.rows_sync_started_ns) / 1'000'000;
    if (since_ms < kRowSyncMinMs) {
        if (!files.rows_timer) files.rows_timer = std::make_unique<uv::Timer>(runtime_.loop());
        if (!files.rows_timer->active()) {
            TrialFiles* target = &files;
            files.rows_timer->start(static_cast<uint64_t>(kRowSyncMinMs - since_ms), 0,
                                    [this, target] { sync_scene_rows(*target); });
        }
        return;
    }
    files.rows_syncing = true;
    files.rows_sync_started_ns = mono_ns();
    const uint64_t covered = files.rows_made;
    TrialFiles* target = &files;
    // Runs before the writer finishes closing, so the files are still there.
    files.frames->flush(true, [this, target, covered](bool ok) {
        target->rows_syncing = false;
        // A failed CSV is reported by its writer; the video goes on without rows rather than stop.
        (void)ok;
        if (target->scene) target->scene->release_through(covered);
        if (target->rows_made > covered) sync_scene_rows(*target);
    });
}

void EyetrackerModule::on_time_echo(const std::vector<TimeEchoSample>& samples, std::optional<int64_t> estimate) {
    ++time_echo_burst_;
    if (!trial_ || !trial_->files) return;
    for (const TimeEchoSample& s : samples) {
        if (s.receive_mono_ns == 0) continue;
        CsvRow row;
        row.add((s.send_mono_ns + s.receive_mono_ns) / 2).add(time_echo_burst_).add(s.host_unix_ms).add(s.phone_unix_ms)
            .add(s.rtt_ns() / 1000).add(s.offset_ms()).add(s.device_minus_mono_ns());
        if (estimate) {
            row.add(*estimate);
        } else {
            row.empty();
        }
        if (!trial_->files->time_echo->write_row(row)) ++rows_dropped_;
    }
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
        if (simulator_ && simulator_->running()) simulator_->kill(SIGTERM);
        browser_.reset();  // kills avahi-browse if it still runs
        rediscover_timer_.reset();
        reconcile_timer_.reset();
        simulator_wait_.reset();
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

// The files of one part of a trial: opened under the first free part number, closed with the
// scene video's rows on the disk first, and scene frames CSVs reconciled with their MP4.
#include "eyetracker_module.hpp"

#include "reconcile.hpp"

#include <filesystem>

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

// A scene MP4 still open in another process (an ffmpeg finishing the file of a process that was
// killed) is looked at again this often, this many times.
constexpr uint64_t kReconcileRetryMs = 500;
constexpr int kReconcileAttempts = 40;

std::string scene_video_of(const std::string& frames_csv) {
    const std::string suffix = "_scene_frames.csv";
    return frames_csv.substr(0, frames_csv.size() - suffix.size()) + "_scene.mp4";
}

}  // namespace

void EyetrackerModule::reconcile(std::vector<std::string> csv_paths, int attempt) {
    if (!reconcile_timer_) reconcile_timer_ = std::make_unique<uv::Timer>(runtime_.loop());
    auto paths = std::make_shared<std::vector<std::string>>(std::move(csv_paths));
    auto results = std::make_shared<std::vector<ReconcileResult>>();
    ++closing_;  // finish() waits for it
    requests_.work(
        [paths, results] {
            for (const std::string& csv : *paths) results->push_back(reconcile_frames_csv(scene_video_of(csv), csv));
            return std::string();
        },
        [this, paths, results, attempt](const std::string&) {
            std::vector<std::string> busy =
                report_reconciled(*paths, *results, rows_moved_unwritten_, [this](bool is_error, const std::string& m) {
                    runtime_.log(is_error ? "error" : "warning", m);
                });
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

void EyetrackerModule::open_part(int first_part, std::function<void(const std::string&)> done) {
    // The first part whose files do not exist yet: a restart of this module and a reconnect of
    // the device both continue a trial, and neither may overwrite the other's files.
    auto part = std::make_shared<int>(first_part);
    const std::string base = dir_ + "/";
    const int trial = trial_->info.trial;
    trial_->opening = true;
    requests_.work(
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

}  // namespace pilogger::neon

// The scene video: the preview, the frames kept from before a trial, the trial's SceneWriter, and
// the frames CSV synced before the frames it covers go to the MP4.
#include "eyetracker_module.hpp"

#include "clock.hpp"

namespace pilogger::neon {

namespace {

// At most this many frames are kept from before a trial to begin its video at a keyframe.
constexpr size_t kMaxPrerollFrames = 150;
// The scene frames CSV is fdatasync'd at most this often to let frames go to the MP4 (they wait
// for it: a frame never reaches the MP4 before its row reaches the disk).
constexpr int64_t kRowSyncMinMs = 200;

}  // namespace

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
            write_counted(*target->frames, row, target->frame_rows);
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

}  // namespace pilogger::neon

// The rows of the gaze, IMU, eye event and Time Echo CSVs of the open trial.
#include "eyetracker_module.hpp"

namespace pilogger::neon {

namespace {

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

}  // namespace

void EyetrackerModule::write_counted(AsyncFileWriter& writer, const CsvRow& row, uint64_t& rows) {
    if (writer.write_row(row)) {
        ++rows;
    } else {
        ++rows_dropped_;
    }
}

bool EyetrackerModule::in_trial(int64_t mono) const {
    return trial_ && trial_->files && mono >= trial_->info.start_at_mono_ns && mono < trial_->stop_at_mono_ns;
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
    write_counted(*trial_->files->gaze, row, trial_->files->gaze_rows);
}

void EyetrackerModule::on_imu(const ImuSample& s, int64_t device_ns, int64_t mono) {
    if (!in_trial(mono)) return;
    CsvRow row;
    row.add(mono).add(device_ns);
    for (float v : {s.gyro_dps.x, s.gyro_dps.y, s.gyro_dps.z, s.accel_g.x, s.accel_g.y, s.accel_g.z}) {
        row.add(static_cast<double>(v), 6);
    }
    for (float v : {s.quat_w, s.quat_x, s.quat_y, s.quat_z}) row.add(static_cast<double>(v), 7);
    write_counted(*trial_->files->imu, row, trial_->files->imu_rows);
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
    write_counted(*trial_->files->events, row, trial_->files->event_rows);
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

}  // namespace pilogger::neon

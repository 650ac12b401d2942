#include "recorder.hpp"

#include "clock.hpp"
#include "csv_writer.hpp"
#include "output_file.hpp"
#include "video_writer.hpp"

#include <pthread.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace pilogger::camera {

namespace {
// Wake at least this often while frames trickle in (or stop).
constexpr auto kIdleWake = std::chrono::milliseconds(100);
constexpr int64_t kSyncIntervalNs = 1'000'000'000;
}  // namespace

Recorder::Recorder(std::string camera_name, size_t max_frames, Post post)
    : name_(std::move(camera_name)), max_frames_(max_frames), post_(std::move(post)) {
    thread_ = std::thread([this] { run(); });
}

Recorder::~Recorder() {
    {
        std::lock_guard lock(mutex_);
        quit_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void Recorder::open(RecordingRequest request) {
    {
        std::lock_guard lock(mutex_);
        items_.emplace_back(std::move(request));
    }
    wake_.notify_one();
}

bool Recorder::push(FramePtr frame, uint64_t generation, uint64_t dropped_before, size_t* depth_after) {
    {
        std::lock_guard lock(mutex_);
        if (frames_queued_ >= max_frames_) return false;
        ++frames_queued_;
        max_depth_ = std::max(max_depth_, frames_queued_);
        if (depth_after != nullptr) *depth_after = frames_queued_;
        items_.emplace_back(FrameItem{std::move(frame), generation, dropped_before, frames_queued_});
    }
    wake_.notify_one();
    return true;
}

void Recorder::close(uint64_t generation) {
    {
        std::lock_guard lock(mutex_);
        items_.emplace_back(CloseItem{generation});
    }
    wake_.notify_one();
}

Recorder::Stats Recorder::stats() const {
    Stats s;
    {
        std::lock_guard lock(mutex_);
        s.depth = frames_queued_;
        s.max_depth = max_depth_;
    }
    s.encoded = encoded_.load();
    s.bytes_written = bytes_.load();
    s.csv_bytes_written = csv_bytes_.load();
    s.lost_after_error = lost_after_error_.load();
    return s;
}

void Recorder::run() {
    pthread_setname_np(pthread_self(), ("enc-" + name_).substr(0, 15).c_str());
    while (true) {
        std::optional<Item> item;
        {
            std::unique_lock lock(mutex_);
            wake_.wait_for(lock, kIdleWake, [this] { return quit_ || !items_.empty(); });
            if (!items_.empty()) {
                item.emplace(std::move(items_.front()));
                items_.pop_front();
                if (std::holds_alternative<FrameItem>(*item)) --frames_queued_;
            } else if (quit_) {
                break;
            }
        }
        if (item) std::visit([this](auto& i) { handle(i); }, *item);
        periodic();
    }
    // Destroyed while a file is open (no close was queued): finalize it anyway.
    if (writer_) {
        CloseItem close{current_.generation};
        handle(close);
    }
}

void Recorder::periodic() {
    if (!frames_csv_) return;
    // Both files are synced as each fragment is written; this only catches a CSV written to
    // without a fragment following (nothing does that today).
    try {
        frames_csv_->sync_if_due(mono_ns(), kSyncIntervalNs);
    } catch (const std::exception& e) {
        fail(e.what());
    }
}

int Recorder::write_rows_through(uint64_t frames) noexcept {
    std::string text;
    while (rows_in_file_ < frames && !pending_rows_.empty()) {
        text += pending_rows_.front();
        pending_rows_.pop_front();
        ++rows_in_file_;
    }
    if (text.empty()) return 0;
    // One write and an fdatasync: on the disk before the fragment that holds these frames.
    if (int e = frames_csv_->try_write(text.data(), text.size()); e != 0) {
        row_error_ = "cannot write " + frames_csv_->path() + ": " + std::strerror(e);
        return e;
    }
    try {
        frames_csv_->sync();
    } catch (const std::exception& e) {
        row_error_ = e.what();
        return EIO;
    }
    csv_bytes_ = closed_csv_bytes_ + frames_csv_->bytes_written();
    return 0;
}

void Recorder::fail(const std::string& message) {
    // Both files keep what was written so far; later frames of this trial are lost.
    error_ = message;
    release_files();
    post_(RecorderEvent{RecorderEvent::Kind::Failed, current_.generation, false, message, frame_index_,
                        0, last_pts_us_});
}

void Recorder::release_files() {
    if (writer_) closed_bytes_ += writer_->bytes_written();
    writer_.reset();
    // Left only when the MP4 failed: their frames never reached it, and rows without frames
    // would break "row k is video frame k". The failure itself is reported.
    pending_rows_.clear();
    if (frames_csv_) {
        closed_csv_bytes_ += frames_csv_->bytes_written();
        try {
            frames_csv_->close();
        } catch (const std::exception& e) {
            if (error_.empty()) error_ = e.what();
        }
    }
    frames_csv_.reset();
    bytes_ = closed_bytes_;
    csv_bytes_ = closed_csv_bytes_;
}

void Recorder::handle(RecordingRequest& request) {
    if (writer_) {
        CloseItem close{current_.generation};
        handle(close);
    }
    current_ = std::move(request);
    frame_index_ = 0;
    rows_in_file_ = 0;
    pending_rows_.clear();
    row_error_.clear();
    last_pts_us_ = -1;
    error_.clear();
    RecorderEvent event{RecorderEvent::Kind::Opened, current_.generation, true, {}, 0, 0, -1};
    try {
        frames_csv_ = std::make_unique<OutputFile>(current_.csv_path);
        frames_csv_->write(csv_header(kFrameColumns));
        frames_csv_->sync();
        writer_ = std::make_unique<VideoWriter>(current_.video_path, current_.width, current_.height,
                                                current_.settings, current_.color,
                                                [this](uint64_t frames) { return write_rows_through(frames); });
    } catch (const std::exception& e) {
        // A frames CSV made here without its video would only confuse: it goes again.
        if (frames_csv_) media::remove_unused_file(current_.csv_path);
        frames_csv_.reset();
        error_ = e.what();
        event.ok = false;
        event.text = error_;
    }
    post_(std::move(event));
}

void Recorder::handle(FrameItem& item) {
    if (item.generation != current_.generation) return;  // a recording whose file never opened
    if (!writer_) {
        ++lost_after_error_;
        return;
    }
    const Frame& f = *item.frame;
    // pts: the frame's own instant relative to the trial start, strictly increasing.
    int64_t pts_us = (f.time_ns - current_.start_at_ns) / 1000;
    if (pts_us <= last_pts_us_) pts_us = last_pts_us_ + 1;

    int64_t wall_ns = f.mono_ns + (realtime_ns() - mono_ns());
    CsvRow row;
    row.add(static_cast<uint64_t>(frame_index_))
        .add(f.sensor_ns)
        .add(f.mono_ns)
        .add(format_utc(wall_ns))
        .add(pts_us)
        .add(static_cast<uint64_t>(item.dropped_before));
    if (f.exposure_us >= 0) {
        row.add(f.exposure_us);
    } else {
        row.empty();
    }
    row.add(static_cast<uint64_t>(item.depth));
    // Kept until the fragment holding this frame is written (write_rows_through).
    pending_rows_.push_back(row.line());
    try {
        writer_->write(item.frame, pts_us);
    } catch (const std::exception& e) {
        ++lost_after_error_;
        fail(row_error_.empty() ? e.what() : row_error_);
        return;
    }
    ++frame_index_;
    last_pts_us_ = pts_us;
    ++encoded_;
    bytes_ = closed_bytes_ + writer_->bytes_written();
}

void Recorder::handle(CloseItem& item) {
    if (item.generation != current_.generation) return;
    RecorderEvent event{RecorderEvent::Kind::Closed, current_.generation, true, {}, frame_index_, 0, last_pts_us_};
    if (writer_) {
        try {
            writer_->finish();
        } catch (const std::exception& e) {
            error_ = row_error_.empty() ? e.what() : row_error_;
        }
        event.bytes = writer_->bytes_written();
    }
    release_files();
    if (!error_.empty()) {
        event.ok = false;
        event.text = error_;
    }
    // Later frames of this generation (none should come) are ignored.
    current_.generation = 0;
    post_(std::move(event));
}

}  // namespace pilogger::camera

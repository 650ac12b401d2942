// The encoder thread: a bounded queue of frames in front of the VideoWriter. The capture side only
// ever takes a mutex for a push; a full queue refuses the frame (the caller counts the drop).
// The thread also writes the frames CSV. A frame's row is made as the frame goes to the encoder
// and kept until the muxer writes the fragment holding that frame: right before the fragment's
// bytes, the rows of its frames are written and fdatasync'd, then the fragment is written and
// fdatasync'd. So the CSV is never behind the video on the disk (a frame in the MP4 always has
// its row, after kill -9 or a power cut), and ahead of it by at most the rows of a fragment cut
// short (pilogger-camera reconciles that part when it continues the trial: reconcile.hpp).
#pragma once

#include "camera_settings.hpp"
#include "frame.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace pilogger::media {
class OutputFile;
}

namespace pilogger::camera {

using media::OutputFile;
class VideoWriter;

inline const std::vector<std::string> kFrameColumns = {
    "frame_index", "sensor_ns", "mono_ns", "wall_time_utc", "pts_us", "dropped_before", "exposure_us", "queue_depth"};

struct RecordingRequest {
    uint64_t generation = 0;
    std::string video_path;
    std::string csv_path;
    int64_t start_at_ns = 0;
    int width = 0;
    int height = 0;
    ColorInfo color;
    CameraSettings settings;
};

struct RecorderEvent {
    enum class Kind { Opened, Failed, Closed };
    Kind kind = Kind::Opened;
    uint64_t generation = 0;
    bool ok = true;
    std::string text;  // the error, when not ok
    uint64_t frames = 0;
    uint64_t bytes = 0;
    int64_t last_pts_us = -1;
};

class Recorder {
public:
    // post runs on the encoder thread and must only hand the event over (mutex + uv_async).
    using Post = std::function<void(RecorderEvent&&)>;

    Recorder(std::string camera_name, size_t max_frames, Post post);
    // Finishes what is queued (a recording still open is finalized), then joins the thread.
    ~Recorder();
    Recorder(const Recorder&) = delete;
    Recorder& operator=(const Recorder&) = delete;

    void open(RecordingRequest request);
    // False when the queue is full. depth_after: frames queued including this one.
    bool push(FramePtr frame, uint64_t generation, uint64_t dropped_before, size_t* depth_after);
    void close(uint64_t generation);

    struct Stats {
        uint64_t encoded = 0;
        uint64_t bytes_written = 0;  // video
        uint64_t csv_bytes_written = 0;
        uint64_t lost_after_error = 0;  // queued for a file that had failed
        size_t depth = 0;
        size_t max_depth = 0;
    };
    Stats stats() const;
    size_t capacity() const { return max_frames_; }

private:
    struct FrameItem {
        FramePtr frame;
        uint64_t generation;
        uint64_t dropped_before;
        size_t depth;
    };
    struct CloseItem {
        uint64_t generation;
    };
    using Item = std::variant<RecordingRequest, FrameItem, CloseItem>;

    void run();
    void handle(RecordingRequest& request);
    void handle(FrameItem& item);
    void handle(CloseItem& item);
    void fail(const std::string& message);
    // Closes both files (each keeps what was written) and folds their sizes into the totals.
    void release_files();
    void periodic();
    // VideoWriter's before_write hook: writes and fdatasyncs the rows of the first `frames`.
    int write_rows_through(uint64_t frames) noexcept;

    const std::string name_;
    const size_t max_frames_;
    Post post_;

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Item> items_;
    size_t frames_queued_ = 0;
    size_t max_depth_ = 0;
    bool quit_ = false;

    // Encoder thread only.
    std::unique_ptr<VideoWriter> writer_;
    std::unique_ptr<OutputFile> frames_csv_;
    RecordingRequest current_;
    uint64_t frame_index_ = 0;
    std::deque<std::string> pending_rows_;  // rows of frames the file does not hold yet
    uint64_t rows_in_file_ = 0;
    std::string row_error_;
    int64_t last_pts_us_ = -1;
    std::string error_;
    uint64_t closed_bytes_ = 0;
    uint64_t closed_csv_bytes_ = 0;

    std::atomic<uint64_t> encoded_{0};
    std::atomic<uint64_t> bytes_{0};
    std::atomic<uint64_t> csv_bytes_{0};
    std::atomic<uint64_t> lost_after_error_{0};
    std::thread thread_;
};

}  // namespace pilogger::camera

// The scene video of one trial file: H.264 access units from the Neon go to an `ffmpeg`
// subprocess (spawned with uv_spawn) through its stdin pipe, muxed as NUT so every frame keeps its
// RTP timestamp as pts; ffmpeg writes a fragmented MP4 (a kill loses at most the last fragment).
//   overlay off: ffmpeg copies the H.264 stream (no re-encode, little CPU);
//   overlay on:  frames are decoded on a worker thread, the latest gaze point is drawn in, and
//                raw frames go to ffmpeg, which encodes them with libx264.
// The pipe is never allowed to block the loop: when more than max_pipe_bytes wait in it, the frame
// is dropped and counted (copy mode then skips to the next keyframe so the file stays decodable).
// A frame with lost packets is kept as far as it came (keep_damaged; the decoder conceals the
// rest) and reported not intact, as is every frame after it until a whole keyframe.
// ffmpeg is watched like any child: its stderr goes to the module log, its exit is reported, and
// stop() closes stdin, then sends SIGTERM and finally SIGKILL if it does not finish in time.
// This process opens ffmpeg's output itself and fdatasyncs it on the thread pool every 500 ms
// while ffmpeg runs and once after it exits, before stop() reports.
// With hold_until_released, a frame's bytes wait in this process (counted in the back-pressure)
// until the owner calls release_through() for it: the owner writes and fdatasyncs the frame's CSV
// row first, so no frame reaches ffmpeg, and the disk, before its row.
#pragma once

#include "h264_depacketizer.hpp"
#include "uv.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace pilogger::neon {

struct SceneWriterOptions {
    std::string ffmpeg = "ffmpeg";       // executable, looked up on PATH when not absolute
    std::string output_path;             // created new; an existing file is an error
    uint32_t rtp_clock_rate = 90000;     // the video track's rtpmap clock rate: pts time base
    std::string parameter_sets_annexb;   // SPS/PPS from the SDP, put before the first keyframe
    bool overlay = false;
    bool keep_damaged = true;            // false: drop a damaged frame and skip to the next keyframe
    std::string overlay_preset = "ultrafast";
    int overlay_crf = 23;
    size_t max_pipe_bytes = 64u << 20;
    int stop_timeout_ms = 5000;          // after stdin EOF, then SIGTERM; 2000 ms more, then SIGKILL
    bool hold_until_released = false;    // frames go to ffmpeg only through release_through()
};

// What the CSV row of a frame needs; handed back untouched when the frame reaches the pipe.
struct SceneFrameTimes {
    int64_t device_time_ns = 0;
    int64_t mono_ns = 0;
};

class SceneWriter {
public:
    struct Callbacks {
        // Loop thread, in frame order: the frame went into the pipe (with hold_until_released: is
        // on its way, held until released) as frame `index` (0-based within this file) with this
        // pts (µs from the file's first frame). Not intact: packets of this frame or of one it
        // depends on (since the last keyframe) were lost.
        std::function<void(uint64_t index, int64_t pts_us, const SceneFrameTimes& times, bool intact)> frame_written;
        // A human-readable line for the module log (ffmpeg's stderr lines, warnings).
        std::function<void(const std::string& level, const std::string& line)> log;
        // ffmpeg exited on its own before stop() (crash, kill): the file holds what was written.
        std::function<void(const std::string& why)> failed;
    };

    // Throws std::runtime_error (with the output path / executable) when ffmpeg cannot start.
    SceneWriter(uv::Loop& loop, SceneWriterOptions options, Callbacks callbacks);
    // Kills ffmpeg (SIGKILL) if it still runs; prefer stop().
    ~SceneWriter();
    SceneWriter(const SceneWriter&) = delete;
    SceneWriter& operator=(const SceneWriter&) = delete;

    // Loop thread. False when the frame was dropped (pipe full, waiting for a keyframe, nothing of
    // it arrived, damaged without keep_damaged, stopped). Frames arrive in RTP order; pts come from (rtp_timestamp - first) / clock rate.
    bool write(AccessUnit&& unit, const SceneFrameTimes& times);
    // Overlay mode: the gaze point drawn into frames from now on (scene pixels); none = no marker.
    void set_gaze(float x_px, float y_px, bool valid);

    // hold_until_released: the frames before `frames` (index < frames) may go to ffmpeg now.
    void release_through(uint64_t frames);

    // Closes stdin so ffmpeg finalizes the file, escalates to SIGTERM/SIGKILL after the timeout,
    // and calls done(ok, message) once ffmpeg is gone (ok: exited 0 after EOF) and the file is
    // fdatasync'd. Frames still held are released first: call it once their rows are on the disk.
    void stop(std::function<void(bool ok, const std::string& message)> done);

    uint64_t frames_written() const;
    uint64_t frames_dropped() const;
    uint64_t frames_damaged() const;     // written, not intact
    size_t pipe_bytes() const;           // queued in the pipe (and held) right now
    uint64_t frames_held() const;        // waiting for release_through()
    uint64_t output_syncs() const;       // fdatasyncs of the output done
    size_t pipe_bytes_max() const;       // high-water mark
    int ffmpeg_pid() const;              // 0 when not running
    const std::string& output_path() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace pilogger::neon

// The scene video of one trial file, written in this process as a fragmented MP4 (the shared
// media::Fmp4Writer; a kill loses at most the last fragment) with every frame at its RTP
// timestamp as pts (track timescale = the RTP clock rate).
//   overlay off: the H.264 access units are muxed as they came (no re-encode, little CPU);
//   overlay on:  frames are decoded, the latest gaze point is drawn in, and libx264 encodes them.
// Muxing, decoding, encoding, write(2) and fdatasync run on the writer's own thread (SceneWorker);
// the loop thread only checks timestamps, counts and queues. A full queue drops the frame and
// counts it (pass-through then skips to the next keyframe so the file stays decodable).
// A frame with lost packets is kept as far as it came (keep_damaged; the decoder conceals the
// rest) and reported not intact, as is every frame after it until a whole keyframe.
// Each fragment is fdatasync'd as soon as it is written (fragments start at keyframes, at most a
// second apart), and once more when the file is finished, before stop() reports.
// With hold_until_released, no frame reaches the file before its CSV row: pass-through frames
// wait in this process (counted in the back-pressure) until the owner calls release_through() for
// them; in overlay mode the worker waits before writing a fragment whose rows are not released.
#pragma once

#include "h264_depacketizer.hpp"
#include "uv.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace pilogger::neon {

struct SceneWriterOptions {
    std::string output_path;             // created new; an existing file is an error
    uint32_t rtp_clock_rate = 90000;     // the video track's rtpmap clock rate: pts time base
    std::string parameter_sets_annexb;   // SPS/PPS from the SDP, put before the first keyframe
    bool overlay = false;
    bool keep_damaged = true;            // false: drop a damaged frame and skip to the next keyframe
    std::string overlay_preset = "ultrafast";
    int overlay_crf = 23;
    size_t max_pipe_bytes = 64u << 20;   // pass-through: bytes held and queued for the worker
    size_t overlay_queue_frames = 30;    // overlay: units waiting for the decoder (about a second)
    bool hold_until_released = false;    // frames go to the file only through release_through()
};

// What the CSV row of a frame needs; handed back untouched when the frame is on its way.
struct SceneFrameTimes {
    int64_t device_time_ns = 0;
    int64_t mono_ns = 0;
};

class SceneWriter {
public:
    struct Callbacks {
        // Loop thread, in frame order: the frame is on its way to the file (with
        // hold_until_released: held until released) as frame `index` (0-based within this file) with this
        // pts (µs from the file's first frame). Not intact: packets of this frame or of one it
        // depends on (since the last keyframe) were lost.
        std::function<void(uint64_t index, int64_t pts_us, const SceneFrameTimes& times, bool intact)> frame_written;
        // A human-readable line for the module log (warnings, errors).
        std::function<void(const std::string& level, const std::string& line)> log;
        // Writing failed before stop() (disk full, encoder error): the file keeps its complete
        // fragments. Called from a timer: the owner may destroy the writer in it.
        std::function<void(const std::string& why)> failed;
    };

    // Throws std::runtime_error (with the output path) when the file cannot be made.
    SceneWriter(uv::Loop& loop, SceneWriterOptions options, Callbacks callbacks);
    // Abandons what is queued; the file keeps its complete fragments. Prefer stop().
    ~SceneWriter();
    SceneWriter(const SceneWriter&) = delete;
    SceneWriter& operator=(const SceneWriter&) = delete;

    // Loop thread. False when the frame was dropped (queue full, waiting for a keyframe, nothing of
    // it arrived, damaged without keep_damaged, stopped). Frames arrive in RTP order; pts come from (rtp_timestamp - first) / clock rate.
    bool write(AccessUnit&& unit, const SceneFrameTimes& times);
    // Overlay mode: the gaze point drawn into frames from now on (scene pixels); none = no marker.
    void set_gaze(float x_px, float y_px, bool valid);

    // hold_until_released: the frames before `frames` (index < frames) may go to the file now.
    void release_through(uint64_t frames);

    // Finishes the file (the last fragment, the trailer, fdatasync) on the worker and calls
    // done(ok, message) on the loop afterwards. Frames still held are released first: call it
    // once their rows are on the disk.
    void stop(std::function<void(bool ok, const std::string& message)> done);

    uint64_t frames_written() const;
    uint64_t frames_dropped() const;
    uint64_t frames_damaged() const;     // written, not intact
    size_t pipe_bytes() const;           // queued for the worker (and held) right now
    uint64_t frames_held() const;        // waiting for release_through()
    uint64_t output_syncs() const;       // fdatasyncs of the output done
    size_t pipe_bytes_max() const;       // high-water mark
    const std::string& output_path() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace pilogger::neon

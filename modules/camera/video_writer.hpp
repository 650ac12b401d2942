// H.264 encoding (libx264 or the Pi's V4L2 hardware encoder) into a fragmented MP4 that a reader
// can open after a crash: empty moov up front, then self-contained fragments of at most
// fragment_ms, each starting with a keyframe when the encoder makes one a second.
//
// The file is the shared media::Fmp4Writer: right before a fragment goes to the file the
// before_write hook learns how many frames the file will then hold (the recorder writes and
// fdatasyncs their CSV rows there), and right after it the file is fdatasync'd.
//
// Blocking (encoding, write(2), fdatasync): used only on the recorder's thread.
#pragma once

#include "av_util.hpp"
#include "camera_settings.hpp"
#include "fmp4_writer.hpp"
#include "frame.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace pilogger::camera {

class VideoWriter {
public:
    // Runs on the writer's thread before muxer bytes are written, with the number of frames the
    // file holds once they are. 0 lets the bytes go; an errno refuses them (the write fails).
    using BeforeWrite = media::Fmp4Writer::BeforeWrite;

    // Opens the encoder and creates path (never an existing file: O_EXCL).
    // Throws std::runtime_error naming the file and the reason.
    // The header (ftyp and an empty moov) is written and fdatasync'd here when the encoder has a
    // global header; before_write sees it with 0 frames.
    VideoWriter(std::string path, int width, int height, const CameraSettings& settings, const ColorInfo& color,
                BeforeWrite before_write = {});
    // Without finish(): the file keeps what was written (all complete fragments).
    ~VideoWriter();
    VideoWriter(const VideoWriter&) = delete;
    VideoWriter& operator=(const VideoWriter&) = delete;

    // pts_us must increase strictly. The frame is held (not copied) until the encoder is done with
    // it. When a fragment went to the file, it is fdatasync'd before this returns.
    void write(const FramePtr& frame, int64_t pts_us);
    // Drains the encoder, writes the last fragment and the trailer, fdatasyncs and closes the file.
    void finish();

    const std::string& path() const { return path_; }
    uint64_t bytes_written() const { return mp4_->bytes_written(); }
    uint64_t packets_written() const { return mp4_->packets_written(); }  // handed to the muxer
    uint64_t frames_in_file() const { return mp4_->frames_in_file(); }
    const std::string& encoder_name() const { return encoder_name_; }

private:
    void open_encoder(int width, int height, const CameraSettings& settings, const ColorInfo& color);
    void drain();
    [[noreturn]] void fail(const std::string& what, int av_code);

    std::string path_;
    std::string encoder_name_;
    AvCodecContextPtr codec_;
    AvPacketPtr packet_;
    std::unique_ptr<media::Fmp4Writer> mp4_;
    bool finished_ = false;
    int64_t last_pts_us_ = -1;
};

}  // namespace pilogger::camera

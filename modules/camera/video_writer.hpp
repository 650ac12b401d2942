// H.264 encoding (libx264 or the Pi's V4L2 hardware encoder) into a fragmented MP4 that a reader
// can open after a crash: empty moov up front, then self-contained fragments of at most
// fragment_ms, each starting with a keyframe when the encoder makes one a second.
//
// The muxer keeps a fragment's frames in memory and writes the whole fragment at once when the
// next one begins (or at finish). Right before those bytes go to the file, the before_write hook
// learns how many frames the file will then hold (the recorder writes and fdatasyncs their CSV
// rows there), and right after them the file is fdatasync'd: a fragment is on the disk a moment
// after it leaves the muxer, and never before the rows of its frames.
//
// Blocking (encoding, write(2), fdatasync): used only on the recorder's thread.
#pragma once

#include "av_util.hpp"
#include "camera_settings.hpp"
#include "frame.hpp"
#include "output_file.hpp"

#include <cstdint>
#include <functional>
#include <string>

namespace pilogger::camera {

class VideoWriter {
public:
    // Runs on the writer's thread before muxer bytes are written, with the number of frames the
    // file holds once they are. 0 lets the bytes go; an errno refuses them (the write fails).
    using BeforeWrite = std::function<int(uint64_t frames_in_file)>;

    // Creates path (never an existing file: O_EXCL) and opens the encoder.
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

    const std::string& path() const { return file_.path(); }
    uint64_t bytes_written() const { return file_.bytes_written(); }
    uint64_t packets_written() const { return packets_; }  // handed to the muxer
    uint64_t frames_in_file() const { return frames_in_file_; }
    const std::string& encoder_name() const { return encoder_name_; }

private:
    struct AvioFree {
        void operator()(AVIOContext* io) const;
    };
#if LIBAVFORMAT_VERSION_MAJOR >= 61
    using IoBuffer = const uint8_t*;  // FFmpeg 7 made the write callback's buffer const
#else
    using IoBuffer = uint8_t*;
#endif
    static int write_callback(void* opaque, IoBuffer buf, int size);
    static int64_t seek_callback(void* opaque, int64_t offset, int whence);

    void open_encoder(int width, int height, const CameraSettings& settings, const ColorInfo& color);
    void open_muxer(const CameraSettings& settings);
    void drain();
    void write_packet(AVPacket* packet);
    void write_header(const AVPacket* first_packet);
    // fdatasync if bytes went to the file since the last one.
    void sync_written();
    [[noreturn]] void fail(const std::string& what, int av_code);

    // Declared before the FFmpeg contexts so that it is destroyed (closed) after them.
    OutputFile file_;
    std::string encoder_name_;
    AvCodecContextPtr codec_;
    std::unique_ptr<AVIOContext, AvioFree> io_;
    AvFormatContextPtr format_;
    AVStream* stream_ = nullptr;
    AvPacketPtr packet_;
    AVDictionary* muxer_options_ = nullptr;
    bool header_written_ = false;
    bool finished_ = false;
    int64_t frame_period_us_ = 0;
    int64_t last_pts_us_ = -1;
    uint64_t packets_ = 0;
    // Frames the bytes the muxer is writing now contain: those handed to it before the current
    // packet (a fragment ends where the next begins), all of them at finish.
    uint64_t flushing_frames_ = 0;
    uint64_t frames_in_file_ = 0;
    uint64_t synced_bytes_ = 0;
    BeforeWrite before_write_;
    int write_errno_ = 0;
};

}  // namespace pilogger::camera

// H.264 encoding (libx264 or the Pi's V4L2 hardware encoder) into a fragmented MP4 that a reader
// can open after a crash: empty moov up front, then self-contained fragments of at most
// fragment_ms, each starting with a keyframe when the encoder makes one a second.
//
// Blocking (encoding, write(2), fdatasync): used only on the recorder's thread.
#pragma once

#include "av_util.hpp"
#include "camera_settings.hpp"
#include "frame.hpp"
#include "output_file.hpp"

#include <cstdint>
#include <string>

namespace pilogger::camera {

class VideoWriter {
public:
    // Creates path (never an existing file: O_EXCL) and opens the encoder.
    // Throws std::runtime_error naming the file and the reason.
    VideoWriter(std::string path, int width, int height, const CameraSettings& settings, const ColorInfo& color);
    // Without finish(): the file keeps what was written (all complete fragments).
    ~VideoWriter();
    VideoWriter(const VideoWriter&) = delete;
    VideoWriter& operator=(const VideoWriter&) = delete;

    // pts_us must increase strictly. The frame is held (not copied) until the encoder is done with it.
    void write(const FramePtr& frame, int64_t pts_us);
    // Drains the encoder, writes the trailer, fdatasyncs and closes the file.
    void finish();
    // fdatasync when something was written and the last sync is at least interval_ns old.
    void sync_if_due(int64_t now_ns, int64_t interval_ns);

    const std::string& path() const { return file_.path(); }
    uint64_t bytes_written() const { return file_.bytes_written(); }
    uint64_t packets_written() const { return packets_; }
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
    int write_errno_ = 0;
};

}  // namespace pilogger::camera

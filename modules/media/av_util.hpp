// Owners for FFmpeg objects (RAII), and FFmpeg errors as text: shared by the camera and the eye
// tracker, in a library of its own so neither drags in the other's dependencies.
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
}

#include <memory>
#include <string>

namespace pilogger {

#if LIBAVFORMAT_VERSION_MAJOR >= 61
using AvioWriteBuffer = const uint8_t*;  // FFmpeg 7 made the AVIO write callback's buffer const
#else
using AvioWriteBuffer = uint8_t*;
#endif

struct AvFrameFree {
    void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct AvPacketFree {
    void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct AvCodecContextFree {
    void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct AvCodecParametersFree {
    void operator()(AVCodecParameters* p) const { avcodec_parameters_free(&p); }
};
struct SwsContextFree {
    void operator()(SwsContext* s) const { sws_freeContext(s); }
};
// Frees the format context only; a custom AVIOContext is owned by its own AvioContextPtr.
struct AvFormatContextFree {
    void operator()(AVFormatContext* f) const { avformat_free_context(f); }
};
// A custom AVIOContext and the buffer it was made with (FFmpeg may have replaced the buffer).
struct AvioContextFree {
    void operator()(AVIOContext* io) const {
        av_freep(&io->buffer);
        avio_context_free(&io);
    }
};
struct AvDictionaryFree {
    void operator()(AVDictionary* d) const { av_dict_free(&d); }
};

using AvFramePtr = std::unique_ptr<AVFrame, AvFrameFree>;
using AvPacketPtr = std::unique_ptr<AVPacket, AvPacketFree>;
using AvCodecContextPtr = std::unique_ptr<AVCodecContext, AvCodecContextFree>;
using AvCodecParametersPtr = std::unique_ptr<AVCodecParameters, AvCodecParametersFree>;
using SwsContextPtr = std::unique_ptr<SwsContext, SwsContextFree>;
using AvFormatContextPtr = std::unique_ptr<AVFormatContext, AvFormatContextFree>;
using AvioContextPtr = std::unique_ptr<AVIOContext, AvioContextFree>;

// "Invalid argument (-22)"
std::string av_error_text(int code);

// FFmpeg's own log lines (from any thread) at `level` and above go through the process's stderr
// queue, like the module's log: a stalled log reader never blocks an encoder or the loop.
void route_ffmpeg_log(int level);

}  // namespace pilogger

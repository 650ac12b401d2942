// Owners for the FFmpeg objects the camera module uses, and FFmpeg errors as text.
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
}

#include <memory>
#include <string>

namespace pilogger::camera {

struct AvFrameFree {
    void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct AvPacketFree {
    void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct AvCodecContextFree {
    void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct SwsContextFree {
    void operator()(SwsContext* s) const { sws_freeContext(s); }
};
// Frees the format context only; its AVIOContext is owned separately (see video_writer.cpp).
struct AvFormatContextFree {
    void operator()(AVFormatContext* f) const { avformat_free_context(f); }
};
struct AvDictionaryFree {
    void operator()(AVDictionary* d) const { av_dict_free(&d); }
};

using AvFramePtr = std::unique_ptr<AVFrame, AvFrameFree>;
using AvPacketPtr = std::unique_ptr<AVPacket, AvPacketFree>;
using AvCodecContextPtr = std::unique_ptr<AVCodecContext, AvCodecContextFree>;
using SwsContextPtr = std::unique_ptr<SwsContext, SwsContextFree>;
using AvFormatContextPtr = std::unique_ptr<AVFormatContext, AvFormatContextFree>;

// "Invalid argument (-22)"
std::string av_error_text(int code);

}  // namespace pilogger::camera

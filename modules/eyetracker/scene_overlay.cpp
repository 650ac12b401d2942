#include "scene_overlay.hpp"

#include "h264.hpp"

extern "C" {
#include <libavutil/imgutils.h>
}

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace pilogger::neon {

namespace {

constexpr int kDecoderThreads = 2;
constexpr int kGopFrames = 30;
// x264 would take the RTP clock for the frame rate (level 6.2 in the SPS, which hardware
// decoders refuse); the Neon's scene runs at 30 Hz.
constexpr AVRational kSceneRate{30, 1};

// Limited-range BT.601 red: visible on most scenes, the colour a gaze marker usually has.
constexpr uint8_t kRingY = 82;
constexpr uint8_t kRingU = 90;
constexpr uint8_t kRingV = 240;

}  // namespace

void draw_gaze_ring(AVFrame& frame, const Gaze& gaze) {
    if (!gaze.valid || !std::isfinite(gaze.x) || !std::isfinite(gaze.y)) return;
    const int width = frame.width;
    const int height = frame.height;
    const double scale = std::max(width / 1600.0, height / 1200.0);
    const double radius = std::max(8.0, 20.0 * scale);
    const double half_width = std::max(1.5, 2.5 * scale);
    const uint8_t values[3] = {kRingY, kRingU, kRingV};
    for (int p = 0; p < 3; ++p) {
        const int sub = p == 0 ? 1 : 2;
        const int plane_w = (width + sub - 1) / sub;
        const int plane_h = (height + sub - 1) / sub;
        // Chroma samples cover sub x sub luma pixels: widen their ring so it covers the luma one.
        const double slack = (sub - 1) * 0.5;
        const double reach = radius + half_width + slack;
        const int x0 = std::max(0, static_cast<int>(std::floor((gaze.x - reach) / sub)));
        const int x1 = std::min(plane_w - 1, static_cast<int>(std::ceil((gaze.x + reach) / sub)));
        const int y0 = std::max(0, static_cast<int>(std::floor((gaze.y - reach) / sub)));
        const int y1 = std::min(plane_h - 1, static_cast<int>(std::ceil((gaze.y + reach) / sub)));
        for (int row = y0; row <= y1; ++row) {
            uint8_t* line = frame.data[p] + static_cast<ptrdiff_t>(row) * frame.linesize[p];
            const double dy = row * sub + slack - gaze.y;
            for (int col = x0; col <= x1; ++col) {
                const double dx = col * sub + slack - gaze.x;
                if (std::abs(std::sqrt(dx * dx + dy * dy) - radius) <= half_width + slack) line[col] = values[p];
            }
        }
    }
}

OverlayTranscoder::OverlayTranscoder(std::string context, AVRational time_base, std::string preset, int crf)
    : context_(std::move(context)),
      time_base_(time_base),
      preset_(std::move(preset)),
      crf_(crf),
      decoder_(media::open_h264_decoder(context_, kDecoderThreads, false)),
      decoded_(av_frame_alloc()),
      drawn_(av_frame_alloc()),
      packet_(av_packet_alloc()) {
    if (!decoded_ || !drawn_ || !packet_) throw std::runtime_error(context_ + ": out of memory for frames");
}

int OverlayTranscoder::send(std::string_view annexb, int64_t pts, bool keyframe) {
    AvPacketPtr packet = media::packet_copy_of(annexb);
    if (!packet) throw std::runtime_error(context_ + ": out of memory for a packet");
    packet->pts = packet->dts = pts;
    if (keyframe) packet->flags |= AV_PKT_FLAG_KEY;
    return avcodec_send_packet(decoder_.get(), packet.get());
}

void OverlayTranscoder::send_end() { avcodec_send_packet(decoder_.get(), nullptr); }

const AVFrame* OverlayTranscoder::receive(std::string& error) {
    av_frame_unref(decoded_.get());
    const int rc = avcodec_receive_frame(decoder_.get(), decoded_.get());
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return nullptr;
    if (rc < 0) {
        error = context_ + ": decoding failed: " + av_error_text(rc);
        return nullptr;
    }
    if (decoded_->pts == AV_NOPTS_VALUE) decoded_->pts = decoded_->best_effort_timestamp;
    return decoded_.get();
}

void OverlayTranscoder::open_encoder(const AVFrame& picture) {
    const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
    if (codec == nullptr) throw std::runtime_error(context_ + ": this FFmpeg has no libx264 encoder for the overlay");
    AvCodecContextPtr c(avcodec_alloc_context3(codec));
    if (!c) throw std::runtime_error(context_ + ": out of memory for the encoder");
    c->width = picture.width;
    c->height = picture.height;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->color_range = picture.color_range;
    // Every frame keeps its RTP pts: no frame rate conversion.
    c->time_base = time_base_;
    c->framerate = kSceneRate;
    c->gop_size = kGopFrames;
    c->max_b_frames = 0;  // packets in frame order: CSV row k is video frame k
    c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    AVDictionary* options = nullptr;
    av_dict_set(&options, "preset", preset_.c_str(), 0);
    av_dict_set_int(&options, "crf", crf_, 0);
    const int rc = avcodec_open2(c.get(), codec, &options);
    av_dict_free(&options);
    if (rc < 0) {
        throw std::runtime_error(context_ + ": cannot open libx264 (preset " + preset_ + ", crf " + std::to_string(crf_) +
                                 ") for " + std::to_string(picture.width) + "x" + std::to_string(picture.height) + ": " +
                                 av_error_text(rc));
    }
    encoder_ = std::move(c);
    drawn_->format = AV_PIX_FMT_YUV420P;
    drawn_->width = picture.width;
    drawn_->height = picture.height;
    if (av_frame_get_buffer(drawn_.get(), 0) < 0) throw std::runtime_error(context_ + ": out of memory for frames");
}

bool OverlayTranscoder::encode(const AVFrame& picture, const Gaze& gaze, const PacketSink& sink) {
    if (!encoder_) open_encoder(picture);
    if (picture.width != encoder_->width || picture.height != encoder_->height) return false;
    // The encoder may still hold the last picture: a fresh buffer then.
    if (av_frame_make_writable(drawn_.get()) < 0) throw std::runtime_error(context_ + ": out of memory for frames");
    if (picture.format == AV_PIX_FMT_YUV420P || picture.format == AV_PIX_FMT_YUVJ420P) {
        av_image_copy(drawn_->data, drawn_->linesize, const_cast<const uint8_t**>(picture.data), picture.linesize,
                      AV_PIX_FMT_YUV420P, picture.width, picture.height);
    } else {
        // The Neon sends yuv420p; anything else is converted.
        sws_.reset(sws_getCachedContext(sws_.release(), picture.width, picture.height,
                                        static_cast<AVPixelFormat>(picture.format), picture.width, picture.height,
                                        AV_PIX_FMT_YUV420P, SWS_BILINEAR, nullptr, nullptr, nullptr));
        if (!sws_) throw std::runtime_error(context_ + ": cannot convert the decoder's pixel format to yuv420p");
        sws_scale(sws_.get(), picture.data, picture.linesize, 0, picture.height, drawn_->data, drawn_->linesize);
    }
    draw_gaze_ring(*drawn_, gaze);
    drawn_->pts = picture.pts;
    const int rc = avcodec_send_frame(encoder_.get(), drawn_.get());
    if (rc < 0) throw std::runtime_error(context_ + ": libx264 refused a frame: " + av_error_text(rc));
    drain(sink);
    return true;
}

void OverlayTranscoder::flush(const PacketSink& sink) {
    if (!encoder_) return;
    const int rc = avcodec_send_frame(encoder_.get(), nullptr);
    if (rc < 0 && rc != AVERROR_EOF) throw std::runtime_error(context_ + ": flushing libx264 failed: " + av_error_text(rc));
    drain(sink);
}

void OverlayTranscoder::drain(const PacketSink& sink) {
    while (true) {
        const int rc = avcodec_receive_packet(encoder_.get(), packet_.get());
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
        if (rc < 0) throw std::runtime_error(context_ + ": libx264 failed: " + av_error_text(rc));
        sink(*packet_);
        av_packet_unref(packet_.get());
    }
}

}  // namespace pilogger::neon

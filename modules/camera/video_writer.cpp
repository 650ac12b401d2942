#include "video_writer.hpp"

#include "clock.hpp"

extern "C" {
#include <libavutil/opt.h>
}

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace pilogger::camera {

namespace {

constexpr AVRational kMicroseconds{1, 1'000'000};

}  // namespace

VideoWriter::VideoWriter(std::string path, int width, int height, const CameraSettings& settings,
                         const ColorInfo& color, BeforeWrite before_write)
    : path_(std::move(path)) {
    open_encoder(width, height, settings, color);
    AvCodecParametersPtr params(avcodec_parameters_alloc());
    if (!params) throw std::runtime_error("out of memory for " + path_);
    const int rc = avcodec_parameters_from_context(params.get(), codec_.get());
    if (rc < 0) fail("codec parameters", rc);
    media::Fmp4Options options;
    options.fragment_ms = settings.fragment_ms;
    options.track_timescale = 1'000'000;
    options.default_duration = std::max<int64_t>(1, std::llround(1e6 / settings.fps));
    mp4_ = std::make_unique<media::Fmp4Writer>(path_, *params, codec_->time_base, codec_->framerate, options,
                                               std::move(before_write));
}

VideoWriter::~VideoWriter() = default;

void VideoWriter::fail(const std::string& what, int av_code) {
    throw std::runtime_error(path_ + ": " + what + ": " + av_error_text(av_code));
}

void VideoWriter::open_encoder(int width, int height, const CameraSettings& settings, const ColorInfo& color) {
    const AVCodec* codec = avcodec_find_encoder_by_name(settings.encoder.c_str());
    if (codec == nullptr) {
        throw std::runtime_error("this FFmpeg has no " + settings.encoder + " encoder (libavcodec " +
                                 AV_STRINGIFY(LIBAVCODEC_VERSION) + ")");
    }
    encoder_name_ = codec->name;
    codec_.reset(avcodec_alloc_context3(codec));
    if (!codec_) throw std::runtime_error("out of memory for the " + settings.encoder + " encoder");
    AVCodecContext* c = codec_.get();
    c->width = width;
    c->height = height;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    // pts are the frames' own timestamps in microseconds: variable intervals stay exact.
    c->time_base = kMicroseconds;
    c->framerate = av_d2q(settings.fps, 1'000'000);
    c->gop_size = settings.gop_frames();
    c->max_b_frames = 0;  // packets in frame order: CSV row k is video frame k
    c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    c->thread_count = settings.encoder_threads;
    c->color_range = color.full_range ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG;
    c->colorspace = static_cast<AVColorSpace>(color.matrix);
    c->color_primaries = static_cast<AVColorPrimaries>(color.primaries);
    c->color_trc = static_cast<AVColorTransferCharacteristic>(color.transfer);

    AVDictionary* options = nullptr;
    if (encoder_name_ == "libx264") {
        av_dict_set(&options, "preset", settings.preset.c_str(), 0);
        if (settings.tune != "none") av_dict_set(&options, "tune", settings.tune.c_str(), 0);
        if (settings.bitrate_kbps > 0) {
            c->bit_rate = int64_t{settings.bitrate_kbps} * 1000;
            c->rc_max_rate = c->bit_rate;
            c->rc_buffer_size = static_cast<int>(std::min<int64_t>(c->bit_rate * 2, INT32_MAX));
        } else {
            av_dict_set_int(&options, "crf", settings.crf, 0);
        }
    } else {
        // The hardware encoder has no constant-quality mode: it needs a bit rate.
        c->bit_rate = int64_t{settings.bitrate_kbps > 0 ? settings.bitrate_kbps : 10000} * 1000;
    }
    int rc = avcodec_open2(c, codec, &options);
    av_dict_free(&options);
    if (rc < 0) {
        throw std::runtime_error("cannot open the " + encoder_name_ + " encoder for " + std::to_string(width) + "x" +
                                 std::to_string(height) + ": " + av_error_text(rc));
    }
    packet_.reset(av_packet_alloc());
    if (!packet_) throw std::runtime_error("out of memory for packets");
}

void VideoWriter::write(const FramePtr& frame, int64_t pts_us) {
    if (finished_) throw std::runtime_error(path() + ": write after finish");
    if (pts_us <= last_pts_us_) {
        throw std::runtime_error(path() + ": pts " + std::to_string(pts_us) + " does not increase");
    }
    AvFramePtr f(av_frame_alloc());
    if (!f) throw std::runtime_error("out of memory for a frame of " + path());
    f->format = AV_PIX_FMT_YUV420P;
    f->width = frame->width;
    f->height = frame->height;
    for (int p = 0; p < 3; ++p) {
        f->data[p] = frame->data[p];
        f->linesize[p] = frame->linesize[p];
    }
    f->pts = pts_us;
    // Reference the pool buffer instead of copying it: the encoder lets go through this free hook.
    auto* holder = new FramePtr(frame);
    size_t bytes = static_cast<size_t>(frame->linesize[0]) * static_cast<size_t>(frame->height) * 3 / 2;
    f->buf[0] = av_buffer_create(
        frame->data[0], bytes, [](void* opaque, uint8_t*) { delete static_cast<FramePtr*>(opaque); }, holder,
        AV_BUFFER_FLAG_READONLY);
    if (f->buf[0] == nullptr) {
        delete holder;
        throw std::runtime_error("out of memory for a frame of " + path());
    }
    int rc = avcodec_send_frame(codec_.get(), f.get());
    if (rc < 0) fail("the encoder refused a frame", rc);
    last_pts_us_ = pts_us;
    drain();
}

void VideoWriter::drain() {
    while (true) {
        int rc = avcodec_receive_packet(codec_.get(), packet_.get());
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
        if (rc < 0) fail("encoding failed", rc);
        mp4_->write(*packet_);
    }
}

void VideoWriter::finish() {
    if (finished_) return;
    finished_ = true;
    const int rc = avcodec_send_frame(codec_.get(), nullptr);
    if (rc < 0 && rc != AVERROR_EOF) fail("flushing the encoder failed", rc);
    drain();
    mp4_->finish();
}

}  // namespace pilogger::camera

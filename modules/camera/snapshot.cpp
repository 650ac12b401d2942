#include "snapshot.hpp"

#include "av_util.hpp"
#include "clock.hpp"
#include "output_file.hpp"

#include <stdexcept>

namespace pilogger::camera {

using media::OutputFile;

std::vector<uint8_t> encode_image(const Frame& frame, const std::string& format) {
    const bool png = format == "png";
    const AVCodec* codec = avcodec_find_encoder(png ? AV_CODEC_ID_PNG : AV_CODEC_ID_MJPEG);
    if (codec == nullptr) throw std::runtime_error(std::string("this FFmpeg has no ") + (png ? "PNG" : "JPEG") + " encoder");
    // JPEG wants full-range YUV: swscale stretches the range (set below), the encoder is told so.
    const AVPixelFormat target = png ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_YUV420P;

    AvFramePtr image(av_frame_alloc());
    if (!image) throw std::runtime_error("out of memory for a snapshot");
    image->format = target;
    image->width = frame.width;
    image->height = frame.height;
    int rc = av_frame_get_buffer(image.get(), 0);
    if (rc < 0) throw std::runtime_error("out of memory for a snapshot: " + av_error_text(rc));
    SwsContextPtr sws(sws_getContext(frame.width, frame.height, AV_PIX_FMT_YUV420P, frame.width, frame.height, target,
                                     SWS_BICUBIC, nullptr, nullptr, nullptr));
    if (!sws) throw std::runtime_error("cannot convert the frame for a snapshot");
    if (!png) {
        const int* coefficients = sws_getCoefficients(SWS_CS_ITU601);
        sws_setColorspaceDetails(sws.get(), coefficients, 0, coefficients, 1, 0, 1 << 16, 1 << 16);
        image->color_range = AVCOL_RANGE_JPEG;
    }
    sws_scale(sws.get(), frame.data, frame.linesize, 0, frame.height, image->data, image->linesize);

    AvCodecContextPtr ctx(avcodec_alloc_context3(codec));
    if (!ctx) throw std::runtime_error("out of memory for a snapshot encoder");
    ctx->width = frame.width;
    ctx->height = frame.height;
    ctx->pix_fmt = target;
    ctx->time_base = AVRational{1, 30};
    if (!png) {
        ctx->color_range = AVCOL_RANGE_JPEG;
        ctx->flags |= AV_CODEC_FLAG_QSCALE;
        ctx->global_quality = FF_QP2LAMBDA * 3;  // high quality
        image->quality = ctx->global_quality;
    }
    rc = avcodec_open2(ctx.get(), codec, nullptr);
    if (rc < 0) throw std::runtime_error("cannot open the snapshot encoder: " + av_error_text(rc));
    image->pts = 0;
    rc = avcodec_send_frame(ctx.get(), image.get());
    if (rc < 0) throw std::runtime_error("snapshot encoding failed: " + av_error_text(rc));
    rc = avcodec_send_frame(ctx.get(), nullptr);
    if (rc < 0) throw std::runtime_error("snapshot encoding failed: " + av_error_text(rc));
    AvPacketPtr packet(av_packet_alloc());
    if (!packet) throw std::runtime_error("out of memory for a snapshot");
    rc = avcodec_receive_packet(ctx.get(), packet.get());
    if (rc < 0) throw std::runtime_error("snapshot encoding gave no image: " + av_error_text(rc));
    return std::vector<uint8_t>(packet->data, packet->data + packet->size);
}

std::string write_snapshot(const Frame& frame, const std::string& dir, const std::string& format,
                           int64_t realtime_ns, uint64_t& counter) {
    std::vector<uint8_t> bytes = encode_image(frame, format);
    const std::string stamp = format_utc_compact(realtime_ns);
    for (int attempt = 0; attempt < 1000; ++attempt) {
        std::string path = dir + "/snapshot_" + stamp + "_" + std::to_string(counter++) + "." + format;
        std::unique_ptr<OutputFile> file = OutputFile::create_if_free(path);
        if (!file) continue;
        file->write(bytes.data(), bytes.size());
        file->close();
        return path;
    }
    throw std::runtime_error("no free snapshot name in " + dir);
}

}  // namespace pilogger::camera

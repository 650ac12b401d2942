#include "libcamera_frames.hpp"

#include <libcamera/formats.h>

extern "C" {
#include <libavutil/imgutils.h>
}

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>

namespace pilogger::camera {

ColorInfo color_info(const std::optional<lc::ColorSpace>& space) {
    ColorInfo c;
    if (!space) return c;
    c.full_range = space->range == lc::ColorSpace::Range::Full;
    switch (space->ycbcrEncoding) {
        case lc::ColorSpace::YcbcrEncoding::Rec601: c.matrix = AVCOL_SPC_SMPTE170M; break;
        case lc::ColorSpace::YcbcrEncoding::Rec2020: c.matrix = AVCOL_SPC_BT2020_NCL; break;
        default: c.matrix = AVCOL_SPC_BT709; break;
    }
    switch (space->primaries) {
        case lc::ColorSpace::Primaries::Smpte170m: c.primaries = AVCOL_PRI_SMPTE170M; break;
        case lc::ColorSpace::Primaries::Rec2020: c.primaries = AVCOL_PRI_BT2020; break;
        default: c.primaries = AVCOL_PRI_BT709; break;
    }
    switch (space->transferFunction) {
        case lc::ColorSpace::TransferFunction::Srgb: c.transfer = AVCOL_TRC_IEC61966_2_1; break;
        case lc::ColorSpace::TransferFunction::Linear: c.transfer = AVCOL_TRC_LINEAR; break;
        default: c.transfer = AVCOL_TRC_BT709; break;
    }
    return c;
}

MappedBuffer::MappedBuffer(const lc::FrameBuffer& buffer) {
    // Planes often share one dmabuf at different offsets: map each fd once, over all its planes.
    std::map<int, size_t> extent;
    for (const auto& plane : buffer.planes()) {
        size_t end = static_cast<size_t>(plane.offset) + plane.length;
        extent[plane.fd.get()] = std::max(extent[plane.fd.get()], end);
    }
    std::map<int, uint8_t*> base;
    for (const auto& [fd, length] : extent) {
        void* m = mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            unmap();
            throw std::runtime_error(std::string("cannot mmap a camera buffer: ") + std::strerror(e));
        }
        maps_.emplace_back(m, length);
        base[fd] = static_cast<uint8_t*>(m);
    }
    for (const auto& plane : buffer.planes()) {
        planes_.push_back(base[plane.fd.get()] + plane.offset);
        lengths_.push_back(plane.length);
    }
}

void MappedBuffer::unmap() {
    for (auto& [m, length] : maps_) munmap(m, length);
    maps_.clear();
}

FrameConverter::FrameConverter(const lc::PixelFormat& format, int width, int height, unsigned int stride)
    : width_(width), height_(height), stride_(static_cast<int>(stride)) {
    if (format == lc::formats::YUV420) {
        kind_ = Kind::Yuv420;
    } else if (format == lc::formats::NV12) {
        kind_ = Kind::Nv12;
    } else if (format == lc::formats::MJPEG) {
        kind_ = Kind::Mjpeg;
        const AVCodec* codec = avcodec_find_decoder(AV_CODEC_ID_MJPEG);
        if (codec == nullptr) throw std::runtime_error("this FFmpeg has no MJPEG decoder");
        decoder_.reset(avcodec_alloc_context3(codec));
        if (!decoder_ || avcodec_open2(decoder_.get(), codec, nullptr) < 0) {
            throw std::runtime_error("cannot open the MJPEG decoder");
        }
        decoded_.reset(av_frame_alloc());
        packet_.reset(av_packet_alloc());
        if (!decoded_ || !packet_) throw std::runtime_error("out of memory for the MJPEG decoder");
    } else {
        kind_ = Kind::Packed;
        // libcamera names packed formats by the DRM convention (little-endian words):
        // RGB888 is B,G,R in memory, XRGB8888 is B,G,R,X.
        if (format == lc::formats::YUYV) {
            packed_ = AV_PIX_FMT_YUYV422;
        } else if (format == lc::formats::UYVY) {
            packed_ = AV_PIX_FMT_UYVY422;
        } else if (format == lc::formats::RGB888) {
            packed_ = AV_PIX_FMT_BGR24;
        } else if (format == lc::formats::BGR888) {
            packed_ = AV_PIX_FMT_RGB24;
        } else if (format == lc::formats::XRGB8888) {
            packed_ = AV_PIX_FMT_BGR0;
        } else if (format == lc::formats::XBGR8888) {
            packed_ = AV_PIX_FMT_RGB0;
        } else {
            throw std::runtime_error("pilogger cannot use the pixel format " + format.toString());
        }
    }
}

bool FrameConverter::convert(const MappedBuffer& in, const lc::FrameMetadata& meta, Frame& out) {
    const auto& p = in.planes();
    if (p.empty()) return false;
    const size_t luma = static_cast<size_t>(stride_) * static_cast<size_t>(height_);
    switch (kind_) {
        case Kind::Yuv420: {
            // Three planes, or one with the chroma planes right after the luma.
            const int cstride = stride_ / 2;
            const uint8_t* u = p.size() >= 3 ? p[1] : p[0] + luma;
            const uint8_t* v = p.size() >= 3 ? p[2] : u + static_cast<size_t>(cstride) * static_cast<size_t>(height_ / 2);
            av_image_copy_plane(out.data[0], out.linesize[0], p[0], stride_, width_, height_);
            av_image_copy_plane(out.data[1], out.linesize[1], u, cstride, width_ / 2, height_ / 2);
            av_image_copy_plane(out.data[2], out.linesize[2], v, cstride, width_ / 2, height_ / 2);
            return true;
        }
        case Kind::Nv12: {
            const uint8_t* src[4] = {p[0], p.size() >= 2 ? p[1] : p[0] + luma, nullptr, nullptr};
            const int src_stride[4] = {stride_, stride_, 0, 0};
            return scale(AV_PIX_FMT_NV12, width_, height_, src, src_stride, out);
        }
        case Kind::Packed: {
            const uint8_t* src[4] = {p[0], nullptr, nullptr, nullptr};
            const int src_stride[4] = {stride_, 0, 0, 0};
            return scale(packed_, width_, height_, src, src_stride, out);
        }
        case Kind::Mjpeg: return decode_jpeg(p[0], meta.planes().empty() ? in.lengths()[0] : meta.planes()[0].bytesused, out);
    }
    return false;
}

bool FrameConverter::scale(AVPixelFormat format, int w, int h, const uint8_t* const src[4], const int src_stride[4], Frame& out) {
    sws_.reset(sws_getCachedContext(sws_.release(), w, h, format, out.width, out.height, AV_PIX_FMT_YUV420P,
                                    SWS_BILINEAR, nullptr, nullptr, nullptr));
    if (!sws_) return false;
    sws_scale(sws_.get(), src, src_stride, 0, h, out.data, out.linesize);
    return true;
}

bool FrameConverter::decode_jpeg(const uint8_t* data, size_t size, Frame& out) {
    // The decoder reads a little past the end: copy into a padded buffer.
    jpeg_.assign(data, data + size);
    jpeg_.resize(size + AV_INPUT_BUFFER_PADDING_SIZE, 0);
    packet_->data = jpeg_.data();
    packet_->size = static_cast<int>(size);
    int rc = avcodec_send_packet(decoder_.get(), packet_.get());
    packet_->data = nullptr;
    packet_->size = 0;
    if (rc < 0) return false;
    rc = avcodec_receive_frame(decoder_.get(), decoded_.get());
    if (rc < 0) return false;
    bool ok = scale(static_cast<AVPixelFormat>(decoded_->format), decoded_->width, decoded_->height,
                    decoded_->data, decoded_->linesize, out);
    av_frame_unref(decoded_.get());
    return ok;
}

}  // namespace pilogger::camera

// From a completed libcamera buffer to a pooled YUV420 frame: the buffer's dmabufs mapped once,
// any supported pixel format copied, converted or decoded, and libcamera's colour space in
// FFmpeg's terms.
#pragma once

#include "av_util.hpp"
#include "frame.hpp"

#include <libcamera/color_space.h>
#include <libcamera/framebuffer.h>
#include <libcamera/pixel_format.h>

#include <optional>
#include <utility>
#include <vector>

namespace pilogger::camera {

namespace lc = libcamera;

// BT.709 limited range unless libcamera says otherwise.
ColorInfo color_info(const std::optional<lc::ColorSpace>& space);

// One FrameBuffer's dmabufs, mapped read-only once for the life of the allocation.
class MappedBuffer {
public:
    // Throws std::runtime_error when a dmabuf cannot be mapped.
    explicit MappedBuffer(const lc::FrameBuffer& buffer);
    ~MappedBuffer() { unmap(); }
    MappedBuffer(const MappedBuffer&) = delete;
    MappedBuffer& operator=(const MappedBuffer&) = delete;

    const std::vector<const uint8_t*>& planes() const { return planes_; }
    const std::vector<size_t>& lengths() const { return lengths_; }

private:
    void unmap();
    std::vector<std::pair<void*, size_t>> maps_;
    std::vector<const uint8_t*> planes_;
    std::vector<size_t> lengths_;
};

// Camera buffer (any supported pixel format) -> pooled YUV420 frame.
class FrameConverter {
public:
    // Throws std::runtime_error for a pixel format pilogger cannot use, or no MJPEG decoder.
    FrameConverter(const lc::PixelFormat& format, int width, int height, unsigned int stride);

    // False when the buffer cannot become a frame (a truncated or corrupt JPEG).
    bool convert(const MappedBuffer& in, const lc::FrameMetadata& meta, Frame& out);

private:
    enum class Kind { Yuv420, Nv12, Packed, Mjpeg };

    bool scale(AVPixelFormat format, int w, int h, const uint8_t* const src[4], const int src_stride[4], Frame& out);
    bool decode_jpeg(const uint8_t* data, size_t size, Frame& out);

    Kind kind_ = Kind::Yuv420;
    int width_;
    int height_;
    int stride_;
    AVPixelFormat packed_ = AV_PIX_FMT_NONE;
    SwsContextPtr sws_;
    AvCodecContextPtr decoder_;
    AvFramePtr decoded_;
    AvPacketPtr packet_;
    std::vector<uint8_t> jpeg_;
};

}  // namespace pilogger::camera

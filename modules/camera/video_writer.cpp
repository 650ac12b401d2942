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

constexpr int kIoBufferBytes = 256 * 1024;
constexpr AVRational kMicroseconds{1, 1'000'000};

// SPS and PPS NAL units (with their start codes) from an Annex B packet: the avcC the muxer
// needs when an encoder gives no global header (h264_v4l2m2m on some FFmpeg builds).
std::vector<uint8_t> parameter_sets(const uint8_t* data, size_t size) {
    std::vector<uint8_t> out;
    size_t i = 0;
    auto next_start = [&](size_t from) -> size_t {
        for (size_t p = from; p + 3 <= size; ++p) {
            if (data[p] == 0 && data[p + 1] == 0 && data[p + 2] == 1) return p;
        }
        return size;
    };
    i = next_start(0);
    while (i < size) {
        size_t nal = i + 3;
        size_t end = next_start(nal);
        size_t nal_end = end;
        while (nal_end > nal && data[nal_end - 1] == 0) --nal_end;  // trailing zeros belong to the next start code
        if (nal < size) {
            int type = data[nal] & 0x1F;
            if (type == 7 || type == 8) {
                static const uint8_t kStart[4] = {0, 0, 0, 1};
                out.insert(out.end(), kStart, kStart + 4);
                out.insert(out.end(), data + nal, data + nal_end);
            }
        }
        i = end;
    }
    return out;
}

}  // namespace

void VideoWriter::AvioFree::operator()(AVIOContext* io) const {
    if (io == nullptr) return;
    av_freep(&io->buffer);
    avio_context_free(&io);
}

VideoWriter::VideoWriter(std::string path, int width, int height, const CameraSettings& settings,
                         const ColorInfo& color, BeforeWrite before_write)
    : file_(std::move(path)), before_write_(std::move(before_write)) {
    frame_period_us_ = std::max<int64_t>(1, std::llround(1e6 / settings.fps));
    try {
        open_encoder(width, height, settings, color);
        open_muxer(settings);
        sync_written();
    } catch (...) {
        av_dict_free(&muxer_options_);
        format_.reset();
        io_.reset();
        throw;
    }
}

VideoWriter::~VideoWriter() {
    av_dict_free(&muxer_options_);
    // The format context never owns the custom AVIOContext: free it first, then the I/O.
    format_.reset();
    io_.reset();
}

void VideoWriter::fail(const std::string& what, int av_code) {
    std::string reason = write_errno_ != 0 ? std::strerror(write_errno_) : av_error_text(av_code);
    throw std::runtime_error(path() + ": " + what + ": " + reason);
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

void VideoWriter::open_muxer(const CameraSettings& settings) {
    AVFormatContext* raw = nullptr;
    int rc = avformat_alloc_output_context2(&raw, nullptr, "mp4", nullptr);
    if (rc < 0 || raw == nullptr) throw std::runtime_error("cannot make an MP4 muxer: " + av_error_text(rc));
    format_.reset(raw);

    auto* buffer = static_cast<unsigned char*>(av_malloc(kIoBufferBytes));
    if (buffer == nullptr) throw std::runtime_error("out of memory for " + path());
    io_.reset(avio_alloc_context(buffer, kIoBufferBytes, 1, this, nullptr, &VideoWriter::write_callback,
                                 &VideoWriter::seek_callback));
    if (!io_) {
        av_free(buffer);
        throw std::runtime_error("out of memory for " + path());
    }
    format_->pb = io_.get();
    // Our AVIOContext: FFmpeg must not close it. Every packet goes to the file at once.
    format_->flags |= AVFMT_FLAG_CUSTOM_IO | AVFMT_FLAG_FLUSH_PACKETS;

    stream_ = avformat_new_stream(format_.get(), nullptr);
    if (stream_ == nullptr) throw std::runtime_error("cannot add a video stream to " + path());
    stream_->time_base = kMicroseconds;
    stream_->avg_frame_rate = codec_->framerate;
    rc = avcodec_parameters_from_context(stream_->codecpar, codec_.get());
    if (rc < 0) fail("codec parameters", rc);

    // Fragmented MP4: an empty moov first, then moof+mdat fragments that stand on their own.
    av_dict_set(&muxer_options_, "movflags", "+frag_keyframe+empty_moov+default_base_moof+frag_discont", 0);
    av_dict_set_int(&muxer_options_, "frag_duration", int64_t{settings.fragment_ms} * 1000, 0);
    // Keep the frames' own pts (time since the trial start), never shifted to zero.
    av_dict_set(&muxer_options_, "avoid_negative_ts", "make_non_negative", 0);
    av_dict_set_int(&muxer_options_, "use_editlist", 0, 0);
    av_dict_set_int(&muxer_options_, "video_track_timescale", 1'000'000, 0);

    // With a global header (libx264) the moov can go out now; otherwise it waits for the first packet.
    if (codec_->extradata_size > 0) write_header(nullptr);
}

void VideoWriter::write_header(const AVPacket* first_packet) {
    if (stream_->codecpar->extradata_size == 0 && first_packet != nullptr) {
        std::vector<uint8_t> sets = parameter_sets(first_packet->data, static_cast<size_t>(first_packet->size));
        if (!sets.empty()) {
            auto* extradata = static_cast<uint8_t*>(av_mallocz(sets.size() + AV_INPUT_BUFFER_PADDING_SIZE));
            if (extradata == nullptr) throw std::runtime_error("out of memory for " + path());
            std::memcpy(extradata, sets.data(), sets.size());
            stream_->codecpar->extradata = extradata;
            stream_->codecpar->extradata_size = static_cast<int>(sets.size());
        }
    }
    int rc = avformat_write_header(format_.get(), &muxer_options_);
    if (rc < 0) fail("cannot write the MP4 header", rc);
    if (muxer_options_ != nullptr) {
        const AVDictionaryEntry* unused = av_dict_get(muxer_options_, "", nullptr, AV_DICT_IGNORE_SUFFIX);
        std::string key = unused != nullptr ? unused->key : "?";
        av_dict_free(&muxer_options_);
        throw std::runtime_error(path() + ": the MP4 muxer does not know the option " + key);
    }
    header_written_ = true;
}

int VideoWriter::write_callback(void* opaque, IoBuffer buf, int size) {
    auto* self = static_cast<VideoWriter*>(opaque);
    if (self->before_write_ && self->flushing_frames_ > self->frames_in_file_) {
        if (int e = self->before_write_(self->flushing_frames_); e != 0) {
            self->write_errno_ = e;
            return AVERROR(e);
        }
    }
    self->frames_in_file_ = std::max(self->frames_in_file_, self->flushing_frames_);
    if (int e = self->file_.try_write(buf, static_cast<size_t>(size)); e != 0) {
        self->write_errno_ = e;
        return AVERROR(e);
    }
    return size;
}

void VideoWriter::sync_written() {
    if (file_.bytes_written() == synced_bytes_) return;
    file_.sync();
    synced_bytes_ = file_.bytes_written();
}

int64_t VideoWriter::seek_callback(void* opaque, int64_t offset, int whence) {
    auto* self = static_cast<VideoWriter*>(opaque);
    if (whence == AVSEEK_SIZE) {
        struct stat st {};
        if (fstat(self->file_.fd(), &st) < 0) return AVERROR(errno);
        return st.st_size;
    }
    off_t pos = ::lseek(self->file_.fd(), static_cast<off_t>(offset), whence & ~AVSEEK_FORCE);
    return pos < 0 ? AVERROR(errno) : pos;
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
    sync_written();
}

void VideoWriter::drain() {
    while (true) {
        int rc = avcodec_receive_packet(codec_.get(), packet_.get());
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
        if (rc < 0) fail("encoding failed", rc);
        write_packet(packet_.get());
    }
}

void VideoWriter::write_packet(AVPacket* packet) {
    if (!header_written_) write_header(packet);
    packet->stream_index = stream_->index;
    // The muxer needs each sample's duration to close a fragment; the nominal period is the
    // best guess for the last one (the next frame's pts fixes every other).
    if (packet->duration <= 0) packet->duration = frame_period_us_;
    av_packet_rescale_ts(packet, codec_->time_base, stream_->time_base);
    // Whatever the muxer writes during this call is the fragment before this packet.
    flushing_frames_ = packets_;
    int rc = av_write_frame(format_.get(), packet);
    av_packet_unref(packet);
    if (rc < 0) fail("writing a frame failed", rc);
    ++packets_;
}

void VideoWriter::finish() {
    if (finished_) return;
    finished_ = true;
    int rc = avcodec_send_frame(codec_.get(), nullptr);
    if (rc < 0 && rc != AVERROR_EOF) fail("flushing the encoder failed", rc);
    drain();
    if (!header_written_) write_header(nullptr);
    flushing_frames_ = packets_;  // the last fragment holds the rest
    rc = av_write_trailer(format_.get());
    if (rc < 0) fail("writing the MP4 trailer failed", rc);
    avio_flush(io_.get());
    if (write_errno_ != 0) fail("writing failed", 0);
    file_.close();
}

}  // namespace pilogger::camera

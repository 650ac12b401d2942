#include "fmp4_writer.hpp"

#include "annexb.hpp"
#include "h264.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace pilogger::media {

namespace {

constexpr int kIoBufferBytes = 256 * 1024;

}  // namespace

Fmp4Writer::Fmp4Writer(std::string path, const AVCodecParameters& params, AVRational time_base,
                       AVRational frame_rate, const Fmp4Options& options, BeforeWrite before_write)
    : file_(std::move(path)), time_base_(time_base), options_(options), before_write_(std::move(before_write)) {
    try {
        AVFormatContext* raw = nullptr;
        int rc = avformat_alloc_output_context2(&raw, nullptr, "mp4", nullptr);
        if (rc < 0 || raw == nullptr) throw std::runtime_error(this->path() + ": cannot make an MP4 muxer: " + av_error_text(rc));
        format_.reset(raw);
        auto* buffer = static_cast<unsigned char*>(av_malloc(kIoBufferBytes));
        if (buffer == nullptr) throw std::runtime_error("out of memory for " + this->path());
        io_.reset(avio_alloc_context(buffer, kIoBufferBytes, 1, this, nullptr, &Fmp4Writer::write_callback,
                                     &Fmp4Writer::seek_callback));
        if (!io_) {
            av_free(buffer);
            throw std::runtime_error("out of memory for " + this->path());
        }
        format_->pb = io_.get();
        // Our AVIOContext: FFmpeg must not close it. Every packet goes to the file at once.
        format_->flags |= AVFMT_FLAG_CUSTOM_IO | AVFMT_FLAG_FLUSH_PACKETS;

        stream_ = avformat_new_stream(format_.get(), nullptr);
        if (stream_ == nullptr) throw std::runtime_error("cannot add a video stream to " + this->path());
        stream_->time_base = time_base;
        stream_->avg_frame_rate = frame_rate;
        rc = avcodec_parameters_copy(stream_->codecpar, &params);
        if (rc < 0) fail("codec parameters", rc);
        stream_->codecpar->codec_tag = 0;  // the mp4 muxer picks its own (avc1)

        // Fragmented MP4: an empty moov first, then moof+mdat fragments that stand on their own.
        av_dict_set(&muxer_options_, "movflags", "+frag_keyframe+empty_moov+default_base_moof+frag_discont", 0);
        av_dict_set_int(&muxer_options_, "frag_duration", int64_t{options.fragment_ms} * 1000, 0);
        // Keep the frames' own pts (time since the trial or file start), never shifted to zero.
        av_dict_set(&muxer_options_, "avoid_negative_ts", "make_non_negative", 0);
        av_dict_set_int(&muxer_options_, "use_editlist", 0, 0);
        av_dict_set_int(&muxer_options_, "video_track_timescale", options.track_timescale, 0);

        // With the parameter sets known the moov can go out now; otherwise it waits for the first packet.
        if (params.extradata_size > 0) write_header(nullptr);
        sync_written();
    } catch (...) {
        av_dict_free(&muxer_options_);
        format_.reset();
        io_.reset();
        throw;
    }
}

Fmp4Writer::~Fmp4Writer() {
    av_dict_free(&muxer_options_);
    // The format context never owns the custom AVIOContext: free it first, then the I/O.
    format_.reset();
    io_.reset();
}

void Fmp4Writer::fail(const std::string& what, int av_code) {
    const std::string reason = write_errno_ != 0 ? std::strerror(write_errno_) : av_error_text(av_code);
    throw std::runtime_error(path() + ": " + what + ": " + reason);
}

void Fmp4Writer::write_header(const AVPacket* first_packet) {
    if (stream_->codecpar->extradata_size == 0 && first_packet != nullptr) {
        const std::string sets = parameter_sets_of(
            std::string_view(reinterpret_cast<const char*>(first_packet->data), static_cast<size_t>(first_packet->size)));
        if (!sets.empty() && !set_extradata(*stream_->codecpar, sets)) throw std::runtime_error("out of memory for " + path());
    }
    const int rc = avformat_write_header(format_.get(), &muxer_options_);
    if (rc < 0) fail("cannot write the MP4 header", rc);
    if (muxer_options_ != nullptr) {
        const AVDictionaryEntry* unused = av_dict_get(muxer_options_, "", nullptr, AV_DICT_IGNORE_SUFFIX);
        const std::string key = unused != nullptr ? unused->key : "?";
        av_dict_free(&muxer_options_);
        throw std::runtime_error(path() + ": the MP4 muxer does not know the option " + key);
    }
    header_written_ = true;
}

int Fmp4Writer::write_callback(void* opaque, AvioWriteBuffer buf, int size) {
    auto* self = static_cast<Fmp4Writer*>(opaque);
    if (self->before_write_ && self->flushing_frames_ > self->frames_in_file_) {
        if (const int e = self->before_write_(self->flushing_frames_); e != 0) {
            self->write_errno_ = e;
            return AVERROR(e);
        }
    }
    self->frames_in_file_ = std::max(self->frames_in_file_, self->flushing_frames_);
    if (const int e = self->file_.try_write(buf, static_cast<size_t>(size)); e != 0) {
        self->write_errno_ = e;
        return AVERROR(e);
    }
    return size;
}

int64_t Fmp4Writer::seek_callback(void* opaque, int64_t offset, int whence) {
    auto* self = static_cast<Fmp4Writer*>(opaque);
    if (whence == AVSEEK_SIZE) {
        struct stat st {};
        if (fstat(self->file_.fd(), &st) < 0) return AVERROR(errno);
        return st.st_size;
    }
    const off_t pos = ::lseek(self->file_.fd(), static_cast<off_t>(offset), whence & ~AVSEEK_FORCE);
    return pos < 0 ? AVERROR(errno) : pos;
}

void Fmp4Writer::sync_written() {
    if (file_.bytes_written() == synced_bytes_) return;
    file_.sync();
    synced_bytes_ = file_.bytes_written();
    ++syncs_;
}

void Fmp4Writer::write(AVPacket& packet) {
    if (finished_) throw std::runtime_error(path() + ": write after finish");
    if (!header_written_) write_header(&packet);
    packet.stream_index = stream_->index;
    // The muxer needs each sample's duration to close a fragment; the nominal period is the
    // best guess for the last one (the next packet's dts fixes every other).
    if (packet.duration <= 0) packet.duration = options_.default_duration;
    av_packet_rescale_ts(&packet, time_base_, stream_->time_base);
    // Whatever the muxer writes during this call is the fragment before this packet.
    flushing_frames_ = packets_;
    const int rc = av_write_frame(format_.get(), &packet);
    av_packet_unref(&packet);
    if (rc < 0) fail("writing a frame failed", rc);
    ++packets_;
    sync_written();
}

void Fmp4Writer::finish() {
    if (finished_) return;
    finished_ = true;
    if (!header_written_) write_header(nullptr);
    flushing_frames_ = packets_;  // the last fragment holds the rest
    const int rc = av_write_trailer(format_.get());
    if (rc < 0) fail("writing the MP4 trailer failed", rc);
    avio_flush(io_.get());
    if (write_errno_ != 0) fail("writing failed", 0);
    file_.close();
    ++syncs_;
}

}  // namespace pilogger::media

#include "scene_writer.hpp"

#include "loop_queue.hpp"
#include "scene_av.hpp"

extern "C" {
#include <libavutil/imgutils.h>
}

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace pilogger::neon {

namespace {

constexpr int kAvioBufferBytes = 64 * 1024;
constexpr uint64_t kKillAfterTermMs = 2000;
// After ffmpeg exits, its last stderr lines may still be in the pipe: wait this long for EOF so
// the report can quote them.
constexpr uint64_t kStderrGraceMs = 300;
constexpr size_t kMaxStderrLine = 4096;
// Overlay worker input: about a second of video; beyond that the decoder cannot keep up.
constexpr size_t kMaxQueuedUnits = 30;
constexpr int kOverlayDecoderThreads = 2;
constexpr int kOverlayGopFrames = 30;
// How often the overlay worker's view of the pipe backlog is refreshed while frames wait.
constexpr uint64_t kPipeMirrorIntervalMs = 5;
// ffmpeg writes the MP4; this process fdatasyncs it (its own descriptor, on the thread pool) this
// often while ffmpeg runs, and once more when it has finished.
constexpr uint64_t kOutputSyncIntervalMs = 500;

// Limited-range BT.601 red: visible on most scenes, the colour a gaze marker usually has.
constexpr uint8_t kRingY = 82;
constexpr uint8_t kRingU = 90;
constexpr uint8_t kRingV = 240;

struct Gaze {
    float x = 0.0f;
    float y = 0.0f;
    bool valid = false;
};

// A ring around the gaze point (scene pixels) in a packed yuv420p image, ~20 px radius and 5 px
// wide at 1600x1200, scaled with the image and never smaller than 8 px.
void draw_gaze_ring(uint8_t* image, int width, int height, const Gaze& gaze) {
    if (!gaze.valid || !std::isfinite(gaze.x) || !std::isfinite(gaze.y)) return;
    uint8_t* planes[4] = {};
    int linesizes[4] = {};
    if (av_image_fill_arrays(planes, linesizes, image, AV_PIX_FMT_YUV420P, width, height, 1) < 0) return;
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
            uint8_t* line = planes[p] + static_cast<ptrdiff_t>(row) * linesizes[p];
            const double dy = row * sub + slack - gaze.y;
            for (int col = x0; col <= x1; ++col) {
                const double dx = col * sub + slack - gaze.x;
                if (std::abs(std::sqrt(dx * dx + dy * dy) - radius) <= half_width + slack) line[col] = values[p];
            }
        }
    }
}

// A packet that owns `data` without copying it (the muxer reads it once; no decoder padding needed).
AvPacketPtr packet_taking(std::string&& data) {
    AvPacketPtr packet(av_packet_alloc());
    if (!packet) return nullptr;
    auto* holder = new std::string(std::move(data));
    packet->buf = av_buffer_create(
        reinterpret_cast<uint8_t*>(holder->data()), holder->size(),
        [](void* opaque, uint8_t*) { delete static_cast<std::string*>(opaque); }, holder, 0);
    if (packet->buf == nullptr) {
        delete holder;
        return nullptr;
    }
    packet->data = packet->buf->data;
    packet->size = static_cast<int>(holder->size());
    return packet;
}

struct CodedSize {
    int width = 0;
    int height = 0;
};

// Reads the bits of an H.264 RBSP (emulation prevention bytes dropped) with Exp-Golomb codes.
class RbspReader {
public:
    explicit RbspReader(std::string_view nal) {
        bytes_.reserve(nal.size());
        int zeros = 0;
        for (char c : nal) {
            const auto byte = static_cast<uint8_t>(c);
            if (zeros >= 2 && byte == 3) {
                zeros = 0;
                continue;
            }
            zeros = byte == 0 ? zeros + 1 : 0;
            bytes_.push_back(byte);
        }
    }
    uint32_t bit() {
        if (position_ >= bytes_.size() * 8) {
            overrun_ = true;
            return 0;
        }
        const uint32_t b = (bytes_[position_ / 8] >> (7 - position_ % 8)) & 1u;
        ++position_;
        return b;
    }
    uint32_t bits(int n) {
        uint32_t v = 0;
        for (int i = 0; i < n; ++i) v = (v << 1) | bit();
        return v;
    }
    uint32_t ue() {
        int leading = 0;
        while (bit() == 0 && !overrun_) {
            if (++leading > 31) {
                overrun_ = true;
                return 0;
            }
        }
        return ((1u << leading) - 1u) + bits(leading);
    }
    int32_t se() {
        const uint32_t v = ue();
        return (v & 1u) != 0 ? static_cast<int32_t>((v + 1) / 2) : -static_cast<int32_t>(v / 2);
    }
    bool ok() const { return !overrun_; }

private:
    std::vector<uint8_t> bytes_;
    size_t position_ = 0;
    bool overrun_ = false;
};

// The cropped picture size an SPS describes (H.264 7.3.2.1.1), or {0, 0} when it does not parse.
CodedSize sps_picture_size(std::string_view sps) {
    RbspReader r(sps.substr(1));  // after the NAL header byte
    const uint32_t profile_idc = r.bits(8);
    r.bits(16);  // constraint flags, level_idc
    r.ue();      // seq_parameter_set_id
    uint32_t chroma_format_idc = 1;
    bool separate_colour_planes = false;
    static constexpr uint32_t kHighProfiles[] = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135};
    if (std::find(std::begin(kHighProfiles), std::end(kHighProfiles), profile_idc) != std::end(kHighProfiles)) {
        chroma_format_idc = r.ue();
        if (chroma_format_idc == 3) separate_colour_planes = r.bit() != 0;
        r.ue();   // bit_depth_luma_minus8
        r.ue();   // bit_depth_chroma_minus8
        r.bit();  // qpprime_y_zero_transform_bypass_flag
        if (r.bit() != 0) {  // seq_scaling_matrix_present_flag
            const int lists = chroma_format_idc != 3 ? 8 : 12;
            for (int i = 0; i < lists && r.ok(); ++i) {
                if (r.bit() == 0) continue;
                int last = 8;
                int next = 8;
                for (int j = 0; j < (i < 6 ? 16 : 64) && r.ok(); ++j) {
                    if (next != 0) next = (last + r.se() + 256) % 256;
                    if (next != 0) last = next;
                }
            }
        }
    }
    r.ue();  // log2_max_frame_num_minus4
    const uint32_t poc_type = r.ue();
    if (poc_type == 0) {
        r.ue();  // log2_max_pic_order_cnt_lsb_minus4
    } else if (poc_type == 1) {
        r.bit();
        r.se();
        r.se();
        const uint32_t cycle = r.ue();
        for (uint32_t i = 0; i < cycle && r.ok(); ++i) r.se();
    }
    r.ue();   // max_num_ref_frames
    r.bit();  // gaps_in_frame_num_value_allowed_flag
    const uint32_t width_mbs = r.ue() + 1;
    const uint32_t height_map_units = r.ue() + 1;
    const uint32_t frame_mbs_only = r.bit();
    if (frame_mbs_only == 0) r.bit();  // mb_adaptive_frame_field_flag
    r.bit();                            // direct_8x8_inference_flag
    uint32_t crop[4] = {0, 0, 0, 0};    // left, right, top, bottom
    if (r.bit() != 0) {
        for (uint32_t& c : crop) c = r.ue();
    }
    if (!r.ok() || width_mbs > 1024 || height_map_units > 1024) return {};
    const uint32_t chroma_array_type = separate_colour_planes ? 0 : chroma_format_idc;
    const uint32_t crop_x = chroma_array_type == 0 || chroma_format_idc == 3 ? 1 : 2;
    const uint32_t crop_y = (chroma_array_type == 0 || chroma_format_idc != 1 ? 1 : 2) * (2 - frame_mbs_only);
    const auto width = static_cast<int64_t>(width_mbs * 16) - int64_t{crop_x} * (crop[0] + crop[1]);
    const auto height = static_cast<int64_t>((2 - frame_mbs_only) * height_map_units * 16) - int64_t{crop_y} * (crop[2] + crop[3]);
    if (width <= 0 || height <= 0) return {};
    return {static_cast<int>(width), static_cast<int>(height)};
}

// The picture size of a keyframe (with its SPS). Read from the SPS directly: libavcodec's H.264
// parser costs a millisecond or more per file on the loop thread; it is the fallback.
CodedSize h264_picture_size(std::string_view annexb) {
    CodedSize size;
    for_each_nal(annexb, [&](uint8_t type, std::string_view nal) {
        if (type == 7 && size.width == 0) size = sps_picture_size(nal);
    }, true);
    if (size.width > 0) return size;
    std::unique_ptr<AVCodecParserContext, decltype(&av_parser_close)> parser(av_parser_init(AV_CODEC_ID_H264),
                                                                             &av_parser_close);
    if (!parser) return {};
    // A bare context: the parser needs one to write into, and a decoder's would cost milliseconds.
    AvCodecContextPtr context(avcodec_alloc_context3(nullptr));
    AvPacketPtr packet = packet_copy_of(annexb);
    if (!context || !packet) return {};
    parser->flags |= PARSER_FLAG_COMPLETE_FRAMES;  // one access unit: parse it now
    uint8_t* out = nullptr;
    int out_size = 0;
    av_parser_parse2(parser.get(), context.get(), &out, &out_size, packet->data, packet->size, AV_NOPTS_VALUE,
                     AV_NOPTS_VALUE, 0);
    return {parser->width, parser->height};
}

// libavformat's NUT muxer writing into memory: what each call produced goes to the pipe.
class NutMuxer {
public:
    explicit NutMuxer(std::string context) : context_(std::move(context)) {}

    bool is_open() const { return format_ != nullptr; }

    // One video stream; packets handed to write() carry pts in input_time_base. The header bytes
    // come out with the first write().
    void open(const AVCodecParameters& params, AVRational input_time_base) {
        AVFormatContext* raw = nullptr;
        int rc = avformat_alloc_output_context2(&raw, nullptr, "nut", nullptr);
        if (rc < 0 || raw == nullptr) throw std::runtime_error(context_ + ": cannot make a NUT muxer: " + av_error_text(rc));
        AvFormatContextPtr format(raw);
        auto* buffer = static_cast<unsigned char*>(av_malloc(kAvioBufferBytes));
        if (buffer == nullptr) throw std::runtime_error(context_ + ": out of memory for the NUT muxer");
        AvioContextPtr io(avio_alloc_context(buffer, kAvioBufferBytes, 1, this, nullptr, &NutMuxer::write_callback, nullptr));
        if (!io) {
            av_free(buffer);
            throw std::runtime_error(context_ + ": out of memory for the NUT muxer");
        }
        io->direct = 1;  // frame payloads straight to the callback: one copy instead of two
        format->pb = io.get();
        format->flags |= AVFMT_FLAG_CUSTOM_IO | AVFMT_FLAG_FLUSH_PACKETS | AVFMT_FLAG_BITEXACT;
        stream_ = avformat_new_stream(format.get(), nullptr);
        if (stream_ == nullptr) throw std::runtime_error(context_ + ": cannot add a stream to the NUT muxer");
        rc = avcodec_parameters_copy(stream_->codecpar, &params);
        if (rc < 0) throw std::runtime_error(context_ + ": codec parameters: " + av_error_text(rc));
        stream_->time_base = input_time_base;
        input_time_base_ = input_time_base;
        io_ = std::move(io);
        format_ = std::move(format);
        rc = avformat_write_header(format_.get(), nullptr);
        if (rc < 0) {
            format_.reset();
            throw std::runtime_error(context_ + ": cannot write the NUT header: " + av_error_text(rc));
        }
    }

    // Muxes one packet; returns every byte produced so far (the header too, the first time).
    std::string write(AVPacket& packet) {
        out_.reserve(out_.size() + static_cast<size_t>(packet.size) + 64);  // one allocation per frame
        packet.stream_index = stream_->index;
        // NUT may pick a finer time base than ours in write_header (a power-of-two multiple): exact.
        av_packet_rescale_ts(&packet, input_time_base_, stream_->time_base);
        const int rc = av_write_frame(format_.get(), &packet);
        if (rc < 0) throw std::runtime_error(context_ + ": NUT muxing failed: " + av_error_text(rc));
        avio_flush(io_.get());
        return std::exchange(out_, {});
    }

    std::string finish() {
        if (!is_open() || finished_) return {};
        finished_ = true;
        const int rc = av_write_trailer(format_.get());
        if (rc < 0) throw std::runtime_error(context_ + ": cannot write the NUT trailer: " + av_error_text(rc));
        avio_flush(io_.get());
        return std::exchange(out_, {});
    }

private:
    static int write_callback(void* opaque, AvioWriteBuffer buf, int size) {
        static_cast<NutMuxer*>(opaque)->out_.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(size));
        return size;
    }

    std::string context_;
    AvioContextPtr io_;  // outlives format_ (declared first, destroyed last)
    AvFormatContextPtr format_;
    AVStream* stream_ = nullptr;
    AVRational input_time_base_{1, 90000};
    std::string out_;
    bool finished_ = false;
};

// What the overlay worker hands back to the loop.
struct WorkerOutput {
    std::string bytes;         // NUT bytes for the pipe (the header comes with the first frame)
    bool frame = false;        // the bytes end with this frame:
    int64_t pts = 0;           //   RTP clock ticks from the file's first frame
    SceneFrameTimes times;
    bool intact = true;
    std::string warning;       // for the module log
    std::string fatal;         // the overlay cannot go on (muxer or scaler failure)
    bool final = false;        // the trailer: nothing more will come
};

struct WorkItem {
    AccessUnit unit;
    int64_t pts = 0;
    SceneFrameTimes times;
    bool intact = true;
    Gaze gaze;
    bool finish = false;
};

// Decodes, draws the gaze ring and muxes raw frames on its own thread. It decides the pipe
// back-pressure itself (from the loop's view of the pipe plus what it already handed over)
// because a muxed NUT frame cannot be taken out of the stream afterwards.
class OverlayWorker {
public:
    OverlayWorker(std::string context, AVRational time_base, size_t max_pipe_bytes, LoopQueue<WorkerOutput>& outputs)
        : context_(std::move(context)),
          time_base_(time_base),
          max_pipe_bytes_(max_pipe_bytes),
          outputs_(outputs),
          muxer_(context_),
          decoder_(open_h264_decoder(context_, kOverlayDecoderThreads, false)),
          frame_(av_frame_alloc()) {
        if (!frame_) throw std::runtime_error(context_ + ": out of memory for frames");
        thread_ = std::thread([this] { run(); });
    }

    ~OverlayWorker() {
        {
            std::lock_guard lock(mutex_);
            quit_ = true;
        }
        wake_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

    // Loop thread. False when the queue is full (the decoder is behind).
    bool push(WorkItem item) {
        {
            std::lock_guard lock(mutex_);
            if (!item.finish && queue_.size() >= kMaxQueuedUnits) return false;
            queue_.push_back(std::move(item));
        }
        wake_.notify_one();
        return true;
    }

    std::atomic<size_t> pipe_bytes{0};  // the loop's latest look at the pipe's write queue
    std::atomic<size_t> in_flight{0};   // bytes posted to the loop, not yet in the pipe
    std::atomic<uint64_t> dropped{0};   // frames this worker dropped

private:
    struct Pending {
        int64_t pts;
        SceneFrameTimes times;
        bool intact;
        Gaze gaze;
    };

    void run() {
        while (true) {
            WorkItem item;
            {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [this] { return quit_ || !queue_.empty(); });
                if (quit_) return;
                item = std::move(queue_.front());
                queue_.pop_front();
            }
            try {
                if (item.finish) {
                    finish();
                    return;
                }
                decode(item);
            } catch (const std::exception& e) {
                WorkerOutput out;
                out.fatal = e.what();
                outputs_.post(std::move(out));
                return;
            }
        }
    }

    void decode(WorkItem& item) {
        if (need_keyframe_ && !item.unit.keyframe) {
            ++dropped;
            return;
        }
        AvPacketPtr packet = packet_copy_of(item.unit.annexb);
        if (!packet) throw std::runtime_error(context_ + ": out of memory for a packet");
        packet->pts = packet->dts = item.pts;
        if (item.unit.keyframe) packet->flags |= AV_PKT_FLAG_KEY;
        pending_.push_back({item.pts, item.times, item.intact, item.gaze});
        const int rc = avcodec_send_packet(decoder_.get(), packet.get());
        if (rc < 0) {
            pending_.pop_back();
            ++dropped;
            need_keyframe_ = true;
            warn("cannot decode the frame at pts " + std::to_string(item.pts) + ": " + av_error_text(rc) +
                 "; skipping to the next keyframe");
            return;
        }
        need_keyframe_ = false;
        receive_frames();
    }

    void finish() {
        avcodec_send_packet(decoder_.get(), nullptr);
        receive_frames();
        dropped += pending_.size();  // never came out of the decoder
        pending_.clear();
        WorkerOutput out;
        out.bytes = muxer_.finish();
        out.final = true;
        in_flight += out.bytes.size();
        outputs_.post(std::move(out));
    }

    void receive_frames() {
        while (true) {
            const int rc = avcodec_receive_frame(decoder_.get(), frame_.get());
            if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
            if (rc < 0) {
                warn("decoding failed: " + av_error_text(rc));
                return;
            }
            const int64_t pts = frame_->pts != AV_NOPTS_VALUE ? frame_->pts : frame_->best_effort_timestamp;
            // Units the decoder swallowed (no picture) are dropped frames.
            while (!pending_.empty() && pending_.front().pts < pts) {
                pending_.pop_front();
                ++dropped;
            }
            if (!pending_.empty() && pending_.front().pts == pts) {
                const Pending p = pending_.front();
                pending_.pop_front();
                emit(*frame_, p);
            }
            av_frame_unref(frame_.get());
        }
    }

    // The frame in yuv420p: itself, or converted (the Neon sends yuv420p; anything else is rare).
    const AVFrame& as_yuv420p(const AVFrame& frame) {
        if (frame.format == AV_PIX_FMT_YUV420P || frame.format == AV_PIX_FMT_YUVJ420P) return frame;
        sws_.reset(sws_getCachedContext(sws_.release(), frame.width, frame.height, static_cast<AVPixelFormat>(frame.format),
                                        frame.width, frame.height, AV_PIX_FMT_YUV420P, SWS_BILINEAR, nullptr, nullptr,
                                        nullptr));
        if (!sws_) throw std::runtime_error(context_ + ": cannot convert the decoder's pixel format to yuv420p");
        if (!converted_ || converted_->width != frame.width || converted_->height != frame.height) {
            converted_.reset(av_frame_alloc());
            if (!converted_) throw std::runtime_error(context_ + ": out of memory for frames");
            converted_->format = AV_PIX_FMT_YUV420P;
            converted_->width = frame.width;
            converted_->height = frame.height;
            if (av_frame_get_buffer(converted_.get(), 0) < 0) throw std::runtime_error(context_ + ": out of memory for frames");
        }
        sws_scale(sws_.get(), frame.data, frame.linesize, 0, frame.height, converted_->data, converted_->linesize);
        return *converted_;
    }

    void emit(const AVFrame& decoded, const Pending& p) {
        // Back-pressure: what waits in the pipe plus what is on its way to it.
        if (pipe_bytes.load() + in_flight.load() > max_pipe_bytes_) {
            ++dropped;
            return;
        }
        const AVFrame& frame = as_yuv420p(decoded);
        if (!muxer_.is_open()) {
            AvCodecParametersPtr params(avcodec_parameters_alloc());
            if (!params) throw std::runtime_error(context_ + ": out of memory");
            params->codec_type = AVMEDIA_TYPE_VIDEO;
            params->codec_id = AV_CODEC_ID_RAWVIDEO;
            params->format = AV_PIX_FMT_YUV420P;
            params->width = frame.width;
            params->height = frame.height;
            params->codec_tag = avcodec_pix_fmt_to_codec_tag(AV_PIX_FMT_YUV420P);
            params->color_range = decoded.color_range;
            width_ = frame.width;
            height_ = frame.height;
            muxer_.open(*params, time_base_);
        }
        if (frame.width != width_ || frame.height != height_) {
            ++dropped;
            warn("the scene changed size to " + std::to_string(frame.width) + "x" + std::to_string(frame.height) +
                 " within one file; frame dropped");
            return;
        }
        const int size = av_image_get_buffer_size(AV_PIX_FMT_YUV420P, width_, height_, 1);
        AvPacketPtr raw(av_packet_alloc());
        if (!raw || size < 0 || av_new_packet(raw.get(), size) < 0) throw std::runtime_error(context_ + ": out of memory for a frame");
        av_image_copy_to_buffer(raw->data, size, frame.data, frame.linesize, AV_PIX_FMT_YUV420P, width_, height_, 1);
        draw_gaze_ring(raw->data, width_, height_, p.gaze);
        raw->pts = raw->dts = p.pts;
        raw->flags |= AV_PKT_FLAG_KEY;
        WorkerOutput out;
        out.bytes = muxer_.write(*raw);
        out.frame = true;
        out.pts = p.pts;
        out.times = p.times;
        out.intact = p.intact;
        in_flight += out.bytes.size();
        outputs_.post(std::move(out));
    }

    void warn(std::string text) {
        WorkerOutput out;
        out.warning = std::move(text);
        outputs_.post(std::move(out));
    }

    std::string context_;
    AVRational time_base_;
    size_t max_pipe_bytes_;
    LoopQueue<WorkerOutput>& outputs_;

    // Worker thread only.
    NutMuxer muxer_;
    AvCodecContextPtr decoder_;
    AvFramePtr frame_;
    AvFramePtr converted_;
    SwsContextPtr sws_;
    std::deque<Pending> pending_;
    bool need_keyframe_ = false;
    int width_ = 0;
    int height_ = 0;

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<WorkItem> queue_;
    bool quit_ = false;
    std::thread thread_;  // last: starts after everything above exists
};

// "exited with status 1" / "was killed by signal 9 (Killed)"
std::string exit_text(int64_t status, int signal) {
    if (signal != 0) return "was killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
    return "exited with status " + std::to_string(status);
}

// The level ffmpeg put in front of a line (-loglevel level+...), removed from the line.
std::string take_level(std::string& line) {
    static const std::pair<const char*, const char*> kLevels[] = {
        {"[panic] ", "error"}, {"[fatal] ", "error"}, {"[error] ", "error"}, {"[warning] ", "warning"},
        {"[info] ", "info"},   {"[verbose] ", "info"}, {"[debug] ", "debug"}, {"[trace] ", "debug"}};
    for (const auto& [tag, level] : kLevels) {
        const size_t at = line.find(tag);
        if (at != std::string::npos) {
            line.erase(at, std::strlen(tag));
            return level;
        }
    }
    return "warning";
}

// Writing into the pipe of an ffmpeg that died must be an error to handle, not a SIGPIPE that
// ends the module (the module runtime ignores it already; a bare test or tool may not).
void ignore_sigpipe_if_default() {
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) std::signal(SIGPIPE, SIG_IGN);
}

}  // namespace

// The descriptor this process holds on ffmpeg's output to fdatasync it; shared with the job in
// flight so that it stays valid if the writer goes away first.
struct OutputSync {
    int fd = -1;
    ~OutputSync() {
        if (fd >= 0) ::close(fd);
    }
};

struct SceneWriter::Impl {
    Impl(uv::Loop& loop_ref, SceneWriterOptions opts, Callbacks cbs)
        : loop(loop_ref),
          options(std::move(opts)),
          callbacks(std::move(cbs)),
          time_base{1, static_cast<int>(options.rtp_clock_rate)},
          escalation_timer(loop_ref),
          grace_timer(loop_ref),
          report_timer(loop_ref),
          mirror_timer(loop_ref),
          sync_timer(loop_ref),
          muxer(options.output_path) {}

    // ---- start ----
    void start() {
        const std::string& path = options.output_path;
        if (path.empty()) throw std::runtime_error("scene video: no output path");
        if (options.rtp_clock_rate == 0 || options.rtp_clock_rate > 1'000'000'000u) {
            throw std::runtime_error(path + ": invalid RTP clock rate " + std::to_string(options.rtp_clock_rate));
        }
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0) {
            throw std::runtime_error(path + " already exists; pilogger never overwrites a recording");
        }
        const std::filesystem::path folder = std::filesystem::path(path).parent_path();
        std::error_code ec;
        if (!folder.empty() && !std::filesystem::is_directory(folder, ec)) {
            throw std::runtime_error("cannot write " + path + ": the folder " + folder.string() + " does not exist");
        }
        if (options.overlay) {
            outputs = std::make_unique<LoopQueue<WorkerOutput>>(loop, [this](WorkerOutput& out) { on_worker_output(out); });
            worker = std::make_unique<OverlayWorker>(path, time_base, options.max_pipe_bytes, *outputs);
            mirror_timer.start(kPipeMirrorIntervalMs, kPipeMirrorIntervalMs, [this] { note_pipe_level(); });
            mirror_timer.unref();
        }
        ignore_sigpipe_if_default();
        spawn_ffmpeg();
        sync_timer.start(kOutputSyncIntervalMs, kOutputSyncIntervalMs, [this] { sync_output(); });
        sync_timer.unref();
    }

    // ---- fdatasync of ffmpeg's output ----
    // Opens the file once ffmpeg has made it, then fdatasyncs it; never on the loop thread.
    void sync_output(std::function<void()> then = {}) {
        if (then) after_sync.push_back(std::move(then));
        if (sync_in_flight) {
            sync_again = !after_sync.empty() || sync_again;
            return;
        }
        sync_in_flight = true;
        sync_again = false;
        auto pending = std::move(after_sync);
        after_sync.clear();
        uv::queue_work(
            loop,
            [state = output_sync, path = options.output_path] {
                if (state->fd < 0) {
                    state->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
                    if (state->fd < 0) return errno == ENOENT ? std::string() : "cannot open " + path + ": " + std::strerror(errno);
                }
                if (::fdatasync(state->fd) != 0) return path + ": fdatasync failed: " + std::strerror(errno);
                return std::string();
            },
            [this, alive = std::weak_ptr<bool>(alive_token), pending = std::move(pending)](const std::string& error) {
                if (alive.expired()) return;
                sync_in_flight = false;
                ++syncs;
                if (!error.empty() && error != last_sync_error) {
                    last_sync_error = error;
                    log("warning", error);
                }
                for (const auto& cb : pending) cb();
                if (sync_again || !after_sync.empty()) sync_output();
            });
    }

    // ---- holding frames until their rows are on the disk ----
    void hold_or_send(std::string&& bytes, uint64_t frames_after) {
        if (!options.hold_until_released) {
            if (!stdin_pipe->write(std::move(bytes))) ++lost_in_pipe;
            return;
        }
        if (held.empty() && frames_after <= released) {
            if (!stdin_pipe->write(std::move(bytes))) ++lost_in_pipe;
            return;
        }
        held_bytes += bytes.size();
        held.push_back(Held{frames_after, std::move(bytes)});
    }

    void release_through(uint64_t frames) {
        released = std::max(released, frames);
        while (!held.empty() && held.front().frames_after <= released) {
            Held& h = held.front();
            held_bytes -= h.bytes.size();
            const bool open = !failed && stdin_pipe && stdin_pipe->is_open() && !stdin_closing;
            if (!open || !stdin_pipe->write(std::move(h.bytes))) ++lost_in_pipe;
            held.pop_front();
        }
        note_pipe_level();
    }

    void release_all() { release_through(UINT64_MAX); }

    size_t backlog() const { return (stdin_pipe ? stdin_pipe->write_queue_bytes() : 0) + held_bytes; }

    std::vector<std::string> ffmpeg_arguments() const {
        const std::string rate = std::to_string(options.rtp_clock_rate);
        std::vector<std::string> args = {options.ffmpeg, "-hide_banner", "-nostdin", "-nostats",
                                         "-loglevel", "level+warning",
                                         "-f", "nut", "-i", "pipe:0",
                                         "-map", "0:v:0",
                                         // The pts we mux are the file's: never shifted to start at zero.
                                         "-copyts"};
        if (options.overlay) {
            const std::vector<std::string> encode = {
                "-c:v", "libx264", "-preset", options.overlay_preset, "-crf", std::to_string(options.overlay_crf),
                "-g", std::to_string(kOverlayGopFrames), "-bf", "0", "-pix_fmt", "yuv420p",
                // Every frame with its own pts, in the RTP clock: no frame rate conversion.
                "-fps_mode", "passthrough", "-enc_time_base:v", "-1",
                // x264 would take the 90 kHz time base for the frame rate (level 6.2 in the SPS,
                // which hardware decoders refuse); the Neon's scene runs at 30 Hz.
                "-x264-params", "fps=30"};
            args.insert(args.end(), encode.begin(), encode.end());
        } else {
            args.insert(args.end(), {"-c:v", "copy"});
        }
        // Fragmented MP4 as the camera writes it (video_writer.cpp): empty moov, fragments of at
        // most a second starting at keyframes, the first pts kept and no edit list; the track
        // timescale is the RTP clock so every pts is exact.
        const std::vector<std::string> mp4 = {
            "-f", "mp4", "-movflags", "+frag_keyframe+empty_moov+default_base_moof+frag_discont",
            "-frag_duration", "1000000", "-use_editlist", "0", "-avoid_negative_ts", "make_non_negative",
            "-video_track_timescale", rate, "-flush_packets", "1",
            "-n", options.output_path};
        args.insert(args.end(), mp4.begin(), mp4.end());
        return args;
    }

    void spawn_ffmpeg() {
        stdin_pipe = std::make_unique<uv::Stream>(loop);
        stderr_pipe = std::make_unique<uv::Stream>(loop);
        process = std::make_unique<uv::Process>(loop);
        uv::ProcessOptions spawn_options;
        spawn_options.file = options.ffmpeg;
        spawn_options.args = ffmpeg_arguments();
        spawn_options.stdin_pipe = stdin_pipe.get();
        spawn_options.stderr_pipe = stderr_pipe.get();
        // If the module dies, ffmpeg finishes the file it has (as on stdin EOF) rather than lingering.
        spawn_options.parent_death_signal = SIGTERM;
        try {
            process->spawn(spawn_options, [this](int64_t status, int signal) { on_exit(status, signal); });
        } catch (const uv::Error& e) {
            const bool absolute = options.ffmpeg.find('/') != std::string::npos;
            throw std::runtime_error("cannot start the ffmpeg executable '" + options.ffmpeg + "'" +
                                     (absolute ? "" : " (looked up on PATH)") + " for " + options.output_path + ": " +
                                     uv::error_text(e.code()) + (e.code() == UV_ENOENT ? "; is FFmpeg installed?" : ""));
        }
        pid = process->pid();
        stderr_open = true;
        stderr_pipe->start_read([this](std::string_view chunk) { on_stderr(chunk); },
                                [this](int) { on_stderr_end(); });
    }

    // ---- frames ----
    // RTP timestamps unwrapped (they wrap every 13 h at 90 kHz) over every unit seen.
    int64_t unwrap(uint32_t rtp_timestamp) {
        if (!have_rtp) {
            have_rtp = true;
            position = 0;
        } else {
            position += static_cast<int32_t>(rtp_timestamp - last_rtp);
        }
        last_rtp = rtp_timestamp;
        return position;
    }

    bool drop(bool until_keyframe) {
        ++dropped;
        if (until_keyframe) need_keyframe = true;
        return false;
    }

    void warn_once(bool& said, const std::string& text) {
        if (said) return;
        said = true;
        log("warning", text);
    }

    bool write(AccessUnit&& unit, const SceneFrameTimes& times) {
        const int64_t at = unwrap(unit.rtp_timestamp);
        if (worker) note_pipe_level();
        if (stop_requested || failed || !process || !process->running() || fatal) return drop(false);
        // A frame with lost packets, and every frame after it up to a whole keyframe, may show
        // artefacts where the decoder conceals what is missing.
        if (unit.damaged) {
            chain_intact = false;
            if (!options.keep_damaged) return drop(true);
            if (!has_slice(unit.annexb)) return drop(false);  // nothing of the picture came
        } else if (unit.keyframe) {
            chain_intact = true;
        }
        if (need_keyframe && !unit.keyframe) return drop(false);
        const bool intact = chain_intact;
        const int64_t pts = have_first ? at - first_position : 0;
        if (have_first && pts <= last_pts) {
            warn_once(said_non_increasing, options.output_path + ": a frame's RTP timestamp does not increase (" +
                                               std::to_string(unit.rtp_timestamp) + "); dropped until the next keyframe");
            return drop(true);
        }
        // Copy mode decides here; the overlay worker decides after decoding (raw frames need no
        // keyframe to resume, so its decoder sees every unit).
        if (!options.overlay && backlog() > options.max_pipe_bytes) return drop(true);
        std::string parameter_sets;
        if (!parameter_sets_sent) {
            parameter_sets = unit.has_sps_pps ? parameter_sets_of(unit.annexb) : options.parameter_sets_annexb;
            if (parameter_sets.empty()) {
                warn_once(said_no_parameter_sets, options.output_path + ": no SPS/PPS in the SDP nor in the keyframe; " +
                                                      "waiting for a keyframe that carries them");
                return drop(true);
            }
            if (!unit.has_sps_pps) unit.annexb.insert(0, parameter_sets);
        }
        if (options.overlay) {
            WorkItem item;
            item.unit = std::move(unit);
            item.pts = pts;
            item.times = times;
            item.intact = intact;
            item.gaze = gaze;
            if (!worker->push(std::move(item))) {
                warn_once(said_worker_behind, options.output_path + ": the overlay decoder falls behind; dropping frames "
                                                                    "until the next keyframe");
                return drop(true);
            }
        } else {
            std::string bytes;
            try {
                if (!muxer.is_open()) open_copy_muxer(parameter_sets, unit.annexb);
                AvPacketPtr packet = packet_taking(std::move(unit.annexb));
                if (!packet) return drop(true);
                packet->pts = packet->dts = pts;
                if (unit.keyframe) packet->flags |= AV_PKT_FLAG_KEY;
                bytes = muxer.write(*packet);
            } catch (const std::exception& e) {
                fail_internal(e.what());
                return drop(true);
            }
            if (!stdin_pipe->is_open()) return drop(true);
            hold_or_send(std::move(bytes), written + 1);
            note_pipe_level();
        }
        parameter_sets_sent = true;
        need_keyframe = false;
        if (!have_first) {
            have_first = true;
            first_position = at;
        }
        last_pts = pts;
        if (!options.overlay) frame_reached_pipe(pts, times, intact);
        return true;
    }

    void open_copy_muxer(const std::string& parameter_sets, std::string_view first_keyframe) {
        const CodedSize size = h264_picture_size(first_keyframe);
        if (size.width <= 0 || size.height <= 0) {
            throw std::runtime_error(options.output_path + ": cannot read the picture size from the SPS of the first keyframe");
        }
        AvCodecParametersPtr params(avcodec_parameters_alloc());
        if (!params) throw std::runtime_error(options.output_path + ": out of memory");
        params->codec_type = AVMEDIA_TYPE_VIDEO;
        params->codec_id = AV_CODEC_ID_H264;
        params->width = size.width;
        params->height = size.height;
        // ffmpeg's mp4 muxer builds the avcC from these (Annex B) before the first fragment.
        params->extradata = static_cast<uint8_t*>(av_mallocz(parameter_sets.size() + AV_INPUT_BUFFER_PADDING_SIZE));
        if (params->extradata != nullptr) {
            std::memcpy(params->extradata, parameter_sets.data(), parameter_sets.size());
            params->extradata_size = static_cast<int>(parameter_sets.size());
        }
        muxer.open(*params, time_base);
    }

    int64_t pts_us(int64_t pts) const {
        const auto rate = static_cast<int64_t>(options.rtp_clock_rate);
        return (pts * 1'000'000 + rate / 2) / rate;
    }

    void frame_reached_pipe(int64_t pts, const SceneFrameTimes& times, bool intact) {
        const uint64_t index = written++;
        if (!intact) ++written_damaged;
        if (callbacks.frame_written) callbacks.frame_written(index, pts_us(pts), times, intact);
    }

    void note_pipe_level() {
        const size_t queued = backlog();
        pipe_max = std::max(pipe_max, queued);
        if (worker) worker->pipe_bytes = queued;
    }


    void on_worker_output(WorkerOutput& out) {
        if (!out.warning.empty()) log("warning", out.warning);
        if (!out.fatal.empty()) {
            fail_internal(out.fatal);
            return;
        }
        const size_t size = out.bytes.size();
        const bool open = !failed && stdin_pipe && stdin_pipe->is_open() && !stdin_closing;
        if (out.final) release_all();  // stop(): the owner has the rows on the disk
        if (size > 0 && open) hold_or_send(std::move(out.bytes), out.frame ? written + 1 : written);
        if (worker) worker->in_flight -= size;
        note_pipe_level();
        if (out.frame) {
            if (open) {
                frame_reached_pipe(out.pts, out.times, out.intact);
            } else {
                ++dropped;
            }
        }
        if (out.final) close_stdin();
    }

    // The overlay cannot go on (muxer failure): end ffmpeg's input so the file keeps what it has.
    void fail_internal(const std::string& why) {
        if (fatal) return;
        fatal = true;
        internal_error = why;
        log("error", why);
        if (!stop_requested) close_stdin();
    }

    // ---- ffmpeg's stderr and exit ----
    void on_stderr(std::string_view chunk) {
        for (char c : chunk) {
            if (c == '\n' || c == '\r') {
                flush_stderr_line();
            } else if (stderr_line.size() < kMaxStderrLine) {
                stderr_line.push_back(c);
            }
        }
    }

    void flush_stderr_line() {
        if (stderr_line.empty()) return;
        std::string line = std::move(stderr_line);
        stderr_line.clear();
        const std::string level = take_level(line);
        last_ffmpeg_line = line;
        log(level, "ffmpeg: " + line);
    }

    void on_stderr_end() {
        flush_stderr_line();
        stderr_open = false;
        if (exited) report_exit();
    }

    void log(const std::string& level, const std::string& line) {
        if (callbacks.log) callbacks.log(level, line);
    }

    void on_exit(int64_t status, int signal) {
        exited = true;
        exit_status = status;
        exit_signal = signal;
        escalation_timer.stop();
        if (stderr_open) {
            grace_timer.start(kStderrGraceMs, 0, [this] { report_exit(); });
        } else {
            report_exit();
        }
    }

    std::string describe_exit() const {
        std::string text = "ffmpeg (pid " + std::to_string(pid) + ") " + exit_text(exit_status, exit_signal);
        if (!last_ffmpeg_line.empty()) text += "; its last words: " + last_ffmpeg_line;
        if (!internal_error.empty()) text += " (its input was ended after: " + internal_error + ")";
        return text;
    }

    void report_exit() {
        if (exit_reported) return;
        exit_reported = true;
        grace_timer.stop();
        mirror_timer.stop();
        sync_timer.stop();
        if (!held.empty()) {
            lost_in_pipe += held.size();
            held.clear();
            held_bytes = 0;
        }
        if (stdin_pipe) stdin_pipe->close();
        if (stderr_pipe) stderr_pipe->close();
        if (!stop_requested) {
            failed = true;
            failure = describe_exit() + " before the end of " + options.output_path + " (" + std::to_string(written) +
                      " frames sent; the file keeps its complete fragments)";
            log("error", failure);
            sync_output();  // what ffmpeg wrote before it died goes to the disk too
            // Last, and a copy: the owner may destroy this writer from inside the callback.
            if (auto failed_cb = callbacks.failed) failed_cb(failure);
            return;
        }
        const bool ok = exit_status == 0 && exit_signal == 0 && !failed && !fatal;
        std::string message;
        if (ok) {
            message = "ffmpeg finished " + options.output_path + ": " + std::to_string(written) + " frames, " +
                      std::to_string(total_dropped()) + " dropped";
        } else {
            message = describe_exit() + " while finishing " + options.output_path;
            if (written == 0) message += " (no frame was written)";
        }
        // The finished file reaches the disk before the stop is reported.
        sync_output([this, ok, message] { finish_stop(ok, message); });
    }

    void finish_stop(bool ok, const std::string& message) {
        auto done_cb = std::move(done);
        done = nullptr;
        if (done_cb) done_cb(ok, message);
    }

    // ---- stop ----
    void stop(std::function<void(bool, const std::string&)> done_cb) {
        if (stop_requested) {
            log("warning", options.output_path + ": stop() called again; the first call's callback reports");
            return;
        }
        stop_requested = true;
        done = std::move(done_cb);
        if (exited && exit_reported) {
            // ffmpeg is gone already (failed() told why): report on the next loop turn, not inside stop().
            report_timer.start(0, 0, [this] { finish_stop(false, failure.empty() ? describe_exit() : failure); });
            return;
        }
        if (exited) return;  // report_exit() follows once its stderr is read
        if (options.overlay && worker && !fatal) {
            WorkItem finish;
            finish.finish = true;
            worker->push(std::move(finish));  // its final output closes stdin
            return;
        }
        release_all();  // the owner has the rows of every frame on the disk
        if (muxer.is_open() && !fatal) {
            try {
                stdin_pipe->write(muxer.finish());
            } catch (const std::exception& e) {
                log("error", e.what());
            }
        }
        close_stdin();
    }

    // ffmpeg reads EOF, finishes the file and exits; if it does not, SIGTERM and then SIGKILL.
    void close_stdin() {
        if (stdin_closing || !stdin_pipe) return;
        stdin_closing = true;
        stdin_pipe->shutdown([this] {
            if (stdin_pipe) stdin_pipe->close();
        });
        if (!process || !process->running()) return;
        escalation_timer.start(static_cast<uint64_t>(std::max(0, options.stop_timeout_ms)), 0, [this] {
            log("warning", "ffmpeg did not finish " + options.output_path + " within " +
                               std::to_string(options.stop_timeout_ms) + " ms of the end of its input; sending SIGTERM");
            process->kill(SIGTERM);
            escalation_timer.start(kKillAfterTermMs, 0, [this] {
                log("error", "ffmpeg ignored SIGTERM for " + std::to_string(kKillAfterTermMs) + " ms; sending SIGKILL (" +
                                 options.output_path + " keeps its complete fragments)");
                process->kill(SIGKILL);
            });
        });
    }

    uint64_t total_dropped() const { return dropped + (worker ? worker->dropped.load() : 0); }

    ~Impl() {
        if (process && process->running()) {
            const int child = process->pid();
            process->kill(SIGKILL);
            // Closing the handle stops libuv from reaping the child: reap it off the loop thread.
            std::thread([child] { ::waitpid(child, nullptr, 0); }).detach();
        }
        worker.reset();  // joined before the queue it posts to goes away
    }

    uv::Loop& loop;
    SceneWriterOptions options;
    Callbacks callbacks;
    AVRational time_base;

    std::unique_ptr<uv::Stream> stdin_pipe;
    std::unique_ptr<uv::Stream> stderr_pipe;
    std::unique_ptr<uv::Process> process;
    uv::Timer escalation_timer;
    uv::Timer grace_timer;
    uv::Timer report_timer;
    uv::Timer mirror_timer;
    uv::Timer sync_timer;
    int pid = 0;
    std::shared_ptr<OutputSync> output_sync = std::make_shared<OutputSync>();
    std::shared_ptr<bool> alive_token = std::make_shared<bool>(true);
    bool sync_in_flight = false;
    bool sync_again = false;
    std::vector<std::function<void()>> after_sync;
    std::string last_sync_error;
    uint64_t syncs = 0;

    // Frames waiting for release_through() (hold_until_released): the bytes of the frames up to
    // frames_after, in pipe order.
    struct Held {
        uint64_t frames_after;
        std::string bytes;
    };
    std::deque<Held> held;
    size_t held_bytes = 0;
    uint64_t released = 0;
    uint64_t lost_in_pipe = 0;  // accepted frames that never reached ffmpeg (it had gone)

    // Copy mode: the NUT muxer runs on the loop thread (compressed frames are small).
    NutMuxer muxer;
    // Overlay mode.
    std::unique_ptr<LoopQueue<WorkerOutput>> outputs;
    std::unique_ptr<OverlayWorker> worker;
    Gaze gaze;

    // Timestamps.
    bool have_rtp = false;
    uint32_t last_rtp = 0;
    int64_t position = 0;
    bool have_first = false;
    int64_t first_position = 0;
    int64_t last_pts = -1;

    bool need_keyframe = true;
    bool chain_intact = true;  // no loss since the last whole keyframe
    bool parameter_sets_sent = false;
    bool said_non_increasing = false;
    bool said_no_parameter_sets = false;
    bool said_worker_behind = false;

    uint64_t written = 0;
    uint64_t written_damaged = 0;
    uint64_t dropped = 0;
    size_t pipe_max = 0;

    std::string stderr_line;
    std::string last_ffmpeg_line;
    bool stderr_open = false;
    bool exited = false;
    bool exit_reported = false;
    int64_t exit_status = 0;
    int exit_signal = 0;
    bool failed = false;
    bool fatal = false;
    std::string internal_error;
    std::string failure;
    bool stop_requested = false;
    bool stdin_closing = false;
    std::function<void(bool, const std::string&)> done;
};

SceneWriter::SceneWriter(uv::Loop& loop, SceneWriterOptions options, Callbacks callbacks)
    : impl_(std::make_unique<Impl>(loop, std::move(options), std::move(callbacks))) {
    impl_->start();
}

SceneWriter::~SceneWriter() = default;

bool SceneWriter::write(AccessUnit&& unit, const SceneFrameTimes& times) { return impl_->write(std::move(unit), times); }

void SceneWriter::set_gaze(float x_px, float y_px, bool valid) { impl_->gaze = Gaze{x_px, y_px, valid}; }

void SceneWriter::stop(std::function<void(bool ok, const std::string& message)> done) { impl_->stop(std::move(done)); }

uint64_t SceneWriter::frames_written() const { return impl_->written; }

uint64_t SceneWriter::frames_dropped() const { return impl_->total_dropped(); }

uint64_t SceneWriter::frames_damaged() const { return impl_->written_damaged; }

size_t SceneWriter::pipe_bytes() const { return impl_->backlog(); }

void SceneWriter::release_through(uint64_t frames) { impl_->release_through(frames); }

uint64_t SceneWriter::frames_held() const { return impl_->held.size(); }

uint64_t SceneWriter::output_syncs() const { return impl_->syncs; }

size_t SceneWriter::pipe_bytes_max() const { return impl_->pipe_max; }

int SceneWriter::ffmpeg_pid() const { return impl_->process && impl_->process->running() ? impl_->process->pid() : 0; }

const std::string& SceneWriter::output_path() const { return impl_->options.output_path; }

}  // namespace pilogger::neon

#include "h264.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace pilogger::media {

AvCodecContextPtr open_h264_decoder(const std::string& context, int threads, bool low_delay) {
    const AVCodec* codec = avcodec_find_decoder(AV_CODEC_ID_H264);
    if (codec == nullptr) throw std::runtime_error(context + ": this FFmpeg has no H.264 decoder");
    AvCodecContextPtr decoder(avcodec_alloc_context3(codec));
    if (!decoder) throw std::runtime_error(context + ": out of memory for the H.264 decoder");
    decoder->thread_count = threads;
    if (low_delay) {
        // Frames out as soon as they are in (no frame threads, no reordering wait).
        decoder->thread_type = FF_THREAD_SLICE;
        decoder->flags |= AV_CODEC_FLAG_LOW_DELAY;
    }
    const int rc = avcodec_open2(decoder.get(), codec, nullptr);
    if (rc < 0) throw std::runtime_error(context + ": cannot open the H.264 decoder: " + av_error_text(rc));
    return decoder;
}

AvPacketPtr packet_copy_of(std::string_view data) {
    AvPacketPtr packet(av_packet_alloc());
    if (!packet || av_new_packet(packet.get(), static_cast<int>(data.size())) < 0) return nullptr;
    std::copy(data.begin(), data.end(), packet->data);
    return packet;
}

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

bool set_extradata(AVCodecParameters& params, std::string_view data) {
    av_freep(&params.extradata);
    params.extradata_size = 0;
    params.extradata = static_cast<uint8_t*>(av_mallocz(data.size() + AV_INPUT_BUFFER_PADDING_SIZE));
    if (params.extradata == nullptr) return false;
    std::memcpy(params.extradata, data.data(), data.size());
    params.extradata_size = static_cast<int>(data.size());
    return true;
}

namespace {

struct ParserClose {
    void operator()(AVCodecParserContext* p) const { av_parser_close(p); }
};

}  // namespace

AvCodecParametersPtr h264_stream_parameters(const std::string& context, std::string_view parameter_sets,
                                            std::string_view first_keyframe) {
    // libavcodec's H.264 parser reads the SPS of the keyframe (or of the given sets before it).
    std::unique_ptr<AVCodecParserContext, ParserClose> parser(av_parser_init(AV_CODEC_ID_H264));
    AvCodecContextPtr scratch(avcodec_alloc_context3(nullptr));  // the parser writes into one
    std::string unit(parameter_sets);
    unit.append(first_keyframe);
    AvPacketPtr packet = packet_copy_of(unit);
    AvCodecParametersPtr params(avcodec_parameters_alloc());
    if (!parser || !scratch || !packet || !params) throw std::runtime_error(context + ": out of memory");
    parser->flags |= PARSER_FLAG_COMPLETE_FRAMES;  // one access unit: parse it now
    uint8_t* out = nullptr;
    int out_size = 0;
    av_parser_parse2(parser.get(), scratch.get(), &out, &out_size, packet->data, packet->size, AV_NOPTS_VALUE,
                     AV_NOPTS_VALUE, 0);
    if (parser->width <= 0 || parser->height <= 0) {
        throw std::runtime_error(context + ": cannot read the picture size from the SPS of the first keyframe");
    }
    params->codec_type = AVMEDIA_TYPE_VIDEO;
    params->codec_id = AV_CODEC_ID_H264;
    params->width = parser->width;
    params->height = parser->height;
    // The mp4 muxer builds the avcC from these (Annex B) before the first fragment.
    if (!set_extradata(*params, parameter_sets)) throw std::runtime_error(context + ": out of memory");
    return params;
}

}  // namespace pilogger::media

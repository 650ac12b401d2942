// Overlay mode of the scene video: the Neon's H.264 decoded, the gaze ring drawn in, and the
// pictures encoded again with libx264. Used only on the scene worker's thread.
#pragma once

#include "av_util.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace pilogger::neon {

struct Gaze {
    float x = 0.0f;
    float y = 0.0f;
    bool valid = false;
};

// A ring around the gaze point (scene pixels) in a yuv420p frame, ~20 px radius and 5 px wide at
// 1600x1200, scaled with the image and never smaller than 8 px.
void draw_gaze_ring(AVFrame& frame, const Gaze& gaze);

class OverlayTranscoder {
public:
    using PacketSink = std::function<void(AVPacket&)>;

    // `context` (the output file) names what failed in errors. Pictures carry pts in time_base.
    OverlayTranscoder(std::string context, AVRational time_base, std::string preset, int crf);

    // Decoder input: 0 or a negative AVERROR (the unit is refused).
    int send(std::string_view annexb, int64_t pts, bool keyframe);
    void send_end();
    // The next decoded picture (valid until the next call), or null when none is ready (or the
    // decoder failed: then `error` says why).
    const AVFrame* receive(std::string& error);

    // Draws the gaze ring into a yuv420p copy of `picture` and encodes it; every packet out goes
    // to sink. Opens the encoder on the first picture; false when the size changed since then.
    bool encode(const AVFrame& picture, const Gaze& gaze, const PacketSink& sink);
    void flush(const PacketSink& sink);

    // Null until the first picture opened the encoder.
    const AVCodecContext* encoder() const { return encoder_.get(); }

private:
    void open_encoder(const AVFrame& picture);
    void drain(const PacketSink& sink);

    std::string context_;
    AVRational time_base_;
    std::string preset_;
    int crf_;
    AvCodecContextPtr decoder_;
    AvCodecContextPtr encoder_;
    AvFramePtr decoded_;
    AvFramePtr drawn_;
    AvPacketPtr packet_;
    SwsContextPtr sws_;
};

}  // namespace pilogger::neon

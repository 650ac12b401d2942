// H.264 helpers on libavcodec: a decoder, packets from Annex B bytes, and the stream parameters
// (picture size from libavcodec's own SPS parser) a muxer needs.
#pragma once

#include "av_util.hpp"

#include <string>
#include <string_view>

namespace pilogger::media {

// An H.264 decoder. `context` names what is decoded, for the error.
AvCodecContextPtr open_h264_decoder(const std::string& context, int threads, bool low_delay);

// A packet holding a copy of `data` (with the zero padding decoders read past the end).
AvPacketPtr packet_copy_of(std::string_view data);

// A packet that owns `data` without copying it (a muxer reads it once; no decoder padding needed).
AvPacketPtr packet_taking(std::string&& data);

// Stream parameters for muxing an H.264 stream as is: the SPS/PPS (Annex B) as extradata and the
// picture size libavcodec's parser reads from them. Throws, naming `context`, when the size
// cannot be read. Blocking (about a millisecond): not for the loop thread.
AvCodecParametersPtr h264_stream_parameters(const std::string& context, std::string_view parameter_sets,
                                            std::string_view first_keyframe);

// Copies `data` into new extradata of `params` (with FFmpeg's padding). False when out of memory.
bool set_extradata(AVCodecParameters& params, std::string_view data);

}  // namespace pilogger::media

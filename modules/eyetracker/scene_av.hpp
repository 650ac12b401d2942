// The eye tracker's names for the shared H.264 helpers (modules/media): the scene writer, the
// scene preview and their tests use them unqualified.
#pragma once

#include "annexb.hpp"
#include "av_util.hpp"
#include "h264.hpp"

namespace pilogger::neon {

using media::for_each_nal;
using media::has_slice;
using media::open_h264_decoder;
using media::packet_copy_of;
using media::packet_taking;
using media::parameter_sets_of;

}  // namespace pilogger::neon

// H.264 Annex B byte streams (NAL units after 00 00 01 start codes): the one scanner the camera,
// the scene writer and the scene preview share.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pilogger::media {

// Calls fn(nal_type, nal) for each NAL unit of an Annex B buffer (nal without its start code).
// With before_first_slice, stops at the first slice (types 1-5) without scanning it: parameter
// sets come first, and a keyframe's slices are most of its bytes.
template <typename Fn>
void for_each_nal(std::string_view annexb, Fn&& fn, bool before_first_slice = false) {
    auto next_start = [&](size_t from) {
        for (size_t p = from; p + 3 <= annexb.size(); ++p) {
            if (annexb[p] == 0 && annexb[p + 1] == 0 && annexb[p + 2] == 1) return p;
        }
        return annexb.size();
    };
    size_t start = next_start(0);
    while (start < annexb.size()) {
        const size_t nal = start + 3;
        if (before_first_slice && nal < annexb.size()) {
            const int type = static_cast<uint8_t>(annexb[nal]) & 0x1F;
            if (type >= 1 && type <= 5) return;
        }
        const size_t end = next_start(nal);
        size_t nal_end = end;
        while (nal_end > nal && annexb[nal_end - 1] == 0) --nal_end;  // zeros of the next start code
        if (nal < nal_end) fn(static_cast<uint8_t>(annexb[nal]) & 0x1F, annexb.substr(nal, nal_end - nal));
        start = end;
    }
}

// Whether an Annex B buffer holds a slice (NAL types 1-5): some of a picture.
inline bool has_slice(std::string_view annexb) {
    bool found = false;
    for_each_nal(annexb, [&](uint8_t type, std::string_view) { found = found || (type >= 1 && type <= 5); });
    return found;
}

// The SPS (7) and PPS (8) NAL units of an Annex B buffer, each after 00 00 00 01.
inline std::string parameter_sets_of(std::string_view annexb) {
    std::string sets;
    for_each_nal(annexb, [&](uint8_t type, std::string_view nal) {
        if (type == 7 || type == 8) {
            sets.append("\0\0\0\1", 4);
            sets.append(nal);
        }
    }, true);
    return sets;
}

}  // namespace pilogger::media

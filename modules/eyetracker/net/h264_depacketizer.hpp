// RFC 6184 H.264 depacketizer: single NAL units (types 1-23), STAP-A (24) and FU-A (28) into
// Annex B access units. An access unit ends at the marker bit or when the RTP timestamp changes.
// A lost FU-A fragment (sequence gap) ends the NAL being assembled where the loss begins (its later
// fragments are dropped) and marks the access unit damaged: the writer either keeps it for the
// decoder to conceal or skips to the next keyframe.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

namespace pilogger::neon {

struct AccessUnit {
    uint32_t rtp_timestamp = 0;
    std::string annexb;        // NAL units, each preceded by 00 00 00 01
    bool keyframe = false;     // contains an IDR slice (NAL type 5)
    bool has_sps_pps = false;  // contains SPS (7) and PPS (8)
    bool damaged = false;      // a fragment or packet of this access unit was lost
};

class H264Depacketizer {
public:
    using Output = std::function<void(AccessUnit&&)>;
    explicit H264Depacketizer(Output output, size_t max_access_unit_bytes = 8u << 20);

    // One RTP packet's payload in arrival order; `sequence_gap` tells that packets are missing
    // right before this one.
    void push(std::span<const uint8_t> payload, uint32_t rtp_timestamp, bool marker, bool sequence_gap);
    // Emits what is assembled (end of stream).
    void flush();

    uint64_t malformed() const { return malformed_; }    // bad FU/STAP headers, oversize units
    uint64_t fragments_lost() const { return fragments_lost_; }

private:
    void emit();
    void append_nal(std::span<const uint8_t> nal);
    void keep_truncated_fragment();

    Output output_;
    size_t max_bytes_;
    AccessUnit current_;
    bool have_current_ = false;
    bool in_fragment_ = false;
    std::string fragment_;     // empty while in_fragment_: dropping the rest of a damaged FU-A NAL
    bool saw_sps_ = false;     // in current_; has_sps_pps needs both
    bool saw_pps_ = false;
    uint64_t malformed_ = 0;
    uint64_t fragments_lost_ = 0;
};

}  // namespace pilogger::neon

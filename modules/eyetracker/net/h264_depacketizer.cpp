// RFC 6184 depacketizer, packetization-mode 1 (single NAL, STAP-A, FU-A): see the header.
#include "h264_depacketizer.hpp"

#include <utility>

namespace pilogger::neon {
namespace {

constexpr uint8_t kForbiddenBit = 0x80;
constexpr uint8_t kNalTypeMask = 0x1F;
constexpr uint8_t kNriAndForbiddenMask = 0xE0;
constexpr uint8_t kStapA = 24;
constexpr uint8_t kFuA = 28;
constexpr uint8_t kFuStartBit = 0x80;
constexpr uint8_t kFuEndBit = 0x40;
constexpr uint8_t kNalIdrSlice = 5;
constexpr uint8_t kNalSps = 7;
constexpr uint8_t kNalPps = 8;

std::span<const uint8_t> as_bytes(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

H264Depacketizer::H264Depacketizer(Output output, size_t max_access_unit_bytes)
    : output_(std::move(output)), max_bytes_(max_access_unit_bytes) {}

void H264Depacketizer::push(std::span<const uint8_t> payload, uint32_t rtp_timestamp, bool marker,
                            bool sequence_gap) {
    // Missing packets belong to the open access unit (its marker has not come) or to the one this
    // packet starts: both are marked damaged, and a half-assembled FU-A NAL is given up.
    if (sequence_gap && have_current_) {
        current_.damaged = true;
        if (in_fragment_ && !fragment_.empty()) {
            ++fragments_lost_;
            keep_truncated_fragment();  // in_fragment_ stays set: the NAL's remaining fragments are dropped
        }
    }
    if (have_current_ && rtp_timestamp != current_.rtp_timestamp) emit();
    if (!have_current_) {
        current_ = AccessUnit{};
        current_.rtp_timestamp = rtp_timestamp;
        have_current_ = true;
        saw_sps_ = saw_pps_ = false;
    }
    if (sequence_gap) current_.damaged = true;

    const auto mark_malformed = [this] {
        ++malformed_;
        current_.damaged = true;
    };
    // Stops assembling the FU-A NAL; with `drop_rest` its later fragments are silently dropped.
    const auto give_up_fragment = [this](bool drop_rest) {
        fragment_.clear();
        in_fragment_ = drop_rest;
    };
    // A packet that is not the next FU-A fragment cuts the NAL being assembled short.
    const auto end_unfinished_fragment = [&] {
        if (!in_fragment_) return;
        if (!fragment_.empty()) mark_malformed();
        give_up_fragment(false);
    };

    if (payload.empty()) {
        mark_malformed();
    } else if ((payload[0] & kNalTypeMask) == kFuA) {
        const uint8_t indicator = payload[0];
        if (payload.size() < 2 || (indicator & kForbiddenBit) != 0) {
            mark_malformed();
            give_up_fragment(true);
        } else {
            const uint8_t fu_header = payload[1];
            const bool start = (fu_header & kFuStartBit) != 0;
            const bool end = (fu_header & kFuEndBit) != 0;
            const uint8_t nal_type = fu_header & kNalTypeMask;
            const auto body = payload.subspan(2);
            if (start) {
                end_unfinished_fragment();
                // The NAL header is rebuilt from the indicator's F/NRI bits and the FU type.
                fragment_.assign(1, static_cast<char>((indicator & kNriAndForbiddenMask) | nal_type));
                in_fragment_ = true;
            } else if (!in_fragment_) {
                // A continuation without its start: lost with a gap, a sender error without.
                if (sequence_gap) {
                    ++fragments_lost_;
                } else {
                    mark_malformed();
                }
                current_.damaged = true;
                give_up_fragment(!end);
            } else if (fragment_.empty()) {
                if (end) in_fragment_ = false;  // the end of a NAL already given up
            } else if ((static_cast<uint8_t>(fragment_[0]) & kNalTypeMask) != nal_type) {
                mark_malformed();
                give_up_fragment(!end);
            }
            if (in_fragment_ && !fragment_.empty()) {
                if (fragment_.size() + body.size() > max_bytes_) {
                    mark_malformed();
                    give_up_fragment(!end);
                } else {
                    fragment_.append(reinterpret_cast<const char*>(body.data()), body.size());
                    // Start and end in one FU is against RFC 6184 but unambiguous: a whole NAL.
                    if (end) {
                        append_nal(as_bytes(fragment_));
                        give_up_fragment(false);
                    }
                }
            }
        }
    } else {
        end_unfinished_fragment();
        const uint8_t type = payload[0] & kNalTypeMask;
        if ((payload[0] & kForbiddenBit) != 0) {
            mark_malformed();
        } else if (type >= 1 && type <= 23) {
            append_nal(payload);
        } else if (type == kStapA) {
            // STAP-A: after the header byte, NAL units each preceded by a 16-bit size.
            size_t at = 1;
            if (payload.size() == at) mark_malformed();
            while (at < payload.size()) {
                if (payload.size() - at < 2) {
                    mark_malformed();
                    break;
                }
                const size_t size = (size_t{payload[at]} << 8) | payload[at + 1];
                at += 2;
                if (size == 0 || size > payload.size() - at) {
                    mark_malformed();
                    break;
                }
                append_nal(payload.subspan(at, size));
                at += size;
            }
        } else {
            mark_malformed();  // STAP-B, MTAP, FU-B and reserved types are not in mode 1
        }
    }

    if (marker) emit();
}

void H264Depacketizer::flush() { emit(); }

void H264Depacketizer::emit() {
    if (!have_current_) return;
    if (in_fragment_) {
        // The access unit ended inside an FU-A NAL: its end fragment never came.
        if (!fragment_.empty()) {
            ++fragments_lost_;
            keep_truncated_fragment();
        }
        current_.damaged = true;
        in_fragment_ = false;
    }
    current_.has_sps_pps = saw_sps_ && saw_pps_;
    // An access unit left empty by malformed packets is still reported when damaged, so the
    // writer knows to wait for a keyframe.
    if ((!current_.annexb.empty() || current_.damaged) && output_) output_(std::move(current_));
    current_ = AccessUnit{};
    have_current_ = false;
    saw_sps_ = saw_pps_ = false;
}

void H264Depacketizer::keep_truncated_fragment() {
    // The NAL up to its first lost fragment: a decoder uses the macroblocks it holds and conceals
    // the rest, where dropping it would lose the whole picture (often the frame's only slice).
    if (fragment_.size() > 1) append_nal(as_bytes(fragment_));
    fragment_.clear();
}

void H264Depacketizer::append_nal(std::span<const uint8_t> nal) {
    if (nal.empty() || current_.annexb.size() + 4 + nal.size() > max_bytes_) {
        ++malformed_;
        current_.damaged = true;
        return;
    }
    current_.annexb.append("\x00\x00\x00\x01", 4);
    current_.annexb.append(reinterpret_cast<const char*>(nal.data()), nal.size());
    switch (nal[0] & kNalTypeMask) {
        case kNalIdrSlice: current_.keyframe = true; break;
        case kNalSps: saw_sps_ = true; break;
        case kNalPps: saw_pps_ = true; break;
        default: break;
    }
}

}  // namespace pilogger::neon

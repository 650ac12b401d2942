// The H.264 RTP depacketizer (modules/eyetracker/h264_depacketizer.hpp): a sequence of RTP
// payloads with their marker bits, timestamps and sequence gaps, as NeonDevice feeds the scene
// stream, into Annex B access units.
//
// Input: byte 0 bit 0 picks a 4 KiB access-unit bound instead of 8 MiB; then records of one flags
// byte (bit 0 marker, bit 1 a sequence gap before the packet, bit 2 a new RTP timestamp) and a
// length-prefixed payload (u16 big-endian length).
#include "fuzz_util.hpp"
#include "h264_depacketizer.hpp"

#include <string>

using namespace pilogger::neon;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Input in(data, size);
    const size_t max_bytes = (in.u8() & 1) != 0 ? 4096 : 8u << 20;
    uint32_t previous = 0;  // the timestamp of the packet before this one
    uint32_t current = 0;
    H264Depacketizer depacketizer(
        [&](AccessUnit&& unit) {
            FUZZ_CHECK(unit.annexb.size() <= max_bytes);
            FUZZ_CHECK(!unit.annexb.empty() || unit.damaged);
            if (!unit.annexb.empty()) FUZZ_CHECK(unit.annexb.compare(0, 4, std::string_view("\0\0\0\1", 4)) == 0);
            // Ended by its marker (this packet's timestamp) or by the next timestamp (the last one's).
            FUZZ_CHECK(unit.rtp_timestamp == current || unit.rtp_timestamp == previous);
        },
        max_bytes);
    uint32_t timestamp = 90000;
    while (!in.empty()) {
        const uint8_t flags = in.u8();
        std::span<const uint8_t> payload = in.record();
        if ((flags & 4) != 0) timestamp += 3000;
        previous = current;
        current = timestamp;
        depacketizer.push(payload, timestamp, (flags & 1) != 0, (flags & 2) != 0);
    }
    previous = current;
    depacketizer.flush();
    return 0;
}

// RTP and RTCP as an RTSP stream receives them (modules/eyetracker/rtp.hpp): parse_rtp on every
// datagram, the sequence tracker, the reorder buffer (RtspStream's, with its depth and wait) and
// the sender-report clock fed by the RTCP datagrams' sender reports; every packet the buffer hands
// out is timed through the clock the way RtspStream::deliver does.
//
// Input: a u32 clock rate (big-endian, from the SDP in real life; any value), a reorder depth
// byte; then records of one byte (bits 0-1: 0 an RTP datagram, 1 an RTCP datagram, 2 time only;
// bits 2-7: milliseconds that pass before it) and, for datagrams, a length-prefixed body (u16).
#include "fuzz_util.hpp"
#include "rtp.hpp"

#include <string>

using namespace pilogger::neon;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Input in(data, size);
    RtpClock clock(in.u32());
    RtpReorderBuffer::Options options;
    options.depth = in.u8() % 64;
    RtpReorderBuffer reorder(options);
    SequenceTracker sequence;
    int64_t now = 1'000'000'000;
    uint64_t pushed = 0;
    uint64_t delivered = 0;

    auto deliver = [&](std::string&& datagram, bool) {
        auto bytes = std::span(reinterpret_cast<const uint8_t*>(datagram.data()), datagram.size());
        auto packet = parse_rtp(bytes);
        FUZZ_CHECK(packet.has_value());  // only parsed packets go in
        ++delivered;
        std::optional<int64_t> unix_ns = clock.to_unix_ns(packet->timestamp);
        FUZZ_CHECK(unix_ns.has_value() == (clock.synced() && clock.clock_rate() != 0));
        return true;
    };

    while (!in.empty()) {
        const uint8_t head = in.u8();
        now += int64_t{head >> 2} * 1'000'000;
        switch (head & 3) {
            case 0: {
                std::span<const uint8_t> datagram = in.record();
                auto packet = parse_rtp(datagram);
                if (!packet) break;
                FUZZ_CHECK(packet->payload.data() >= datagram.data() &&
                           packet->payload.data() + packet->payload.size() <= datagram.data() + datagram.size());
                FUZZ_CHECK(packet->payload_type < 128);
                sequence.on_packet(packet->sequence);
                FUZZ_CHECK(sequence.lost() <= sequence.received() * 65536);
                if (reorder.push(packet->sequence, std::string(fuzz::Input::as_text(datagram)), now)) ++pushed;
                reorder.drain(now, false, deliver);
                break;
            }
            case 1: {
                for (const SenderReport& report : parse_rtcp_sender_reports(in.record())) {
                    (void)report.unix_ns();
                    clock.on_sender_report(report);
                }
                break;
            }
            default: reorder.drain(now, false, deliver); break;
        }
        FUZZ_CHECK(reorder.size() <= static_cast<size_t>(options.depth) + 1);
    }
    // The stream ends: everything still waiting comes out, gaps given up.
    while (reorder.size() > 0) reorder.drain(now, true, deliver);
    FUZZ_CHECK(delivered == pushed);
    return 0;
}

// RTP/RTCP (RFC 3550) parsing and the sender-report clock that turns RTP timestamps into the
// sender's wall clock, wrap-safe. Pure code: the sockets live in rtsp_client.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace pilogger::neon {

struct RtpPacket {
    bool marker = false;
    uint8_t payload_type = 0;
    uint16_t sequence = 0;
    uint32_t timestamp = 0;
    uint32_t ssrc = 0;
    std::span<const uint8_t> payload;  // CSRCs, extension and padding removed; views the input
};

// nullopt when not version 2, truncated, or the padding/extension lengths do not fit.
std::optional<RtpPacket> parse_rtp(std::span<const uint8_t> datagram);

struct SenderReport {
    uint32_t ssrc = 0;
    uint32_t ntp_seconds = 0;
    uint32_t ntp_fraction = 0;
    uint32_t rtp_timestamp = 0;
    int64_t unix_ns() const;  // ntp_seconds - 2208988800 + fraction / 2^32, in ns
};

// Walks a compound RTCP datagram and returns every sender report (PT 200) in it; other packet
// types are skipped by their length field; a malformed length stops the walk.
std::vector<SenderReport> parse_rtcp_sender_reports(std::span<const uint8_t> datagram);

// Maps RTP timestamps of one stream to the sender's unix ns. Before the first sender report
// nothing can be timed (to_unix_ns returns nullopt). Wrap-safe: the difference to the latest
// report is taken as int32, so a timestamp just across 2^32 maps forward.
class RtpClock {
public:
    explicit RtpClock(uint32_t clock_rate_hz);
    void on_sender_report(const SenderReport& report);
    bool synced() const { return have_report_; }
    std::optional<int64_t> to_unix_ns(uint32_t rtp_timestamp) const;
    uint32_t clock_rate() const { return clock_rate_; }

private:
    uint32_t clock_rate_;
    bool have_report_ = false;
    uint32_t report_rtp_ = 0;
    int64_t report_unix_ns_ = 0;
};

// Counts loss and reordering from sequence numbers (wrap-safe u16 arithmetic).
class SequenceTracker {
public:
    // Returns false for a duplicate or a packet older than the highest seen (late/reordered);
    // such packets are counted but still handed back to the caller to decide.
    bool on_packet(uint16_t sequence);
    uint64_t received() const { return received_; }
    uint64_t lost() const { return lost_; }          // gaps not (yet) filled by late packets
    uint64_t reordered() const { return reordered_; }
    void reset();

private:
    bool started_ = false;
    uint16_t highest_ = 0;
    uint64_t received_ = 0;
    uint64_t lost_ = 0;
    uint64_t reordered_ = 0;
    uint64_t recent_ = 0;  // bit i: highest_ - i was received (tells late fills from duplicates)
};

// Puts the RTP packets of one stream back in sequence order (RtspStream): a packet waits while
// the ones before it may still come, at most `depth` packets or `wait_ns` long; then the gap is
// given up (counted lost) and what follows goes on. Sequence numbers are unwrapped around the
// next one expected, so a stream runs across the 65535 -> 0 wrap for ever.
class RtpReorderBuffer {
public:
    struct Options {
        int depth = 32;
        int64_t wait_ns = 50'000'000;
    };
    struct Stats {
        uint64_t lost = 0;       // sequence numbers given up
        uint64_t reordered = 0;  // arrived out of order and put back in place
        uint64_t late = 0;       // arrived after their place was given up (dropped)
        uint64_t duplicates = 0;
    };
    // Gets one datagram in sequence order and whether packets were given up right before it;
    // false stops the drain (the stream closed).
    using Deliver = std::function<bool(std::string&& datagram, bool gap_before)>;

    RtpReorderBuffer() : RtpReorderBuffer(Options{}) {}
    explicit RtpReorderBuffer(Options options) : options_(options) {}

    // Holds a datagram (its RTP sequence number given) that arrived at now_ns; false when it is
    // dropped as late or a duplicate.
    bool push(uint16_t sequence, std::string datagram, int64_t now_ns);
    // Hands out in order every datagram that is due at now_ns (force_oldest: the oldest at least)
    // until deliver returns false.
    void drain(int64_t now_ns, bool force_oldest, const Deliver& deliver);
    size_t size() const { return waiting_.size(); }
    const Stats& stats() const { return stats_; }
    void reset();

private:
    struct Waiting {
        std::string datagram;
        int64_t arrival_ns = 0;
    };
    Options options_;
    std::map<int64_t, Waiting> waiting_;  // by extended sequence number
    bool have_expected_ = false;
    int64_t next_expected_ = 0;
    Stats stats_;
};

}  // namespace pilogger::neon

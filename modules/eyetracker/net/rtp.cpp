// RTP/RTCP parsing (RFC 3550 sections 5.1, 6.4.1) and the sender-report clock.
#include "rtp.hpp"

#include <algorithm>

namespace pilogger::neon {
namespace {

constexpr size_t kRtpFixedHeader = 12;
constexpr uint8_t kRtcpSenderReport = 200;
constexpr size_t kSenderReportMinBytes = 28;  // header + SSRC + NTP (8) + RTP ts + counts (8)
constexpr int64_t kNtpToUnixSeconds = 2208988800;  // 1900-01-01 to 1970-01-01
constexpr int64_t kNsPerSecond = 1'000'000'000;

uint16_t be16(std::span<const uint8_t> b, size_t at) {
    return static_cast<uint16_t>((b[at] << 8) | b[at + 1]);
}
uint32_t be32(std::span<const uint8_t> b, size_t at) {
    return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | b[at + 3];
}

int64_t floor_div(int64_t numerator, int64_t denominator) {
    int64_t q = numerator / denominator;
    if ((numerator % denominator != 0) && ((numerator < 0) != (denominator < 0))) --q;
    return q;
}

}  // namespace

std::optional<RtpPacket> parse_rtp(std::span<const uint8_t> datagram) {
    if (datagram.size() < kRtpFixedHeader) return std::nullopt;
    const uint8_t first = datagram[0];
    if ((first >> 6) != 2) return std::nullopt;
    const bool padding = (first & 0x20) != 0;
    const bool extension = (first & 0x10) != 0;
    const size_t csrc_count = first & 0x0F;

    RtpPacket p;
    p.marker = (datagram[1] & 0x80) != 0;
    p.payload_type = datagram[1] & 0x7F;
    p.sequence = be16(datagram, 2);
    p.timestamp = be32(datagram, 4);
    p.ssrc = be32(datagram, 8);

    size_t header = kRtpFixedHeader + 4 * csrc_count;
    if (header > datagram.size()) return std::nullopt;
    if (extension) {
        // Extension header: 16-bit profile, 16-bit length in 32-bit words (excluding itself).
        if (header + 4 > datagram.size()) return std::nullopt;
        header += 4 + 4 * size_t{be16(datagram, header + 2)};
        if (header > datagram.size()) return std::nullopt;
    }
    size_t end = datagram.size();
    if (padding) {
        // The last byte counts the padding including itself: zero or more than is left is invalid.
        const size_t pad = datagram.back();
        if (pad == 0 || pad > end - header) return std::nullopt;
        end -= pad;
    }
    p.payload = datagram.subspan(header, end - header);
    return p;
}

int64_t SenderReport::unix_ns() const {
    // RFC 4330 era rule: with the top bit clear the seconds are past the 2036 NTP wrap.
    int64_t seconds = ntp_seconds;
    if ((ntp_seconds & 0x80000000u) == 0) seconds += int64_t{1} << 32;
    const auto fraction_ns = static_cast<int64_t>((uint64_t{ntp_fraction} * kNsPerSecond) >> 32);
    return (seconds - kNtpToUnixSeconds) * kNsPerSecond + fraction_ns;
}

std::vector<SenderReport> parse_rtcp_sender_reports(std::span<const uint8_t> datagram) {
    std::vector<SenderReport> reports;
    size_t at = 0;
    while (datagram.size() - at >= 4) {
        if ((datagram[at] >> 6) != 2) break;
        const size_t packet_bytes = 4 * (size_t{be16(datagram, at + 2)} + 1);
        if (packet_bytes > datagram.size() - at) break;
        if (datagram[at + 1] == kRtcpSenderReport && packet_bytes >= kSenderReportMinBytes) {
            SenderReport r;
            r.ssrc = be32(datagram, at + 4);
            r.ntp_seconds = be32(datagram, at + 8);
            r.ntp_fraction = be32(datagram, at + 12);
            r.rtp_timestamp = be32(datagram, at + 16);
            reports.push_back(r);
        }
        at += packet_bytes;
    }
    return reports;
}

RtpClock::RtpClock(uint32_t clock_rate_hz) : clock_rate_(clock_rate_hz) {}

void RtpClock::on_sender_report(const SenderReport& report) {
    report_rtp_ = report.rtp_timestamp;
    report_unix_ns_ = report.unix_ns();
    have_report_ = true;
}

std::optional<int64_t> RtpClock::to_unix_ns(uint32_t rtp_timestamp) const {
    if (!have_report_ || clock_rate_ == 0) return std::nullopt;
    // The u32 difference read as int32 makes a timestamp just past 2^32 a small positive step.
    const auto ticks = static_cast<int64_t>(static_cast<int32_t>(rtp_timestamp - report_rtp_));
    // Rounded to the nearest ns (|ticks| < 2^31, so ticks * 2e9 fits in int64).
    const int64_t rate = clock_rate_;
    return report_unix_ns_ + floor_div(ticks * 2 * kNsPerSecond + rate, 2 * rate);
}

bool SequenceTracker::on_packet(uint16_t sequence) {
    ++received_;
    if (!started_) {
        started_ = true;
        highest_ = sequence;
        recent_ = 1;
        return true;
    }
    const auto delta = static_cast<int16_t>(static_cast<uint16_t>(sequence - highest_));
    if (delta > 0) {
        lost_ += static_cast<uint64_t>(delta - 1);
        recent_ = delta >= 64 ? 1 : (recent_ << delta) | 1;
        highest_ = sequence;
        return true;
    }
    ++reordered_;
    const int behind = -delta;
    if (behind > 0 && behind < 64) {
        const uint64_t bit = uint64_t{1} << behind;
        if ((recent_ & bit) == 0) {
            // A late packet fills a gap counted as lost when the newer packet arrived.
            recent_ |= bit;
            if (lost_ > 0) --lost_;
        }
    }
    // Further back than the window we cannot tell a late fill from a duplicate: loss stays counted.
    return false;
}

void SequenceTracker::reset() { *this = SequenceTracker{}; }

bool RtpReorderBuffer::push(uint16_t sequence, std::string datagram, int64_t now_ns) {
    if (!have_expected_) {
        have_expected_ = true;
        next_expected_ = sequence;
    }
    // Unwrap the 16-bit sequence number around the next one we expect.
    const int64_t extended =
        next_expected_ + static_cast<int16_t>(static_cast<uint16_t>(sequence - static_cast<uint16_t>(next_expected_)));
    if (extended < next_expected_) {
        ++stats_.late;
        return false;
    }
    if (waiting_.count(extended) != 0) {
        ++stats_.duplicates;
        return false;
    }
    // Older than a packet already waiting: it arrived out of order and goes back in its place.
    if (!waiting_.empty() && extended < waiting_.rbegin()->first) ++stats_.reordered;
    waiting_[extended] = Waiting{std::move(datagram), now_ns};
    return true;
}

void RtpReorderBuffer::drain(int64_t now_ns, bool force_oldest, const Deliver& deliver) {
    while (!waiting_.empty()) {
        auto first = waiting_.begin();
        const bool in_order = first->first == next_expected_;
        const bool give_up = force_oldest || waiting_.size() > static_cast<size_t>(std::max(options_.depth, 0)) ||
                             now_ns - first->second.arrival_ns > options_.wait_ns;
        if (!in_order && !give_up) return;
        const bool gap = !in_order;
        if (gap) stats_.lost += static_cast<uint64_t>(first->first - next_expected_);
        next_expected_ = first->first + 1;
        std::string datagram = std::move(first->second.datagram);
        waiting_.erase(first);
        force_oldest = false;
        if (!deliver(std::move(datagram), gap)) return;
    }
}

void RtpReorderBuffer::reset() {
    waiting_.clear();
    have_expected_ = false;
    next_expected_ = 0;
    stats_ = {};
}

}  // namespace pilogger::neon

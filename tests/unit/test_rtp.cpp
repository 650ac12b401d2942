// RTP/RTCP parsing, the sender-report clock, sequence tracking and the reorder buffer (rtp.hpp),
// on hand-built packets.
#include "rtp.hpp"
#include "rtp_bytes.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

using namespace pilogger::neon;
using namespace rtp_test;

namespace {

struct RtpHeader {
    bool padding = false;
    bool extension = false;
    uint8_t csrc_count = 0;
    bool marker = false;
    uint8_t payload_type = 96;
    uint16_t sequence = 0;
    uint32_t timestamp = 0;
    uint32_t ssrc = 0x11223344;
    uint8_t version = 2;
};
Bytes rtp_header(const RtpHeader& h) {
    Bytes b;
    b.push_back(static_cast<uint8_t>((h.version << 6) | (h.padding ? 0x20 : 0) | (h.extension ? 0x10 : 0) |
                                     (h.csrc_count & 0x0F)));
    b.push_back(static_cast<uint8_t>((h.marker ? 0x80 : 0) | (h.payload_type & 0x7F)));
    put_be16(b, h.sequence);
    put_be32(b, h.timestamp);
    put_be32(b, h.ssrc);
    return b;
}

constexpr uint32_t kNtpUnixOffset = 2208988800u;

// An RTCP sender report with `report_blocks` 24-byte reception report blocks.
Bytes sender_report(uint32_t ssrc, uint32_t ntp_seconds, uint32_t ntp_fraction, uint32_t rtp_ts,
                    uint8_t report_blocks = 0) {
    Bytes b;
    b.push_back(static_cast<uint8_t>(0x80 | report_blocks));
    b.push_back(200);
    put_be16(b, static_cast<uint16_t>(6 + 6 * report_blocks));
    put_be32(b, ssrc);
    put_be32(b, ntp_seconds);
    put_be32(b, ntp_fraction);
    put_be32(b, rtp_ts);
    put_be32(b, 1234);    // sender's packet count
    put_be32(b, 567890);  // sender's octet count
    for (int i = 0; i < report_blocks * 24; ++i) b.push_back(static_cast<uint8_t>(i));
    return b;
}
Bytes receiver_report_empty(uint32_t ssrc) {
    Bytes b = {0x80, 201, 0x00, 0x01};
    put_be32(b, ssrc);
    return b;
}
// SDES with one chunk: SSRC, CNAME item, end, padded to 32 bits.
Bytes sdes_cname(uint32_t ssrc, std::string_view cname) {
    Bytes body;
    put_be32(body, ssrc);
    body.push_back(1);
    body.push_back(static_cast<uint8_t>(cname.size()));
    append(body, bytes_of(cname));
    body.push_back(0);
    while (body.size() % 4 != 0) body.push_back(0);
    Bytes b = {0x81, 202};
    put_be16(b, static_cast<uint16_t>(body.size() / 4));
    append(b, body);
    return b;
}

SenderReport report_at(uint32_t rtp_ts, int64_t unix_seconds, uint32_t fraction = 0) {
    SenderReport r;
    r.ntp_seconds = static_cast<uint32_t>(unix_seconds + kNtpUnixOffset);
    r.ntp_fraction = fraction;
    r.rtp_timestamp = rtp_ts;
    return r;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// RTP

TEST_CASE("rtp: a plain packet") {
    RtpHeader h;
    h.marker = true;
    h.payload_type = 99;
    h.sequence = 0xABCD;
    h.timestamp = 0xDEADBEEF;
    h.ssrc = 0x01020304;
    Bytes b = rtp_header(h);
    append(b, bytes_of("gaze"));
    auto p = parse_rtp(b);
    REQUIRE(p);
    CHECK(p->marker);
    CHECK(p->payload_type == 99);
    CHECK(p->sequence == 0xABCD);
    CHECK(p->timestamp == 0xDEADBEEFu);
    CHECK(p->ssrc == 0x01020304u);
    CHECK(as_string(p->payload) == "gaze");
    CHECK(p->payload.data() == b.data() + 12);  // a view of the datagram, not a copy

    // A header alone is a valid packet with an empty payload.
    auto empty = parse_rtp(rtp_header(RtpHeader{}));
    REQUIRE(empty);
    CHECK(empty->payload.empty());
    CHECK_FALSE(empty->marker);
}

TEST_CASE("rtp: CSRCs, header extension and padding are stripped from the payload") {
    RtpHeader h;
    h.csrc_count = 2;
    h.extension = true;
    h.padding = true;
    h.sequence = 7;
    Bytes b = rtp_header(h);
    put_be32(b, 0xC5C5C5C5);  // CSRC 1
    put_be32(b, 0xC6C6C6C6);  // CSRC 2
    append(b, {0xBE, 0xDE, 0x00, 0x02});  // one-byte-header extension profile, 2 words
    append(b, {0x10, 0xAA, 0x21, 0xBB, 0xCC, 0x00, 0x00, 0x00});
    append(b, bytes_of("payload!"));
    append(b, {0x00, 0x00, 0x03});  // three bytes of padding, the last one counting them
    auto p = parse_rtp(b);
    REQUIRE(p);
    CHECK(p->sequence == 7);
    CHECK(as_string(p->payload) == "payload!");

    SUBCASE("CSRCs alone") {
        RtpHeader only_csrc;
        only_csrc.csrc_count = 15;
        Bytes c = rtp_header(only_csrc);
        for (int i = 0; i < 15; ++i) put_be32(c, static_cast<uint32_t>(i));
        append(c, bytes_of("x"));
        auto q = parse_rtp(c);
        REQUIRE(q);
        CHECK(as_string(q->payload) == "x");
    }
    SUBCASE("an empty extension") {
        RtpHeader ext;
        ext.extension = true;
        Bytes c = rtp_header(ext);
        append(c, {0x10, 0x00, 0x00, 0x00});
        append(c, bytes_of("yz"));
        auto q = parse_rtp(c);
        REQUIRE(q);
        CHECK(as_string(q->payload) == "yz");
    }
    SUBCASE("padding that takes the whole payload") {
        RtpHeader pad;
        pad.padding = true;
        Bytes c = rtp_header(pad);
        append(c, {0, 0, 0, 4});
        auto q = parse_rtp(c);
        REQUIRE(q);
        CHECK(q->payload.empty());
    }
}

TEST_CASE("rtp: malformed packets are rejected") {
    Bytes good = rtp_header(RtpHeader{});
    append(good, bytes_of("abc"));
    REQUIRE(parse_rtp(good));

    CHECK_FALSE(parse_rtp(Bytes{}));
    CHECK_FALSE(parse_rtp(Bytes(good.begin(), good.begin() + 11)));  // short fixed header

    for (int version : {0, 1, 3}) {
        RtpHeader h;
        h.version = static_cast<uint8_t>(version);
        CHECK_FALSE(parse_rtp(rtp_header(h)));
    }

    RtpHeader csrc;
    csrc.csrc_count = 3;
    Bytes short_csrc = rtp_header(csrc);
    put_be32(short_csrc, 1);
    put_be32(short_csrc, 2);  // only two of three
    CHECK_FALSE(parse_rtp(short_csrc));

    RtpHeader ext;
    ext.extension = true;
    Bytes no_extension_header = rtp_header(ext);
    append(no_extension_header, {0xBE, 0xDE});
    CHECK_FALSE(parse_rtp(no_extension_header));
    Bytes long_extension = rtp_header(ext);
    append(long_extension, {0xBE, 0xDE, 0x00, 0x03, 1, 2, 3, 4, 5, 6, 7, 8});  // says 12 bytes, has 8
    CHECK_FALSE(parse_rtp(long_extension));

    RtpHeader pad;
    pad.padding = true;
    Bytes zero_padding = rtp_header(pad);
    append(zero_padding, {'a', 'b', 0});
    CHECK_FALSE(parse_rtp(zero_padding));
    Bytes too_much_padding = rtp_header(pad);
    append(too_much_padding, {'a', 'b', 4});
    CHECK_FALSE(parse_rtp(too_much_padding));
    CHECK_FALSE(parse_rtp(rtp_header(pad)));  // padding bit but no byte to count it
}

// ------------------------------------------------------------------------------------------------
// RTCP

TEST_CASE("rtp rtcp: sender report time conversion") {
    SenderReport r;
    r.ntp_seconds = kNtpUnixOffset + 1'700'000'000u;
    r.ntp_fraction = 0x80000000u;  // half a second
    CHECK(r.unix_ns() == 1'700'000'000'500'000'000);
    r.ntp_fraction = 0xFFFFFFFFu;  // just under a second, truncated to whole ns
    CHECK(r.unix_ns() == 1'700'000'000'999'999'999);
    r.ntp_seconds = kNtpUnixOffset;
    r.ntp_fraction = 0;
    CHECK(r.unix_ns() == 0);
    // After the NTP era wrap (2036-02-07T06:28:16Z) the seconds restart at 0.
    r.ntp_seconds = 5;
    CHECK(r.unix_ns() == ((int64_t{1} << 32) + 5 - int64_t{kNtpUnixOffset}) * 1'000'000'000);
}

TEST_CASE("rtp rtcp: compound packets are walked for every sender report") {
    SUBCASE("RR, then SR, then SDES") {
        Bytes b = receiver_report_empty(0xAAAA0001);
        append(b, sender_report(0x5EED0001, kNtpUnixOffset + 1'700'000'000u, 0x40000000u, 0x89ABCDEFu));
        append(b, sdes_cname(0x5EED0001, "neon@192.168.1.50"));
        auto reports = parse_rtcp_sender_reports(b);
        REQUIRE(reports.size() == 1);
        CHECK(reports[0].ssrc == 0x5EED0001u);
        CHECK(reports[0].ntp_seconds == kNtpUnixOffset + 1'700'000'000u);
        CHECK(reports[0].ntp_fraction == 0x40000000u);
        CHECK(reports[0].rtp_timestamp == 0x89ABCDEFu);
        CHECK(reports[0].unix_ns() == 1'700'000'000'250'000'000);
    }
    SUBCASE("an SR with report blocks, then SDES, then another SR") {
        Bytes b = sender_report(1, kNtpUnixOffset + 10, 0, 100, 2);
        append(b, sdes_cname(1, "x"));
        append(b, sender_report(2, kNtpUnixOffset + 20, 0, 200));
        auto reports = parse_rtcp_sender_reports(b);
        REQUIRE(reports.size() == 2);
        CHECK(reports[0].ssrc == 1);
        CHECK(reports[0].rtp_timestamp == 100);
        CHECK(reports[1].ssrc == 2);
        CHECK(reports[1].rtp_timestamp == 200);
    }
    SUBCASE("no sender report at all") {
        Bytes b = receiver_report_empty(3);
        append(b, sdes_cname(3, "rr-only"));
        CHECK(parse_rtcp_sender_reports(b).empty());
        CHECK(parse_rtcp_sender_reports(Bytes{}).empty());
    }
    SUBCASE("a bad length stops the walk, keeping what came before") {
        Bytes b = sender_report(1, kNtpUnixOffset + 10, 0, 100);
        Bytes overlong = receiver_report_empty(9);
        overlong[3] = 50;  // claims 204 bytes
        append(b, overlong);
        append(b, sender_report(2, kNtpUnixOffset + 20, 0, 200));
        auto reports = parse_rtcp_sender_reports(b);
        REQUIRE(reports.size() == 1);
        CHECK(reports[0].ssrc == 1);

        Bytes truncated = sender_report(1, kNtpUnixOffset + 10, 0, 100);
        truncated.pop_back();
        CHECK(parse_rtcp_sender_reports(truncated).empty());
    }
    SUBCASE("a wrong version stops the walk; an SR too short to hold its fields is skipped") {
        Bytes b = sender_report(1, kNtpUnixOffset + 10, 0, 100);
        Bytes v1 = sender_report(2, kNtpUnixOffset + 20, 0, 200);
        v1[0] = 0x40;
        append(b, v1);
        CHECK(parse_rtcp_sender_reports(b).size() == 1);

        Bytes tiny_sr = {0x80, 200, 0x00, 0x01, 0, 0, 0, 7};
        append(tiny_sr, sender_report(8, kNtpUnixOffset + 30, 0, 300));
        auto reports = parse_rtcp_sender_reports(tiny_sr);
        REQUIRE(reports.size() == 1);
        CHECK(reports[0].ssrc == 8);
    }
}

// ------------------------------------------------------------------------------------------------
// RtpClock

TEST_CASE("rtp clock: nothing maps before the first sender report") {
    RtpClock clock(90000);
    CHECK(clock.clock_rate() == 90000);
    CHECK_FALSE(clock.synced());
    CHECK_FALSE(clock.to_unix_ns(0));
    CHECK_FALSE(clock.to_unix_ns(123456));
    clock.on_sender_report(report_at(90000, 1'700'000'000));
    CHECK(clock.synced());
    CHECK(clock.to_unix_ns(90000) == 1'700'000'000'000'000'000);
    CHECK(clock.to_unix_ns(180000) == 1'700'000'001'000'000'000);
    CHECK(clock.to_unix_ns(0) == 1'699'999'999'000'000'000);  // before the report works too
    CHECK(clock.to_unix_ns(90001) == 1'700'000'000'000'011'111);  // 11111.1 ns rounds down
    CHECK(clock.to_unix_ns(90005) == 1'700'000'000'000'055'556);  // 55555.6 ns rounds up

    RtpClock broken(0);
    broken.on_sender_report(report_at(0, 1));
    CHECK_FALSE(broken.to_unix_ns(0));
}

TEST_CASE("rtp clock: timestamps across the 2^32 wrap map forward and monotonically") {
    RtpClock clock(90000);
    const int64_t t0 = 1'700'000'000'000'000'000;
    const uint32_t before_wrap = 0xFFFFFF00u;  // 2^32 - 256
    clock.on_sender_report(report_at(before_wrap, 1'700'000'000));
    CHECK(clock.to_unix_ns(before_wrap) == t0);
    CHECK(clock.to_unix_ns(0xFFFFFFFFu) == t0 + 2'833'333);  // 255 ticks
    CHECK(clock.to_unix_ns(0u) == t0 + 2'844'444);           // 256 ticks, past the wrap
    CHECK(clock.to_unix_ns(0x100u) == t0 + 5'688'889);       // 512 ticks
    CHECK(clock.to_unix_ns(0xFFFFFE00u) == t0 - 2'844'444);  // 256 ticks before the report

    // 200 Hz gaze packets (450 ticks at 90 kHz) straddling the wrap: exactly 5 ms apart.
    int64_t previous = 0;
    for (int i = -20; i <= 20; ++i) {
        const auto ts = static_cast<uint32_t>(before_wrap + static_cast<uint32_t>(450 * i));
        auto t = clock.to_unix_ns(ts);
        REQUIRE(t);
        CHECK(*t == t0 + int64_t{i} * 5'000'000);
        if (i > -20) CHECK(*t > previous);
        previous = *t;
    }
    // The last mapped timestamp is past 2^32 in sender time.
    CHECK(static_cast<uint32_t>(before_wrap + 450 * 20) < before_wrap);
}

TEST_CASE("rtp clock: a later sender report re-anchors the mapping") {
    RtpClock clock(90000);
    clock.on_sender_report(report_at(1000, 1'700'000'000));
    CHECK(clock.to_unix_ns(1000 + 900000) == 1'700'000'010'000'000'000);
    // Ten seconds of RTP later the sender's clock says 10.002 s passed: the new report wins.
    clock.on_sender_report(report_at(1000 + 900000, 1'700'000'010, 0x0083126Fu));  // + ~2 ms
    const int64_t anchor = 1'700'000'010'002'000'000;  // 0x0083126F / 2^32 s = 2.00000009 ms
    CHECK(clock.to_unix_ns(1000 + 900000) == anchor);
    CHECK(clock.to_unix_ns(1000 + 990000) == anchor + 1'000'000'000);
    CHECK(clock.to_unix_ns(1000) == anchor - 10'000'000'000);

    // A report on the far side of the wrap takes over just the same.
    clock.on_sender_report(report_at(50, 1'700'000'100));
    CHECK(clock.to_unix_ns(50) == 1'700'000'100'000'000'000);
    CHECK(clock.to_unix_ns(0xFFFFFFFFu) == 1'700'000'100'000'000'000 - 566'667);  // 51 ticks before
}

// ------------------------------------------------------------------------------------------------
// SequenceTracker

TEST_CASE("rtp sequence: in-order packets across the 65535 -> 0 wrap lose nothing") {
    SequenceTracker t;
    for (uint32_t i = 0; i < 12; ++i) CHECK(t.on_packet(static_cast<uint16_t>(65530 + i)));
    CHECK(t.received() == 12);
    CHECK(t.lost() == 0);
    CHECK(t.reordered() == 0);
}

TEST_CASE("rtp sequence: gaps, late fills and duplicates across the wrap") {
    SequenceTracker t;
    CHECK(t.on_packet(65534));
    CHECK(t.on_packet(65535));
    CHECK(t.on_packet(2));  // 0 and 1 missing
    CHECK(t.lost() == 2);
    CHECK_FALSE(t.on_packet(0));  // late: fills one gap
    CHECK(t.lost() == 1);
    CHECK(t.reordered() == 1);
    CHECK_FALSE(t.on_packet(0));  // duplicate: the gap is not filled twice
    CHECK(t.lost() == 1);
    CHECK(t.reordered() == 2);
    CHECK_FALSE(t.on_packet(2));  // duplicate of the highest
    CHECK_FALSE(t.on_packet(65535));
    CHECK(t.lost() == 1);
    CHECK_FALSE(t.on_packet(1));
    CHECK(t.lost() == 0);
    CHECK(t.on_packet(3));
    CHECK(t.on_packet(10));
    CHECK(t.lost() == 6);
    CHECK(t.received() == 10);
    CHECK(t.reordered() == 5);

    // A long gap, then a packet from before it that is too old to tell from a duplicate.
    CHECK(t.on_packet(1010));
    CHECK(t.lost() == 6 + 999);
    CHECK_FALSE(t.on_packet(500));
    CHECK(t.lost() == 6 + 999);

    t.reset();
    CHECK(t.received() == 0);
    CHECK(t.lost() == 0);
    CHECK(t.reordered() == 0);
    CHECK(t.on_packet(40000));  // a new stream starts anywhere
    CHECK(t.on_packet(40001));
    CHECK(t.lost() == 0);
}

// ------------------------------------------------------------------------------------------------
// Reorder buffer (RtspStream's)

TEST_CASE("rtp reorder: late packets go back in place, gaps are given up by depth or time") {
    RtpReorderBuffer reorder({4, 50'000'000});
    std::vector<std::pair<std::string, bool>> out;
    auto deliver = [&](std::string&& d, bool gap) {
        out.emplace_back(std::move(d), gap);
        return true;
    };
    auto push = [&](uint16_t seq, int64_t now) {
        bool kept = reorder.push(seq, std::to_string(seq), now);
        reorder.drain(now, false, deliver);
        return kept;
    };
    CHECK(push(65534, 0));
    CHECK(push(0, 1));       // 65535 is missing: 0 waits
    CHECK(out.size() == 1);
    CHECK(push(65535, 2));   // late, across the wrap: both go out in order
    REQUIRE(out.size() == 3);
    CHECK(out[1].first == "65535");
    CHECK(out[2].first == "0");
    CHECK_FALSE(out[2].second);
    CHECK(reorder.stats().reordered == 1);

    CHECK_FALSE(push(0, 3));  // its place is given up already
    CHECK(reorder.stats().late == 1);
    CHECK(push(5, 4));        // 1..4 missing
    CHECK_FALSE(push(5, 5));
    CHECK(reorder.stats().duplicates == 1);
    CHECK(out.size() == 3);
    reorder.drain(60'000'000, false, deliver);  // waited too long: the gap is given up
    REQUIRE(out.size() == 4);
    CHECK(out[3].first == "5");
    CHECK(out[3].second);
    CHECK(reorder.stats().lost == 4);

    for (uint16_t seq : {10, 11, 12, 13, 14}) push(seq, 61'000'000);  // 6..9 missing, depth 4
    CHECK(out.size() == 9);
    CHECK(reorder.size() == 0);
    CHECK(reorder.stats().lost == 8);

    // A deliver that stops (the stream closed) leaves the rest waiting.
    push(20, 62'000'000);
    push(21, 62'000'000);
    reorder.drain(200'000'000, true, [](std::string&&, bool) { return false; });
    CHECK(reorder.size() == 1);
}

// RTP/RTCP parsing, the sender-report clock and sequence tracking (rtp.hpp), SDP (sdp.hpp) and
// the RFC 6184 H.264 depacketizer (h264_depacketizer.hpp), on hand-built packets.
#include "h264_depacketizer.hpp"
#include "rtp.hpp"
#include "sdp.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <utility>
#include <vector>

using namespace pilogger::neon;

namespace {

using Bytes = std::vector<uint8_t>;

void put_be16(Bytes& b, uint16_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}
void put_be32(Bytes& b, uint32_t v) {
    put_be16(b, static_cast<uint16_t>(v >> 16));
    put_be16(b, static_cast<uint16_t>(v));
}
void append(Bytes& b, std::initializer_list<uint8_t> more) { b.insert(b.end(), more); }
void append(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }

std::string as_string(std::span<const uint8_t> bytes) { return std::string(bytes.begin(), bytes.end()); }
Bytes bytes_of(std::string_view s) { return Bytes(s.begin(), s.end()); }

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
// SDP

namespace {
// A DESCRIBE answer like the Neon's for ?camera=world&audioenable=on (CRLF line ends).
constexpr std::string_view kWorldSdp =
    "v=0\r\n"
    "o=- 1700000000 1 IN IP4 192.168.1.50\r\n"
    "s=Neon scene camera\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "t=0 0\r\n"
    "a=tool:libavformat\r\n"
    "a=control:*\r\n"
    "a=range:npt=0-\r\n"
    "m=video 0 RTP/AVP 96\r\n"
    "b=AS:8000\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    "a=fmtp:96 packetization-mode=1; profile-level-id=640028; "
    "sprop-parameter-sets=Z2QAKKzZQGQCTYA=,aOvjyyI=\r\n"
    "a=framerate:30\r\n"
    "a=control:trackID=0\r\n"
    "m=audio 0 RTP/AVP 97\r\n"
    "a=rtpmap:97 MPEG4-GENERIC/48000/1\r\n"
    "a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;"
    "config=1188\r\n"
    "a=control:trackID=1\r\n";

// ?camera=gaze: one application track (LF line ends, an absolute control URL).
constexpr std::string_view kGazeSdp =
    "v=0\n"
    "o=- 0 0 IN IP4 192.168.1.50\n"
    "s=Neon gaze\n"
    "t=0 0\n"
    "m=application 0 RTP/AVP 99\n"
    "a=rtpmap:99 com.pupillabs.gaze1/90000\n"
    "a=control:rtsp://192.168.1.50:8086/?camera=gaze/trackID=0\n";
}  // namespace

TEST_CASE("sdp: a Neon-like scene camera answer") {
    Sdp sdp = parse_sdp(kWorldSdp);
    CHECK(sdp.session_control == "*");
    REQUIRE(sdp.media.size() == 2);

    const SdpMedia& video = sdp.media[0];
    CHECK(video.media == "video");
    CHECK(video.payload_type == 96);
    CHECK(video.encoding == "H264");
    CHECK(video.clock_rate == 90000);
    CHECK(video.control == "trackID=0");
    CHECK(video.fmtp.at("packetization-mode") == "1");
    CHECK(video.fmtp.at("profile-level-id") == "640028");
    CHECK(video.fmtp.at("sprop-parameter-sets") == "Z2QAKKzZQGQCTYA=,aOvjyyI=");

    const std::string start_code("\x00\x00\x00\x01", 4);
    const std::string sps("\x67\x64\x00\x28\xAC\xD9\x40\x64\x02\x4D\x80", 11);
    const std::string pps("\x68\xEB\xE3\xCB\x22", 5);
    CHECK(sprop_parameter_sets_annexb(video.fmtp) == start_code + sps + start_code + pps);

    const SdpMedia& audio = sdp.media[1];
    CHECK(audio.media == "audio");
    CHECK(audio.payload_type == 97);
    CHECK(audio.encoding == "MPEG4-GENERIC");
    CHECK(audio.clock_rate == 48000);
    CHECK(audio.fmtp.at("config") == "1188");
    CHECK(audio.control == "trackID=1");
}

TEST_CASE("sdp: the gaze track and lenient parsing") {
    Sdp sdp = parse_sdp(kGazeSdp);
    CHECK(sdp.session_control.empty());
    REQUIRE(sdp.media.size() == 1);
    CHECK(sdp.media[0].media == "application");
    CHECK(sdp.media[0].payload_type == 99);
    CHECK(sdp.media[0].encoding == "com.pupillabs.gaze1");
    CHECK(sdp.media[0].clock_rate == 90000);
    CHECK(sdp.media[0].fmtp.empty());
    CHECK(resolve_control_url("rtsp://192.168.1.50:8086/?camera=gaze", sdp.media[0].control) ==
          "rtsp://192.168.1.50:8086/?camera=gaze/trackID=0");

    // Garbage lines, an rtpmap for another payload type, no clock rate: nothing breaks.
    Sdp odd = parse_sdp(
        "garbage\nx\n=\na=control:rtsp://host/\nm=video 0 RTP/AVP 96 97\n"
        "a=rtpmap:97 VP8/90000\na=rtpmap:96 H264\na=fmtp:96 Packetization-Mode=1;;flag\n"
        "m=application 9 RTP/AVP notanumber\n");
    CHECK(odd.session_control == "rtsp://host/");
    REQUIRE(odd.media.size() == 2);
    CHECK(odd.media[0].payload_type == 96);
    CHECK(odd.media[0].encoding == "H264");
    CHECK(odd.media[0].clock_rate == 0);
    CHECK(odd.media[0].fmtp.at("packetization-mode") == "1");  // names are case-insensitive
    CHECK(odd.media[0].fmtp.at("flag").empty());
    CHECK(odd.media[1].payload_type == -1);
    CHECK(odd.media[1].encoding.empty());
    CHECK(parse_sdp("").media.empty());
}

TEST_CASE("sdp: control URLs are resolved against the base") {
    const std::string base = "rtsp://192.168.1.50:8086/?camera=world";
    CHECK(resolve_control_url(base, "trackID=0") == base + "/trackID=0");
    CHECK(resolve_control_url(base + "/", "trackID=0") == base + "/trackID=0");
    CHECK(resolve_control_url(base + "/", "/trackID=0") == base + "/trackID=0");
    CHECK(resolve_control_url(base, "*") == base);
    CHECK(resolve_control_url(base, "") == base);
    CHECK(resolve_control_url(base, "rtsp://10.0.0.2:8086/stream/track1") == "rtsp://10.0.0.2:8086/stream/track1");
    CHECK(resolve_control_url(base, "rtsps://h/t") == "rtsps://h/t");
}

TEST_CASE("sdp: base64 per RFC 4648") {
    const std::pair<std::string_view, std::string_view> vectors[] = {
        {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (auto [plain, encoded] : vectors) {
        CAPTURE(plain);
        CHECK(base64_encode(plain) == encoded);
        CHECK(base64_decode(encoded) == plain);
        std::string unpadded(encoded);
        while (!unpadded.empty() && unpadded.back() == '=') unpadded.pop_back();
        CHECK(base64_decode(unpadded) == plain);
    }
    CHECK(base64_decode(" Zm9v\r\nYmFy\t") == "foobar");
    CHECK(base64_decode("Zm9v!mFy").empty());  // not in the alphabet
    CHECK(base64_decode("Zg==Zg==").empty());  // data after padding
    CHECK(base64_decode("Zm9vY").empty());     // a lone symbol carries no whole byte
    CHECK(base64_decode("Zg=").empty());       // incomplete padding
    CHECK(base64_decode("Zm8==").empty());     // too much padding
    CHECK(base64_decode("Zm9v-_").empty());    // the URL-safe alphabet is another encoding

    std::string all_bytes;
    for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
    CHECK(base64_decode(base64_encode(all_bytes)) == all_bytes);
}

TEST_CASE("sdp: sprop-parameter-sets absent or undecodable gives nothing") {
    CHECK(sprop_parameter_sets_annexb({}).empty());
    CHECK(sprop_parameter_sets_annexb({{"packetization-mode", "1"}}).empty());
    CHECK(sprop_parameter_sets_annexb({{"sprop-parameter-sets", "Z2QAKA==,!!!"}}).empty());
    CHECK(sprop_parameter_sets_annexb({{"sprop-parameter-sets", "Z2QAKA=="}}) ==
          std::string("\x00\x00\x00\x01\x67\x64\x00\x28", 8));
}

// ------------------------------------------------------------------------------------------------
// H.264 depacketizer

namespace {

struct Collector {
    std::vector<AccessUnit> units;
    H264Depacketizer depacketizer;
    explicit Collector(size_t max_bytes = 8u << 20)
        : depacketizer([this](AccessUnit&& au) { units.push_back(std::move(au)); }, max_bytes) {}
    void push(const Bytes& payload, uint32_t ts, bool marker = false, bool gap = false) {
        depacketizer.push(payload, ts, marker, gap);
    }
};

const Bytes kSps = {0x67, 0x64, 0x00, 0x28, 0xAC, 0xD9};
const Bytes kPps = {0x68, 0xEB, 0xE3, 0xCB};
const Bytes kIdr = {0x65, 0x88, 0x84, 0x00, 0x33};
const Bytes kSlice = {0x41, 0x9A, 0x02, 0x04};
const Bytes kSei = {0x06, 0x05, 0x01, 0xFF};

std::string annexb(std::initializer_list<Bytes> nals) {
    std::string out;
    for (const auto& nal : nals) {
        out.append("\x00\x00\x00\x01", 4);
        out.append(nal.begin(), nal.end());
    }
    return out;
}

Bytes stap_a(std::initializer_list<Bytes> nals) {
    Bytes b = {0x78};  // NRI 3, type 24
    for (const auto& nal : nals) {
        put_be16(b, static_cast<uint16_t>(nal.size()));
        append(b, nal);
    }
    return b;
}

// FU-A fragment of an IDR (type 5) or non-IDR slice with NRI 3.
Bytes fu_a(uint8_t nal_type, bool start, bool end, const Bytes& body) {
    Bytes b = {0x7C, static_cast<uint8_t>((start ? 0x80 : 0) | (end ? 0x40 : 0) | nal_type)};
    append(b, body);
    return b;
}

}  // namespace

TEST_CASE("h264: single NAL units make an access unit at the marker") {
    Collector c;
    c.push(kSps, 3000);
    c.push(kPps, 3000);
    c.push(kIdr, 3000, true);
    REQUIRE(c.units.size() == 1);
    CHECK(c.units[0].rtp_timestamp == 3000);
    CHECK(c.units[0].annexb == annexb({kSps, kPps, kIdr}));
    CHECK(c.units[0].keyframe);
    CHECK(c.units[0].has_sps_pps);
    CHECK_FALSE(c.units[0].damaged);

    c.push(kSlice, 6000, true);
    REQUIRE(c.units.size() == 2);
    CHECK(c.units[1].annexb == annexb({kSlice}));
    CHECK_FALSE(c.units[1].keyframe);
    CHECK_FALSE(c.units[1].has_sps_pps);

    // SPS without PPS is not enough for has_sps_pps.
    c.push(kSps, 9000);
    c.push(kSlice, 9000, true);
    REQUIRE(c.units.size() == 3);
    CHECK_FALSE(c.units[2].has_sps_pps);
    CHECK(c.depacketizer.malformed() == 0);
    CHECK(c.depacketizer.fragments_lost() == 0);
}

TEST_CASE("h264: STAP-A and FU-A rebuild the NAL units") {
    Collector c;
    c.push(stap_a({kSps, kPps, kSei}), 90000);
    c.push(fu_a(5, true, false, {0x88, 0x84}), 90000);
    c.push(fu_a(5, false, false, {0x00, 0x33}), 90000);
    c.push(fu_a(5, false, true, {0x44, 0x55}), 90000, true);
    REQUIRE(c.units.size() == 1);
    const Bytes idr = {0x65, 0x88, 0x84, 0x00, 0x33, 0x44, 0x55};  // header from NRI bits + FU type
    CHECK(c.units[0].annexb == annexb({kSps, kPps, kSei, idr}));
    CHECK(c.units[0].keyframe);
    CHECK(c.units[0].has_sps_pps);
    CHECK_FALSE(c.units[0].damaged);

    // Two FU-A NALs (slices) in one access unit, the NRI taken from the indicator.
    Bytes low_nri_start = fu_a(1, true, false, {0xAA});
    low_nri_start[0] = 0x3C;  // NRI 1
    c.push(low_nri_start, 93000);
    c.push(fu_a(1, false, true, {0xBB}), 93000);
    c.push(fu_a(1, true, true, {0xCC}), 93000, true);  // S and E together: tolerated as a whole NAL
    REQUIRE(c.units.size() == 2);
    CHECK(c.units[1].annexb == annexb({{0x21, 0xAA, 0xBB}, {0x61, 0xCC}}));
    CHECK_FALSE(c.units[1].keyframe);
    CHECK_FALSE(c.units[1].damaged);
    CHECK(c.depacketizer.malformed() == 0);
}

TEST_CASE("h264: a lost middle fragment cuts that NAL short and damages the access unit") {
    Collector c;
    c.push(stap_a({kSps, kPps}), 1000);
    c.push(fu_a(5, true, false, {0x01}), 1000);
    // fragment 2 of 3 lost: the IDR keeps what came before the loss, the decoder conceals the rest
    c.push(fu_a(5, false, true, {0x03}), 1000, true, /*gap=*/true);
    REQUIRE(c.units.size() == 1);
    CHECK(c.units[0].damaged);
    CHECK(c.units[0].annexb == annexb({kSps, kPps, {0x65, 0x01}}));
    CHECK(c.units[0].keyframe);
    CHECK(c.depacketizer.fragments_lost() == 1);

    // The next access unit is clean again.
    c.push(kSlice, 4000, true);
    REQUIRE(c.units.size() == 2);
    CHECK_FALSE(c.units[1].damaged);
    CHECK(c.units[1].annexb == annexb({kSlice}));

    SUBCASE("more fragments after the gap are dropped too, quietly") {
        c.push(fu_a(1, true, false, {0x01}), 7000);
        c.push(fu_a(1, false, false, {0x03}), 7000, false, true);
        c.push(fu_a(1, false, false, {0x04}), 7000);
        c.push(fu_a(1, false, true, {0x05}), 7000);
        c.push(kSlice, 7000, true);  // a later NAL of the same access unit survives
        REQUIRE(c.units.size() == 3);
        CHECK(c.units[2].damaged);
        CHECK(c.units[2].annexb == annexb({{0x61, 0x01}, kSlice}));
        CHECK(c.depacketizer.fragments_lost() == 2);
        CHECK(c.depacketizer.malformed() == 0);
    }
    SUBCASE("the access unit ends before the NAL's end fragment: the NAL is kept as far as it came") {
        c.push(fu_a(1, true, false, {0x01, 0x02}), 7000);
        c.push(kSlice, 8000, true, true);  // the end fragment and the marker packet were lost
        REQUIRE(c.units.size() == 4);
        CHECK(c.units[2].damaged);
        CHECK(c.units[2].annexb == annexb({{0x61, 0x01, 0x02}}));
        CHECK(c.units[3].damaged);
        CHECK(c.units[3].annexb == annexb({kSlice}));
    }
    SUBCASE("a lost start fragment: the continuations are orphans") {
        c.push(fu_a(1, false, false, {0x02}), 7000, false, true);
        c.push(fu_a(1, false, true, {0x03}), 7000, true);
        REQUIRE(c.units.size() == 3);
        CHECK(c.units[2].damaged);
        CHECK(c.units[2].annexb.empty());  // reported anyway, so the writer waits for a keyframe
        CHECK(c.depacketizer.fragments_lost() == 2);
        CHECK(c.depacketizer.malformed() == 0);
    }
}

TEST_CASE("h264: access units end at the marker or when the timestamp changes") {
    Collector c;
    c.push(kSlice, 100);
    c.push(kSlice, 100);
    CHECK(c.units.empty());
    c.push(kSlice, 200);  // no marker on 100's last packet: the new timestamp closes it
    REQUIRE(c.units.size() == 1);
    CHECK(c.units[0].rtp_timestamp == 100);
    CHECK(c.units[0].annexb == annexb({kSlice, kSlice}));
    CHECK_FALSE(c.units[0].damaged);
    c.push(kSlice, 200, true);
    REQUIRE(c.units.size() == 2);
    CHECK(c.units[1].rtp_timestamp == 200);
    CHECK(c.units[1].annexb == annexb({kSlice, kSlice}));

    c.push(kIdr, 300);
    c.depacketizer.flush();
    REQUIRE(c.units.size() == 3);
    CHECK(c.units[2].rtp_timestamp == 300);
    CHECK(c.units[2].keyframe);
    c.depacketizer.flush();  // nothing left
    CHECK(c.units.size() == 3);

    SUBCASE("an FU-A cut short by a new timestamp") {
        c.push(fu_a(5, true, false, {0x01}), 400);
        c.push(kSlice, 500, true);
        REQUIRE(c.units.size() == 5);
        CHECK(c.units[3].rtp_timestamp == 400);
        CHECK(c.units[3].damaged);
        CHECK(c.units[3].annexb == annexb({{0x65, 0x01}}));  // as far as it came
        CHECK_FALSE(c.units[4].damaged);
        CHECK(c.depacketizer.fragments_lost() == 1);
    }
    SUBCASE("a gap damages the open access unit and the one it lands in") {
        c.push(kSlice, 400);
        c.push(kSlice, 500, true, true);
        REQUIRE(c.units.size() == 5);
        CHECK(c.units[3].damaged);
        CHECK(c.units[4].damaged);
        CHECK(c.units[4].annexb == annexb({kSlice}));
    }
    SUBCASE("after a marker, a gap damages only the next access unit") {
        c.push(kSlice, 400, true);
        c.push(kSlice, 500, true, true);
        REQUIRE(c.units.size() == 5);
        CHECK_FALSE(c.units[3].damaged);
        CHECK(c.units[4].damaged);
    }
}

TEST_CASE("h264: malformed packets are counted, never crash") {
    Collector c;
    c.push(Bytes{}, 10);                       // empty payload
    c.push(Bytes{0x7C}, 10);                   // FU-A without its header
    c.push(Bytes{0xE1, 0x00}, 10);             // forbidden bit set
    c.push(Bytes{0x79, 0x00}, 10);             // STAP-B (type 25) is not mode 1
    c.push(Bytes{0x78}, 10);                   // empty STAP-A
    c.push(Bytes{0x78, 0x00, 0x09, 0x67}, 10);  // STAP-A size past the end
    c.push(Bytes{0x78, 0x00, 0x00}, 10);        // zero-size STAP-A unit
    c.push(fu_a(1, false, true, {0x01}), 10);  // an orphan end fragment without a gap
    CHECK(c.depacketizer.malformed() == 8);
    c.push(kSlice, 10, true);
    REQUIRE(c.units.size() == 1);
    CHECK(c.units[0].damaged);
    CHECK(c.units[0].annexb == annexb({kSlice}));

    SUBCASE("a STAP-A keeps the units before a bad size") {
        Bytes stap = stap_a({kSps, kPps});
        append(stap, {0x00, 0x40, 0x65});
        c.push(stap, 20, true);
        REQUIRE(c.units.size() == 2);
        CHECK(c.units[1].annexb == annexb({kSps, kPps}));
        CHECK(c.units[1].has_sps_pps);
        CHECK(c.units[1].damaged);
        CHECK(c.depacketizer.malformed() == 9);
    }
    SUBCASE("FU-A fragments switching NAL type mid-way") {
        c.push(fu_a(5, true, false, {0x01}), 20);
        c.push(fu_a(1, false, true, {0x02}), 20, true);
        REQUIRE(c.units.size() == 2);
        CHECK(c.units[1].damaged);
        CHECK(c.units[1].annexb.empty());
        CHECK(c.depacketizer.malformed() == 9);
    }
    SUBCASE("a single NAL in the middle of an FU-A") {
        c.push(fu_a(5, true, false, {0x01}), 20);
        c.push(kSlice, 20, true);
        REQUIRE(c.units.size() == 2);
        CHECK(c.units[1].damaged);
        CHECK(c.units[1].annexb == annexb({kSlice}));
        CHECK(c.depacketizer.malformed() == 9);
    }
}

TEST_CASE("h264: access units over the size bound are cut and counted") {
    Collector c(64);
    Bytes big(61, 0x11);
    big[0] = 0x41;
    c.push(big, 10);  // 4 + 61 > 64
    c.push(kSlice, 10, true);
    REQUIRE(c.units.size() == 1);
    CHECK(c.units[0].damaged);
    CHECK(c.units[0].annexb == annexb({kSlice}));
    CHECK(c.depacketizer.malformed() == 1);

    // An FU-A NAL that keeps growing is given up once it passes the bound.
    c.push(fu_a(5, true, false, Bytes(30, 0x22)), 20);
    c.push(fu_a(5, false, false, Bytes(30, 0x22)), 20);
    c.push(fu_a(5, false, false, Bytes(30, 0x22)), 20);
    c.push(fu_a(5, false, true, Bytes(30, 0x22)), 20, true);
    REQUIRE(c.units.size() == 2);
    CHECK(c.units[1].damaged);
    CHECK_FALSE(c.units[1].keyframe);
    CHECK(c.units[1].annexb.empty());
    CHECK(c.depacketizer.malformed() == 2);

    // Exactly at the bound is fine.
    Bytes fits(60, 0x33);
    fits[0] = 0x41;
    c.push(fits, 30, true);
    REQUIRE(c.units.size() == 3);
    CHECK_FALSE(c.units[2].damaged);
    CHECK(c.units[2].annexb.size() == 64);
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

TEST_CASE("sdp: a payload type outside 0..127 is none") {
    Sdp sdp = parse_sdp("m=video 0 RTP/AVP -4\r\na=rtpmap:-4 H264/90000\r\nm=video 0 RTP/AVP 128\r\n"
                        "a=rtpmap:128 H264/90000\r\na=fmtp:128 a=b\r\n");
    REQUIRE(sdp.media.size() == 2);
    for (const auto& m : sdp.media) {
        CHECK(m.payload_type == -1);
        CHECK(m.encoding.empty());
        CHECK(m.clock_rate == 0);
        CHECK(m.fmtp.empty());
    }
}

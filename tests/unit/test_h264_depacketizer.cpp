// The RFC 6184 H.264 depacketizer (h264_depacketizer.hpp), on hand-built payloads.
#include "h264_depacketizer.hpp"
#include "rtp_bytes.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

using namespace pilogger::neon;
using namespace rtp_test;

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

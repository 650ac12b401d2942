// Neon real-time payloads (modules/eyetracker/neon_payloads.hpp): gaze layouts by length, eye
// events by type, IMU protobuf by hand. Packets are built byte by byte here, not with the encoders,
// so a wrong field order in both parser and encoder cannot hide.
#include "neon_payloads.hpp"

#include <doctest/doctest.h>

#include <bit>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

using namespace pilogger::neon;

namespace {

using Bytes = std::vector<uint8_t>;

void put_be32(Bytes& b, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<uint8_t>(v >> shift));
}
void put_be64(Bytes& b, uint64_t v) {
    put_be32(b, static_cast<uint32_t>(v >> 32));
    put_be32(b, static_cast<uint32_t>(v));
}
void put_be_f32(Bytes& b, float v) { put_be32(b, std::bit_cast<uint32_t>(v)); }
void put_le_f32(Bytes& b, float v) {
    const auto bits = std::bit_cast<uint32_t>(v);
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(bits >> (8 * i)));
}
void put_varint(Bytes& b, uint64_t v) {
    while (v >= 0x80) {
        b.push_back(static_cast<uint8_t>((v & 0x7F) | 0x80));
        v >>= 7;
    }
    b.push_back(static_cast<uint8_t>(v));
}
void append(Bytes& b, std::initializer_list<uint8_t> more) { b.insert(b.end(), more); }
void append(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }

Bytes to_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

// The i-th float of a hand-built gaze packet: distinct and exactly representable.
float field_value(int i) { return 100.0f + static_cast<float>(i) + 0.25f; }

// A gaze packet of `float_count` big-endian floats with the worn byte after the first two.
Bytes gaze_packet(int float_count, uint8_t worn_byte) {
    Bytes b;
    for (int i = 0; i < float_count; ++i) {
        if (i == 2) b.push_back(worn_byte);
        put_be_f32(b, field_value(i));
    }
    return b;
}

void check_point(const Point2& p, int first_index) {
    CHECK(p.x == field_value(first_index));
    CHECK(p.y == field_value(first_index + 1));
}
void check_vec3(const Vec3& v, int first_index) {
    CHECK(v.x == field_value(first_index));
    CHECK(v.y == field_value(first_index + 1));
    CHECK(v.z == field_value(first_index + 2));
}
// Per-eye state of the 65/89/105 layouts: left eye from float 2, right from float 9.
void check_eye_states(const GazeSample& s) {
    CHECK(s.left_eye.pupil_diameter_mm == field_value(2));
    check_vec3(s.left_eye.eyeball_center_mm, 3);
    check_vec3(s.left_eye.optical_axis, 6);
    CHECK(s.right_eye.pupil_diameter_mm == field_value(9));
    check_vec3(s.right_eye.eyeball_center_mm, 10);
    check_vec3(s.right_eye.optical_axis, 13);
}
void check_eyelids(const GazeSample& s) {
    CHECK(s.left_eye.eyelid_angle_top_rad == field_value(16));
    CHECK(s.left_eye.eyelid_angle_bottom_rad == field_value(17));
    CHECK(s.left_eye.eyelid_aperture_mm == field_value(18));
    CHECK(s.right_eye.eyelid_angle_top_rad == field_value(19));
    CHECK(s.right_eye.eyelid_angle_bottom_rad == field_value(20));
    CHECK(s.right_eye.eyelid_aperture_mm == field_value(21));
}

bool same_point(const Point2& a, const Point2& b) { return a.x == b.x && a.y == b.y; }
bool same_vec3(const Vec3& a, const Vec3& b) { return a.x == b.x && a.y == b.y && a.z == b.z; }
bool same_eye(const EyeState& a, const EyeState& b) {
    return a.pupil_diameter_mm == b.pupil_diameter_mm && same_vec3(a.eyeball_center_mm, b.eyeball_center_mm) &&
           same_vec3(a.optical_axis, b.optical_axis) && a.eyelid_angle_top_rad == b.eyelid_angle_top_rad &&
           a.eyelid_angle_bottom_rad == b.eyelid_angle_bottom_rad && a.eyelid_aperture_mm == b.eyelid_aperture_mm;
}

}  // namespace

TEST_CASE("neon gaze: 9 bytes is x, y, worn in big-endian") {
    Bytes b;
    append(b, {0x3F, 0x80, 0x00, 0x00});  // 1.0f
    append(b, {0xC0, 0x00, 0x00, 0x00});  // -2.0f
    b.push_back(255);
    auto s = parse_gaze(b);
    REQUIRE(s);
    CHECK(s->layout_bytes == 9);
    CHECK(s->has_binocular);
    CHECK(s->gaze.x == 1.0f);
    CHECK(s->gaze.y == -2.0f);
    CHECK(s->worn);
    CHECK_FALSE(s->has_monocular);
    CHECK_FALSE(s->has_eye_state);
    CHECK_FALSE(s->has_eyelids);

    // Only 255 means worn.
    b[8] = 0;
    CHECK_FALSE(parse_gaze(b)->worn);
    b[8] = 1;
    CHECK_FALSE(parse_gaze(b)->worn);
}

TEST_CASE("neon gaze: 17 bytes is dual monocular: left x y, worn, right x y") {
    auto s = parse_gaze(gaze_packet(4, 255));
    REQUIRE(s);
    CHECK(s->layout_bytes == 17);
    CHECK_FALSE(s->has_binocular);
    CHECK(s->has_monocular);
    check_point(s->left, 0);
    CHECK(s->worn);
    check_point(s->right, 2);
    CHECK(s->gaze.x == 0.0f);
    CHECK_FALSE(s->has_eye_state);
}

TEST_CASE("neon gaze: 25 bytes is binocular then monocular left and right") {
    auto s = parse_gaze(gaze_packet(6, 0));
    REQUIRE(s);
    CHECK(s->layout_bytes == 25);
    CHECK(s->has_binocular);
    check_point(s->gaze, 0);
    CHECK_FALSE(s->worn);
    CHECK(s->has_monocular);
    check_point(s->left, 2);
    check_point(s->right, 4);
    CHECK_FALSE(s->has_eye_state);
    CHECK_FALSE(s->has_eyelids);
}

TEST_CASE("neon gaze: 65 bytes adds pupil, eyeball centre and optical axis per eye") {
    auto s = parse_gaze(gaze_packet(16, 255));
    REQUIRE(s);
    CHECK(s->layout_bytes == 65);
    check_point(s->gaze, 0);
    CHECK(s->worn);
    CHECK(s->has_eye_state);
    CHECK_FALSE(s->has_eyelids);
    CHECK_FALSE(s->has_monocular);
    check_eye_states(*s);
    CHECK(s->left_eye.eyelid_aperture_mm == 0.0f);
}

TEST_CASE("neon gaze: 89 bytes adds eyelid angles and aperture, left eye first") {
    auto s = parse_gaze(gaze_packet(22, 255));
    REQUIRE(s);
    CHECK(s->layout_bytes == 89);
    check_point(s->gaze, 0);
    CHECK(s->has_eye_state);
    CHECK(s->has_eyelids);
    CHECK_FALSE(s->has_monocular);
    check_eye_states(*s);
    check_eyelids(*s);
}

TEST_CASE("neon gaze: 105 bytes puts the monocular points after the eyelids") {
    auto s = parse_gaze(gaze_packet(26, 255));
    REQUIRE(s);
    CHECK(s->layout_bytes == 105);
    CHECK(s->has_binocular);
    check_point(s->gaze, 0);
    CHECK(s->worn);
    CHECK(s->has_eye_state);
    CHECK(s->has_eyelids);
    CHECK(s->has_monocular);
    check_eye_states(*s);
    check_eyelids(*s);
    check_point(s->left, 22);
    check_point(s->right, 24);
}

TEST_CASE("neon gaze: any other length is rejected") {
    for (int length : {0, 1, 4, 8, 10, 16, 18, 24, 26, 33, 64, 66, 88, 90, 104, 106, 1500}) {
        CAPTURE(length);
        Bytes b(static_cast<size_t>(length), 0x41);
        CHECK_FALSE(parse_gaze(b));
    }
}

TEST_CASE("neon gaze: encode_gaze and parse_gaze round-trip every layout") {
    GazeSample in;
    in.gaze = {812.5f, 604.25f};
    in.worn = true;
    in.left = {790.0f, 610.5f};
    in.right = {830.75f, 598.0f};
    in.left_eye = {3.5f, {-31.0f, 12.5f, -20.25f}, {0.125f, -0.25f, 0.96f}, 0.5f, -0.375f, 10.5f};
    in.right_eye = {3.75f, {29.5f, 11.0f, -19.5f}, {-0.0625f, -0.2f, 0.97f}, 0.45f, -0.35f, 9.75f};

    for (int layout : {9, 17, 25, 65, 89, 105}) {
        CAPTURE(layout);
        const std::string encoded = encode_gaze(in, layout);
        REQUIRE(encoded.size() == static_cast<size_t>(layout));
        auto out = parse_gaze(to_bytes(encoded));
        REQUIRE(out);
        CHECK(out->layout_bytes == layout);
        CHECK(out->worn);
        CHECK(out->has_binocular == (layout != 17));
        if (out->has_binocular) CHECK(same_point(out->gaze, in.gaze));
        CHECK(out->has_monocular == (layout == 17 || layout == 25 || layout == 105));
        if (out->has_monocular) {
            CHECK(same_point(out->left, in.left));
            CHECK(same_point(out->right, in.right));
        }
        CHECK(out->has_eye_state == (layout >= 65));
        CHECK(out->has_eyelids == (layout >= 89));
        if (layout >= 89) {
            CHECK(same_eye(out->left_eye, in.left_eye));
            CHECK(same_eye(out->right_eye, in.right_eye));
        }
    }
    in.worn = false;
    CHECK(static_cast<uint8_t>(encode_gaze(in, 9)[8]) == 0);
    CHECK(encode_gaze(in, 10).empty());
    CHECK(encode_gaze(in, -9).empty());
}

namespace {
Bytes event_header(int32_t type) {
    Bytes b;
    put_be32(b, static_cast<uint32_t>(type));
    return b;
}
Bytes fixation_like_event(int32_t type) {
    Bytes b = event_header(type);
    put_be64(b, 1'700'000'000'123'456'789ull);
    put_be64(b, 1'700'000'000'456'789'012ull);
    for (int i = 0; i < 10; ++i) put_be_f32(b, field_value(i));
    return b;
}
}  // namespace

TEST_CASE("neon eye events: saccade and fixation carry times and ten floats in order") {
    for (int32_t type : {0, 1}) {
        CAPTURE(type);
        Bytes b = fixation_like_event(type);
        REQUIRE(b.size() == 60);
        auto e = parse_eye_event(b);
        REQUIRE(e);
        CHECK(e->type == (type == 0 ? EyeEventType::Saccade : EyeEventType::Fixation));
        CHECK(e->start_ns == 1'700'000'000'123'456'789);
        CHECK(e->end_ns == 1'700'000'000'456'789'012);
        CHECK(e->has_details);
        check_point(e->start, 0);
        check_point(e->end, 2);
        check_point(e->mean, 4);
        CHECK(e->amplitude_px == field_value(6));
        CHECK(e->amplitude_deg == field_value(7));
        CHECK(e->mean_velocity == field_value(8));
        CHECK(e->max_velocity == field_value(9));

        b.pop_back();
        CHECK_FALSE(parse_eye_event(b));
    }
}

TEST_CASE("neon eye events: onsets, blink and keep-alive; short payloads rejected") {
    for (int32_t type : {2, 3}) {
        CAPTURE(type);
        Bytes b = event_header(type);
        put_be64(b, 1'699'999'999'000'000'001ull);
        auto e = parse_eye_event(b);
        REQUIRE(e);
        CHECK(e->type == (type == 2 ? EyeEventType::SaccadeOnset : EyeEventType::FixationOnset));
        CHECK(e->start_ns == 1'699'999'999'000'000'001);
        CHECK(e->end_ns == 0);
        CHECK_FALSE(e->has_details);
        b.pop_back();
        CHECK_FALSE(parse_eye_event(b));
    }

    Bytes blink = event_header(4);
    put_be64(blink, 1'700'000'001'000'000'000ull);
    put_be64(blink, 1'700'000'001'150'000'000ull);
    auto e = parse_eye_event(blink);
    REQUIRE(e);
    CHECK(e->type == EyeEventType::Blink);
    CHECK(e->start_ns == 1'700'000'001'000'000'000);
    CHECK(e->end_ns == 1'700'000'001'150'000'000);
    CHECK_FALSE(e->has_details);
    blink.pop_back();
    CHECK_FALSE(parse_eye_event(blink));

    auto keep_alive = parse_eye_event(event_header(5));
    REQUIRE(keep_alive);
    CHECK(keep_alive->type == EyeEventType::KeepAlive);
    CHECK(keep_alive->start_ns == 0);

    // Too short for even the type, or an unknown type.
    CHECK_FALSE(parse_eye_event(Bytes{}));
    CHECK_FALSE(parse_eye_event(Bytes{0, 0, 0}));
    Bytes unknown = event_header(6);
    put_be64(unknown, 1);
    put_be64(unknown, 2);
    CHECK_FALSE(parse_eye_event(unknown));
    CHECK_FALSE(parse_eye_event(fixation_like_event(-1)));

    // Trailing bytes from a newer app version are ignored.
    Bytes longer = event_header(3);
    put_be64(longer, 42);
    append(longer, {0xAA, 0xBB});
    auto onset = parse_eye_event(longer);
    REQUIRE(onset);
    CHECK(onset->start_ns == 42);
}

TEST_CASE("neon eye events: names and encode/parse round trip") {
    CHECK(std::string(to_string(EyeEventType::Saccade)) == "saccade");
    CHECK(std::string(to_string(EyeEventType::Fixation)) == "fixation");
    CHECK(std::string(to_string(EyeEventType::SaccadeOnset)) == "saccade_onset");
    CHECK(std::string(to_string(EyeEventType::FixationOnset)) == "fixation_onset");
    CHECK(std::string(to_string(EyeEventType::Blink)) == "blink");
    CHECK(std::string(to_string(EyeEventType::KeepAlive)) == "keep_alive");

    EyeEvent fixation;
    fixation.type = EyeEventType::Fixation;
    fixation.start_ns = 1'700'000'000'000'000'000;
    fixation.end_ns = 1'700'000'000'250'000'000;
    fixation.has_details = true;
    fixation.start = {800.5f, 600.25f};
    fixation.end = {805.0f, 598.0f};
    fixation.mean = {802.75f, 599.5f};
    fixation.amplitude_px = 5.5f;
    fixation.amplitude_deg = 0.375f;
    fixation.mean_velocity = 12.5f;
    fixation.max_velocity = 30.0f;
    const std::string encoded = encode_eye_event(fixation);
    CHECK(encoded.size() == 60);
    auto out = parse_eye_event(to_bytes(encoded));
    REQUIRE(out);
    CHECK(out->type == fixation.type);
    CHECK(out->start_ns == fixation.start_ns);
    CHECK(out->end_ns == fixation.end_ns);
    CHECK(same_point(out->start, fixation.start));
    CHECK(same_point(out->end, fixation.end));
    CHECK(same_point(out->mean, fixation.mean));
    CHECK(out->amplitude_px == fixation.amplitude_px);
    CHECK(out->amplitude_deg == fixation.amplitude_deg);
    CHECK(out->mean_velocity == fixation.mean_velocity);
    CHECK(out->max_velocity == fixation.max_velocity);

    EyeEvent blink;
    blink.type = EyeEventType::Blink;
    blink.start_ns = 11;
    blink.end_ns = 22;
    CHECK(encode_eye_event(blink).size() == 20);
    EyeEvent onset;
    onset.type = EyeEventType::SaccadeOnset;
    onset.start_ns = -5;  // signed on the wire
    CHECK(encode_eye_event(onset).size() == 12);
    CHECK(parse_eye_event(to_bytes(encode_eye_event(onset)))->start_ns == -5);
    CHECK(encode_eye_event(EyeEvent{}).size() == 4);
    CHECK(parse_eye_event(to_bytes(encode_eye_event(blink)))->end_ns == 22);
}

namespace {
// Protobuf key byte(s): field number and wire type.
void put_key(Bytes& b, uint32_t field, uint32_t wire_type) { put_varint(b, (uint64_t{field} << 3) | wire_type); }
void put_float_field(Bytes& b, uint32_t field, float v) {
    put_key(b, field, 5);
    put_le_f32(b, v);
}
void put_message(Bytes& b, uint32_t field, const Bytes& body) {
    put_key(b, field, 2);
    put_varint(b, body.size());
    append(b, body);
}
Bytes floats_message(std::initializer_list<float> values) {
    Bytes body;
    uint32_t field = 1;
    for (float v : values) put_float_field(body, field++, v);
    return body;
}
}  // namespace

TEST_CASE("neon imu: a full packet with every field") {
    Bytes b;
    put_key(b, 1, 0);
    put_varint(b, 1'700'000'000'123'456'789ull);
    put_message(b, 2, floats_message({0.01f, -0.02f, 0.98f}));
    put_message(b, 3, floats_message({1.5f, -2.25f, 3.0f}));
    put_message(b, 4, floats_message({0.9f, 0.1f, -0.2f, 0.3f}));  // w, x, y, z
    auto s = parse_imu(b);
    REQUIRE(s);
    CHECK(s->timestamp_ns == 1'700'000'000'123'456'789ull);
    CHECK(s->accel_g.x == 0.01f);
    CHECK(s->accel_g.y == -0.02f);
    CHECK(s->accel_g.z == 0.98f);
    CHECK(s->gyro_dps.x == 1.5f);
    CHECK(s->gyro_dps.y == -2.25f);
    CHECK(s->gyro_dps.z == 3.0f);
    CHECK(s->quat_w == 0.9f);
    CHECK(s->quat_x == 0.1f);
    CHECK(s->quat_y == -0.2f);
    CHECK(s->quat_z == 0.3f);

    // The classic protobuf example: field 1 = 150 is 08 96 01; floats are little-endian.
    Bytes literal = {0x08, 0x96, 0x01, 0x1A, 0x05, 0x0D, 0x00, 0x00, 0x80, 0x3F};
    auto small = parse_imu(literal);
    REQUIRE(small);
    CHECK(small->timestamp_ns == 150);
    CHECK(small->gyro_dps.x == 1.0f);
}

TEST_CASE("neon imu: omitted zero fields stay zero, empty messages are valid") {
    Bytes b;
    put_key(b, 1, 0);
    put_varint(b, 5'000'000'000ull);
    put_message(b, 2, {});  // all-zero acceleration: an empty sub-message
    Bytes gyro;
    put_float_field(gyro, 2, -7.5f);  // only y
    put_message(b, 3, gyro);
    Bytes rotation;
    put_float_field(rotation, 1, 1.0f);  // identity quaternion: only w
    put_message(b, 4, rotation);
    auto s = parse_imu(b);
    REQUIRE(s);
    CHECK(s->timestamp_ns == 5'000'000'000ull);
    CHECK(s->accel_g.x == 0.0f);
    CHECK(s->accel_g.y == 0.0f);
    CHECK(s->accel_g.z == 0.0f);
    CHECK(s->gyro_dps.x == 0.0f);
    CHECK(s->gyro_dps.y == -7.5f);
    CHECK(s->gyro_dps.z == 0.0f);
    CHECK(s->quat_w == 1.0f);
    CHECK(s->quat_x == 0.0f);

    auto empty = parse_imu(Bytes{});
    REQUIRE(empty);
    CHECK(empty->timestamp_ns == 0);
}

TEST_CASE("neon imu: unknown fields of every wire type are skipped") {
    Bytes accel;
    put_float_field(accel, 1, 0.5f);
    put_key(accel, 4, 0);  // int32 reserved = 4
    put_varint(accel, 300);
    put_float_field(accel, 3, 0.75f);
    Bytes rotation;
    put_float_field(rotation, 4, 0.125f);  // z
    put_float_field(rotation, 5, 99.0f);   // float reserved = 5
    put_float_field(rotation, 1, 0.5f);    // w, out of order

    Bytes b;
    put_key(b, 9, 0);  // unknown varint
    put_varint(b, 123456789);
    put_message(b, 2, accel);
    put_key(b, 10, 1);  // unknown fixed64
    append(b, {1, 2, 3, 4, 5, 6, 7, 8});
    put_message(b, 11, {0xFF, 0xFF, 0xFF});  // unknown length-delimited, contents never looked at
    put_key(b, 12, 5);                       // unknown fixed32
    append(b, {9, 9, 9, 9});
    put_key(b, 1, 5);  // tsNs with a wrong wire type is an unknown field, not a timestamp
    append(b, {1, 0, 0, 0});
    put_key(b, 1, 0);
    put_varint(b, 77);
    put_message(b, 4, rotation);
    put_key(b, 300, 0);  // field number needing a two-byte key
    put_varint(b, 1);

    auto s = parse_imu(b);
    REQUIRE(s);
    CHECK(s->timestamp_ns == 77);
    CHECK(s->accel_g.x == 0.5f);
    CHECK(s->accel_g.y == 0.0f);
    CHECK(s->accel_g.z == 0.75f);
    CHECK(s->quat_w == 0.5f);
    CHECK(s->quat_z == 0.125f);

    // A sub-message sent twice merges, like protobuf.
    Bytes twice;
    put_message(twice, 3, floats_message({1.0f}));
    Bytes gyro_z;
    put_float_field(gyro_z, 3, 4.0f);
    put_message(twice, 3, gyro_z);
    auto merged = parse_imu(twice);
    REQUIRE(merged);
    CHECK(merged->gyro_dps.x == 1.0f);
    CHECK(merged->gyro_dps.z == 4.0f);
}

TEST_CASE("neon imu: truncated or malformed input is rejected") {
    Bytes full;
    put_key(full, 1, 0);
    put_varint(full, 1'700'000'000'123'456'789ull);
    put_message(full, 2, floats_message({0.1f, 0.2f, 0.3f}));
    put_message(full, 4, floats_message({0.9f, 0.1f, 0.2f, 0.3f}));
    REQUIRE(parse_imu(full));
    // Every strict prefix ends inside a key, varint, length or sub-message, except at field ends.
    const size_t field_ends[] = {10, 10 + 17, full.size()};
    for (size_t cut = 1; cut < full.size(); ++cut) {
        bool at_field_end = false;
        for (size_t end : field_ends) at_field_end = at_field_end || cut == end;
        CAPTURE(cut);
        CHECK(parse_imu(Bytes(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut))).has_value() ==
              at_field_end);
    }

    CHECK_FALSE(parse_imu(Bytes{0x08, 0x80, 0x80}));        // varint runs off the end
    CHECK_FALSE(parse_imu(Bytes{0x12, 0x05, 0x0D, 0x00}));  // length past the end
    CHECK_FALSE(parse_imu(Bytes{0x12, 0x03, 0x0D, 0x00, 0x00}));  // fixed32 cut inside a sub-message
    CHECK_FALSE(parse_imu(Bytes{0x12, 0x01, 0x80}));         // key cut inside a sub-message
    CHECK_FALSE(parse_imu(Bytes{0x0B, 0x0C}));              // groups (wire types 3/4) never occur in proto3
    CHECK_FALSE(parse_imu(Bytes{0x0E, 0x00}));              // wire type 6 does not exist
    CHECK_FALSE(parse_imu(Bytes{0x00, 0x01}));              // field number 0
    Bytes eleven_byte_varint = {0x08};
    for (int i = 0; i < 10; ++i) eleven_byte_varint.push_back(0x80);
    eleven_byte_varint.push_back(0x01);
    CHECK_FALSE(parse_imu(eleven_byte_varint));
    Bytes huge_length = {0x12};
    put_varint(huge_length, ~uint64_t{0});
    CHECK_FALSE(parse_imu(huge_length));
}

TEST_CASE("neon imu: encode_imu omits zero fields and round-trips") {
    ImuSample only_time;
    only_time.timestamp_ns = 150;
    // tsNs, then the three sub-messages, empty.
    CHECK(to_bytes(encode_imu(only_time)) == Bytes{0x08, 0x96, 0x01, 0x12, 0x00, 0x1A, 0x00, 0x22, 0x00});

    ImuSample in;
    in.timestamp_ns = 1'700'000'000'987'654'321ull;
    in.accel_g = {0.0f, -0.03f, 1.01f};
    in.gyro_dps = {12.5f, 0.0f, -0.75f};
    in.quat_w = 0.7071f;
    in.quat_y = -0.7071f;
    auto out = parse_imu(to_bytes(encode_imu(in)));
    REQUIRE(out);
    CHECK(out->timestamp_ns == in.timestamp_ns);
    CHECK(same_vec3(out->accel_g, in.accel_g));
    CHECK(same_vec3(out->gyro_dps, in.gyro_dps));
    CHECK(out->quat_w == in.quat_w);
    CHECK(out->quat_x == 0.0f);
    CHECK(out->quat_y == in.quat_y);
    CHECK(out->quat_z == 0.0f);

    auto zero = parse_imu(to_bytes(encode_imu(ImuSample{})));
    REQUIRE(zero);
    CHECK(zero->timestamp_ns == 0);
}

// Neon real-time payload parsers and their inverse encoders.
//
// Field orders (all big-endian; f = float32, B = u8 worn flag, 255 = worn), as read from Pupil Labs'
// MIT-licensed Python client pl-realtime-api, src/pupil_labs/realtime_api/streaming/gaze.py and
// eye_events.py (struct formats "!ffB...", "!iqq...", checked 2025):
//   9   x y B
//   17  left_x left_y B right_x right_y                 (dual monocular: no binocular point)
//   25  x y B mono_left_x mono_left_y mono_right_x mono_right_y
//   65  x y B, then per eye, left first, then right:
//       pupil_diameter, eyeball_center x y z, optical_axis x y z
//   89  the 65 layout, then eyelid angle_top angle_bottom aperture for left, then for right
//   105 the 89 layout, then mono_left_x mono_left_y mono_right_x mono_right_y
// Eye events: i32 type, then
//   0/1 saccade/fixation (60 B): start_ns i64, end_ns i64, start xy, end xy, mean xy,
//       amplitude_px, amplitude_deg, mean_velocity, max_velocity (f32)
//   2/3 onsets (12 B): start_ns;  4 blink (20 B): start_ns, end_ns;  5 keep-alive: nothing.
//   Longer payloads are accepted (the extra bytes ignored) so a newer phone app does not break us.
// IMU protobuf (imu.proto, package imuproto, read from the serialized descriptor in
// pl-neon-recording timeseries/imu/imu_pb2.py): ImuPacket { uint64 tsNs = 1; AccelData accelData = 2;
// GyroData gyroData = 3; RotVecData rotVecData = 4; }, AccelData/GyroData { float x = 1, y = 2, z = 3;
// int32 reserved = 4; }, RotVecData { float w = 1, x = 2, y = 3, z = 4; float reserved = 5; }.
#include "neon_payloads.hpp"

#include <bit>
#include <cstring>

namespace pilogger::neon {
namespace {

// Sequential big-endian reads; callers check the length up front, so no bounds checks here.
class BigEndianReader {
public:
    explicit BigEndianReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

    uint8_t u8() { return bytes_[pos_++]; }
    uint32_t u32() {
        uint32_t value = 0;
        for (int i = 0; i < 4; ++i) value = (value << 8) | bytes_[pos_++];
        return value;
    }
    uint64_t u64() {
        uint64_t high = u32();
        return (high << 32) | u32();
    }
    float f32() { return std::bit_cast<float>(u32()); }
    Point2 point() {
        Point2 p;
        p.x = f32();
        p.y = f32();
        return p;
    }
    Vec3 vec3() {
        Vec3 v;
        v.x = f32();
        v.y = f32();
        v.z = f32();
        return v;
    }

private:
    std::span<const uint8_t> bytes_;
    size_t pos_ = 0;
};

class BigEndianWriter {
public:
    void u8(uint8_t value) { out_.push_back(static_cast<char>(value)); }
    void u32(uint32_t value) {
        for (int shift = 24; shift >= 0; shift -= 8) u8(static_cast<uint8_t>(value >> shift));
    }
    void u64(uint64_t value) {
        u32(static_cast<uint32_t>(value >> 32));
        u32(static_cast<uint32_t>(value));
    }
    void f32(float value) { u32(std::bit_cast<uint32_t>(value)); }
    void point(const Point2& p) {
        f32(p.x);
        f32(p.y);
    }
    void vec3(const Vec3& v) {
        f32(v.x);
        f32(v.y);
        f32(v.z);
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

constexpr uint8_t kWornByte = 255;

void read_eye_state(BigEndianReader& in, EyeState& eye) {
    eye.pupil_diameter_mm = in.f32();
    eye.eyeball_center_mm = in.vec3();
    eye.optical_axis = in.vec3();
}
void write_eye_state(BigEndianWriter& out, const EyeState& eye) {
    out.f32(eye.pupil_diameter_mm);
    out.vec3(eye.eyeball_center_mm);
    out.vec3(eye.optical_axis);
}
void read_eyelids(BigEndianReader& in, EyeState& eye) {
    eye.eyelid_angle_top_rad = in.f32();
    eye.eyelid_angle_bottom_rad = in.f32();
    eye.eyelid_aperture_mm = in.f32();
}
void write_eyelids(BigEndianWriter& out, const EyeState& eye) {
    out.f32(eye.eyelid_angle_top_rad);
    out.f32(eye.eyelid_angle_bottom_rad);
    out.f32(eye.eyelid_aperture_mm);
}

bool is_gaze_layout(size_t bytes) {
    return bytes == 9 || bytes == 17 || bytes == 25 || bytes == 65 || bytes == 89 || bytes == 105;
}

// Bytes an eye event of this type needs; 0 for an unknown type.
size_t eye_event_size(int32_t type) {
    switch (type) {
        case 0:
        case 1: return 60;
        case 2:
        case 3: return 12;
        case 4: return 20;
        case 5: return 4;
        default: return 0;
    }
}

// --- protobuf wire format -------------------------------------------------------------------

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

class ProtoReader {
public:
    explicit ProtoReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

    bool done() const { return pos_ == bytes_.size(); }

    // At most ten bytes; a varint running off the end or past 64 bits is malformed.
    std::optional<uint64_t> varint() {
        uint64_t value = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (pos_ == bytes_.size()) return std::nullopt;
            const uint8_t byte = bytes_[pos_++];
            value |= static_cast<uint64_t>(byte & 0x7F) << shift;
            if ((byte & 0x80) == 0) return value;
        }
        return std::nullopt;
    }
    std::optional<uint32_t> fixed32() {
        if (bytes_.size() - pos_ < 4) return std::nullopt;
        uint32_t value = 0;
        for (int i = 3; i >= 0; --i) value = (value << 8) | bytes_[pos_ + static_cast<size_t>(i)];
        pos_ += 4;
        return value;
    }
    std::optional<std::span<const uint8_t>> bytes(uint64_t length) {
        if (length > bytes_.size() - pos_) return std::nullopt;
        auto view = bytes_.subspan(pos_, static_cast<size_t>(length));
        pos_ += static_cast<size_t>(length);
        return view;
    }
    // Skips one field's value. Groups (wire types 3/4) never occur in proto3 and are rejected.
    bool skip(uint32_t wire_type) {
        switch (wire_type) {
            case kVarint: return varint().has_value();
            case kFixed64: return bytes(8).has_value();
            case kLengthDelimited: {
                auto length = varint();
                return length && bytes(*length).has_value();
            }
            case kFixed32: return bytes(4).has_value();
            default: return false;
        }
    }

private:
    std::span<const uint8_t> bytes_;
    size_t pos_ = 0;
};

struct FieldKey {
    uint64_t number;
    uint32_t wire_type;
};
std::optional<FieldKey> read_key(ProtoReader& in) {
    auto key = in.varint();
    if (!key || (*key >> 3) == 0) return std::nullopt;  // field number 0 is invalid
    return FieldKey{*key >> 3, static_cast<uint32_t>(*key & 7)};
}

// Parses a message whose fields are all floats: `slots[n - 1]` receives field n. A field repeated
// or a message sent twice merges like protobuf does (the last value wins).
template <size_t N>
bool parse_float_message(std::span<const uint8_t> bytes, float* const (&slots)[N]) {
    ProtoReader in(bytes);
    while (!in.done()) {
        auto key = read_key(in);
        if (!key) return false;
        if (key->wire_type == kFixed32 && key->number >= 1 && key->number <= N) {
            auto bits = in.fixed32();
            if (!bits) return false;
            *slots[key->number - 1] = std::bit_cast<float>(*bits);
        } else if (!in.skip(key->wire_type)) {
            return false;
        }
    }
    return true;
}

class ProtoWriter {
public:
    void varint(uint64_t value) {
        while (value >= 0x80) {
            out_.push_back(static_cast<char>((value & 0x7F) | 0x80));
            value >>= 7;
        }
        out_.push_back(static_cast<char>(value));
    }
    void key(uint32_t number, WireType wire_type) { varint((uint64_t{number} << 3) | wire_type); }
    // proto3 leaves out scalars equal to their default (bitwise zero: -0.0f is still sent).
    void float_field(uint32_t number, float value) {
        const uint32_t bits = std::bit_cast<uint32_t>(value);
        if (bits == 0) return;
        key(number, kFixed32);
        for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>(bits >> (8 * i)));
    }
    void message_field(uint32_t number, const std::string& body) {
        key(number, kLengthDelimited);
        varint(body.size());
        out_ += body;
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

std::string encode_floats(std::initializer_list<float> values) {
    ProtoWriter out;
    uint32_t number = 1;
    for (float v : values) out.float_field(number++, v);
    return out.take();
}

}  // namespace

std::optional<GazeSample> parse_gaze(std::span<const uint8_t> payload) {
    if (!is_gaze_layout(payload.size())) return std::nullopt;
    BigEndianReader in(payload);
    GazeSample s;
    s.layout_bytes = static_cast<int>(payload.size());
    if (s.layout_bytes == 17) {
        // Dual monocular: the first point is the left eye's, there is no binocular estimate.
        s.has_binocular = false;
        s.has_monocular = true;
        s.left = in.point();
        s.worn = in.u8() == kWornByte;
        s.right = in.point();
        return s;
    }
    s.has_binocular = true;
    s.gaze = in.point();
    s.worn = in.u8() == kWornByte;
    if (s.layout_bytes == 25) {
        s.has_monocular = true;
        s.left = in.point();
        s.right = in.point();
        return s;
    }
    if (s.layout_bytes >= 65) {
        s.has_eye_state = true;
        read_eye_state(in, s.left_eye);
        read_eye_state(in, s.right_eye);
    }
    if (s.layout_bytes >= 89) {
        s.has_eyelids = true;
        read_eyelids(in, s.left_eye);
        read_eyelids(in, s.right_eye);
    }
    if (s.layout_bytes == 105) {
        s.has_monocular = true;
        s.left = in.point();
        s.right = in.point();
    }
    return s;
}

std::string encode_gaze(const GazeSample& sample, int layout_bytes) {
    if (layout_bytes < 0 || !is_gaze_layout(static_cast<size_t>(layout_bytes))) return {};
    BigEndianWriter out;
    const uint8_t worn = sample.worn ? kWornByte : 0;
    if (layout_bytes == 17) {
        out.point(sample.left);
        out.u8(worn);
        out.point(sample.right);
        return out.take();
    }
    out.point(sample.gaze);
    out.u8(worn);
    if (layout_bytes == 25) {
        out.point(sample.left);
        out.point(sample.right);
        return out.take();
    }
    if (layout_bytes >= 65) {
        write_eye_state(out, sample.left_eye);
        write_eye_state(out, sample.right_eye);
    }
    if (layout_bytes >= 89) {
        write_eyelids(out, sample.left_eye);
        write_eyelids(out, sample.right_eye);
    }
    if (layout_bytes == 105) {
        out.point(sample.left);
        out.point(sample.right);
    }
    return out.take();
}

const char* to_string(EyeEventType type) {
    switch (type) {
        case EyeEventType::Saccade: return "saccade";
        case EyeEventType::Fixation: return "fixation";
        case EyeEventType::SaccadeOnset: return "saccade_onset";
        case EyeEventType::FixationOnset: return "fixation_onset";
        case EyeEventType::Blink: return "blink";
        case EyeEventType::KeepAlive: return "keep_alive";
    }
    return "unknown";
}

std::optional<EyeEvent> parse_eye_event(std::span<const uint8_t> payload) {
    if (payload.size() < 4) return std::nullopt;
    BigEndianReader in(payload);
    const auto raw_type = static_cast<int32_t>(in.u32());
    const size_t needed = eye_event_size(raw_type);
    if (needed == 0 || payload.size() < needed) return std::nullopt;

    EyeEvent e;
    e.type = static_cast<EyeEventType>(raw_type);
    switch (e.type) {
        case EyeEventType::Saccade:
        case EyeEventType::Fixation:
            e.start_ns = static_cast<int64_t>(in.u64());
            e.end_ns = static_cast<int64_t>(in.u64());
            e.has_details = true;
            e.start = in.point();
            e.end = in.point();
            e.mean = in.point();
            e.amplitude_px = in.f32();
            e.amplitude_deg = in.f32();
            e.mean_velocity = in.f32();
            e.max_velocity = in.f32();
            break;
        case EyeEventType::SaccadeOnset:
        case EyeEventType::FixationOnset: e.start_ns = static_cast<int64_t>(in.u64()); break;
        case EyeEventType::Blink:
            e.start_ns = static_cast<int64_t>(in.u64());
            e.end_ns = static_cast<int64_t>(in.u64());
            break;
        case EyeEventType::KeepAlive: break;
    }
    return e;
}

std::string encode_eye_event(const EyeEvent& event) {
    BigEndianWriter out;
    out.u32(static_cast<uint32_t>(event.type));
    switch (event.type) {
        case EyeEventType::Saccade:
        case EyeEventType::Fixation:
            out.u64(static_cast<uint64_t>(event.start_ns));
            out.u64(static_cast<uint64_t>(event.end_ns));
            out.point(event.start);
            out.point(event.end);
            out.point(event.mean);
            out.f32(event.amplitude_px);
            out.f32(event.amplitude_deg);
            out.f32(event.mean_velocity);
            out.f32(event.max_velocity);
            break;
        case EyeEventType::SaccadeOnset:
        case EyeEventType::FixationOnset: out.u64(static_cast<uint64_t>(event.start_ns)); break;
        case EyeEventType::Blink:
            out.u64(static_cast<uint64_t>(event.start_ns));
            out.u64(static_cast<uint64_t>(event.end_ns));
            break;
        case EyeEventType::KeepAlive: break;
    }
    return out.take();
}

std::optional<ImuSample> parse_imu(std::span<const uint8_t> payload) {
    ImuSample s;
    float* const accel[] = {&s.accel_g.x, &s.accel_g.y, &s.accel_g.z};
    float* const gyro[] = {&s.gyro_dps.x, &s.gyro_dps.y, &s.gyro_dps.z};
    float* const rotation[] = {&s.quat_w, &s.quat_x, &s.quat_y, &s.quat_z};

    ProtoReader in(payload);
    while (!in.done()) {
        auto key = read_key(in);
        if (!key) return std::nullopt;
        if (key->number == 1 && key->wire_type == kVarint) {
            auto ts = in.varint();
            if (!ts) return std::nullopt;
            s.timestamp_ns = *ts;
        } else if (key->number >= 2 && key->number <= 4 && key->wire_type == kLengthDelimited) {
            auto length = in.varint();
            if (!length) return std::nullopt;
            auto body = in.bytes(*length);
            if (!body) return std::nullopt;
            const bool ok = key->number == 2   ? parse_float_message(*body, accel)
                            : key->number == 3 ? parse_float_message(*body, gyro)
                                               : parse_float_message(*body, rotation);
            if (!ok) return std::nullopt;
        } else if (!in.skip(key->wire_type)) {
            return std::nullopt;
        }
    }
    return s;
}

std::string encode_imu(const ImuSample& sample) {
    // The phone sets all three sub-messages, so they are always written (empty when all zero).
    ProtoWriter out;
    if (sample.timestamp_ns != 0) {
        out.key(1, kVarint);
        out.varint(sample.timestamp_ns);
    }
    out.message_field(2, encode_floats({sample.accel_g.x, sample.accel_g.y, sample.accel_g.z}));
    out.message_field(3, encode_floats({sample.gyro_dps.x, sample.gyro_dps.y, sample.gyro_dps.z}));
    out.message_field(4, encode_floats({sample.quat_w, sample.quat_x, sample.quat_y, sample.quat_z}));
    return out.take();
}

}  // namespace pilogger::neon

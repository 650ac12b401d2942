// Parsers for the Neon's RTP payloads (docs/eyetracker.md, ../shared/reference facts):
// gaze (one sample per packet, layout chosen by length), eye events, IMU (protobuf).
// Pure functions on byte spans: no I/O, no allocation beyond the result.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace pilogger::neon {

struct Point2 {
    float x = 0, y = 0;
};
struct Vec3 {
    float x = 0, y = 0, z = 0;
};

// Per-eye fields of the 65/89/105 layouts; `has_*` tells which parts the layout carried.
struct EyeState {
    float pupil_diameter_mm = 0;
    Vec3 eyeball_center_mm;
    Vec3 optical_axis;
    float eyelid_angle_top_rad = 0;
    float eyelid_angle_bottom_rad = 0;
    float eyelid_aperture_mm = 0;
};

struct GazeSample {
    int layout_bytes = 0;          // 9, 17, 25, 65, 89 or 105
    bool has_binocular = false;    // all but 17 (dual monocular carries no binocular point)
    Point2 gaze;                   // binocular gaze, scene-camera pixels, when has_binocular
    bool worn = false;
    bool has_monocular = false;    // 17, 25, 105
    Point2 left;                   // monocular points when has_monocular
    Point2 right;
    bool has_eye_state = false;    // 65, 89, 105
    bool has_eyelids = false;      // 89, 105
    EyeState left_eye;
    EyeState right_eye;
};

// nullopt for any length that is not a known layout.
std::optional<GazeSample> parse_gaze(std::span<const uint8_t> payload);

enum class EyeEventType : int32_t {
    Saccade = 0,
    Fixation = 1,
    SaccadeOnset = 2,
    FixationOnset = 3,
    Blink = 4,
    KeepAlive = 5,
};
const char* to_string(EyeEventType type);  // "saccade", "fixation", "saccade_onset", ...

struct EyeEvent {
    EyeEventType type = EyeEventType::KeepAlive;
    int64_t start_ns = 0;            // phone unix ns
    int64_t end_ns = 0;              // 0 for onsets and keep-alives
    // Saccade/fixation only (has_details):
    bool has_details = false;
    Point2 start, end, mean;         // scene pixels
    float amplitude_px = 0;
    float amplitude_deg = 0;
    float mean_velocity = 0;
    float max_velocity = 0;
};

// nullopt for an unknown type or a payload shorter than its type needs.
std::optional<EyeEvent> parse_eye_event(std::span<const uint8_t> payload);

struct ImuSample {
    uint64_t timestamp_ns = 0;       // tsNs: phone unix ns (0 when omitted)
    Vec3 gyro_dps;                   // omitted fields stay 0
    Vec3 accel_g;
    float quat_w = 0, quat_x = 0, quat_y = 0, quat_z = 0;
};

// Protobuf wire format by hand (four fields, nested messages of fixed32 floats): unknown fields
// are skipped by wire type; nullopt for truncated or malformed input.
std::optional<ImuSample> parse_imu(std::span<const uint8_t> payload);

// Encoders used by tests and benchmarks to build packets (the simulator has its own in Python).
std::string encode_gaze(const GazeSample& sample, int layout_bytes);
std::string encode_eye_event(const EyeEvent& event);
std::string encode_imu(const ImuSample& sample);

}  // namespace pilogger::neon

// One camera's settings: described once in camera_kind() (what --describe prints, what the
// config loader and docs/configuration.md take), read here from `configure`.
#pragma once

#include "settings_schema.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace pilogger::camera {

// The camera kind: settings, capabilities, what it writes at most.
const ModuleKind& camera_kind();

struct CameraSettings {
    std::string backend = "libcamera";  // libcamera | test_pattern
    std::string camera = "0";           // libcamera id, part of one, or index in `pilogger devices`
    int width = 1456;
    int height = 1088;
    double fps = 30;
    std::string pixel_format = "YUV420";  // what libcamera delivers; frames become YUV420 either way
    int buffer_count = 6;                 // libcamera buffers (mmapped once)
    int queue_frames = 30;                // encoder queue bound; beyond it frames are dropped and counted

    std::string encoder = "libx264";  // libx264 | h264_v4l2m2m
    std::string preset = "ultrafast";
    std::string tune = "zerolatency";
    int crf = 23;
    int bitrate_kbps = 0;  // > 0: target bit rate instead of constant quality
    int encoder_threads = 0;
    int fragment_ms = 1000;

    int preview_width = 320;
    int preview_height = 240;
    double preview_fps = 10;  // 0: no preview
    std::string preview_format = "rgb24";  // rgb24 | gray
    std::string snapshot_format = "png";   // png | jpg

    int64_t exposure_us = 0;   // 0: automatic exposure
    double analogue_gain = 0;  // 0: automatic gain
    std::string af_mode = "default";  // default | manual | auto | continuous
    double lens_position = 0;  // dioptres, with af_mode manual
    bool hflip = false;
    bool vflip = false;

    // Throws std::invalid_argument naming the key.
    static CameraSettings from_json(const nlohmann::json& j);
    nlohmann::json to_json() const;

    int64_t frame_period_ns() const;
    // Frames between keyframes: at least one keyframe a second.
    int gop_frames() const;
};

}  // namespace pilogger::camera

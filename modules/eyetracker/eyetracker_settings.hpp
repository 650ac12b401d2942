// The eye tracker's settings: described once in eyetracker_kind() (what --describe prints, what
// the config loader and docs/configuration.md take), read here from `configure`.
#pragma once

#include "settings_schema.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace pilogger::neon {

// The eye-tracker kind: settings, capabilities, simulator hook, what it writes at most.
const ModuleKind& eyetracker_kind();

struct EyetrackerSettings {
    std::string address = "auto";     // "auto" (mDNS), "simulator", or host / host:port
    int port = 8080;
    std::string device_name;          // with auto: pick this phone when several answer
    bool scene = true;
    bool overlay = false;
    std::string damaged_frames = "keep";  // a scene frame with lost packets: "keep" (concealed) or "drop"
    bool neon_recording = false;
    bool trial_events = true;
    int time_echo_interval_s = 10;
    int time_echo_count = 20;
    bool preview = true;
    int preview_width = 320;
    double preview_fps = 5;
    std::string overlay_preset = "ultrafast";
    int overlay_crf = 23;

    // Throws std::invalid_argument naming the key.
    static EyetrackerSettings from_json(const nlohmann::json& j);
};

}  // namespace pilogger::neon

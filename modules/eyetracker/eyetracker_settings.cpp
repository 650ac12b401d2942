#include "eyetracker_settings.hpp"

#include "config.hpp"
#include "json_setting.hpp"

#include <charconv>
#include <stdexcept>
#include <string_view>

namespace pilogger::neon {

namespace {
template <typename T>
T read(const nlohmann::json& j, const char* key, T fallback) {
    return json_setting(j, key, fallback, "eyetracker");
}
}  // namespace

EyetrackerSettings EyetrackerSettings::from_json(const nlohmann::json& j) {
    if (!j.is_object()) throw std::invalid_argument("eyetracker settings must be an object");
    EyetrackerSettings s;
    s.address = read(j, "address", s.address);
    s.port = read(j, "port", s.port);
    // The config loader said this with file and line; a hand-made configure gets it here.
    if (std::string problem = neon_address_problem(s.address); !problem.empty()) {
        throw std::invalid_argument("eyetracker setting \"address\" '" + s.address + "' " + problem);
    }
    // "host:port" in address wins over port.
    if (auto colon = s.address.rfind(':'); colon != std::string::npos && s.address.find(':') == colon) {
        // The whole rest must be the number ("host:80x" is not port 80).
        const std::string_view port = std::string_view(s.address).substr(colon + 1);
        int value = 0;
        auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (ec != std::errc() || end != port.data() + port.size() || colon == 0) {
            throw std::invalid_argument("eyetracker setting \"address\" has a bad port: " + s.address);
        }
        s.port = value;
        s.address = s.address.substr(0, colon);
    }
    s.device_name = read(j, "device_name", s.device_name);
    s.scene = read(j, "scene", s.scene);
    s.overlay = read(j, "overlay", s.overlay);
    s.damaged_frames = read(j, "damaged_frames", s.damaged_frames);
    s.neon_recording = read(j, "neon_recording", s.neon_recording);
    s.trial_events = read(j, "trial_events", s.trial_events);
    s.time_echo_interval_s = read(j, "time_echo_interval_s", s.time_echo_interval_s);
    s.time_echo_count = read(j, "time_echo_count", s.time_echo_count);
    s.preview = read(j, "preview", s.preview);
    s.preview_width = read(j, "preview_width", s.preview_width);
    s.preview_fps = read(j, "preview_fps", s.preview_fps);
    s.ffmpeg = read(j, "ffmpeg", s.ffmpeg);
    s.overlay_preset = read(j, "overlay_preset", s.overlay_preset);
    s.overlay_crf = read(j, "overlay_crf", s.overlay_crf);
    if (auto it = j.find("simulator"); it != j.end() && it->is_object()) {
        for (const auto& [key, value] : it->items()) {
            s.simulator[key] = value.is_string() ? value.get<std::string>() : value.dump();
        }
    }
    if (s.address.empty()) throw std::invalid_argument("eyetracker setting \"address\" is empty");
    if (s.port <= 0 || s.port > 65535) throw std::invalid_argument("eyetracker setting \"port\" is out of range");
    if (s.time_echo_interval_s < 1 || s.time_echo_interval_s > 3600) {
        throw std::invalid_argument("eyetracker setting \"time_echo_interval_s\" is out of range (1..3600)");
    }
    if (s.time_echo_count < 1 || s.time_echo_count > 1000) {
        throw std::invalid_argument("eyetracker setting \"time_echo_count\" is out of range (1..1000)");
    }
    if (s.preview_width < 32 || s.preview_width > 1600) {
        throw std::invalid_argument("eyetracker setting \"preview_width\" is out of range (32..1600)");
    }
    if (s.preview_fps <= 0 || s.preview_fps > 30) {
        throw std::invalid_argument("eyetracker setting \"preview_fps\" is out of range (0..30]");
    }
    if (s.damaged_frames != "keep" && s.damaged_frames != "drop") {
        throw std::invalid_argument("eyetracker setting \"damaged_frames\" must be keep or drop");
    }
    if (s.overlay_crf < 0 || s.overlay_crf > 51) {
        throw std::invalid_argument("eyetracker setting \"overlay_crf\" is out of range (0..51)");
    }
    return s;
}

}  // namespace pilogger::neon

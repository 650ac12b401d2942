#include "camera_settings.hpp"

#include "json_setting.hpp"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <stdexcept>

namespace pilogger::camera {

namespace {

template <typename T>
T read(const nlohmann::json& j, const char* key, T fallback) {
    return json_setting(j, key, fallback, "camera");
}

template <typename T>
void check_range(const char* key, T value, T min, T max) {
    if (value < min || value > max) {
        throw std::invalid_argument(std::string("camera setting \"") + key + "\" is out of range");
    }
}

void check_choice(const char* key, const std::string& value, std::initializer_list<const char*> allowed) {
    for (const char* a : allowed) {
        if (value == a) return;
    }
    throw std::invalid_argument(std::string("camera setting \"") + key + "\" cannot be '" + value + "'");
}

}  // namespace

CameraSettings CameraSettings::from_json(const nlohmann::json& j) {
    if (!j.is_object()) throw std::invalid_argument("camera settings must be an object");
    CameraSettings s;
    s.backend = read(j, "backend", s.backend);
    // An index may come as a number from a hand-written configure.
    if (j.contains("camera") && j["camera"].is_number_integer()) {
        s.camera = std::to_string(j["camera"].get<int64_t>());
    } else {
        s.camera = read(j, "camera", s.camera);
    }
    s.width = read(j, "width", s.width);
    s.height = read(j, "height", s.height);
    s.fps = read(j, "fps", s.fps);
    s.pixel_format = read(j, "pixel_format", s.pixel_format);
    s.buffer_count = read(j, "buffer_count", s.buffer_count);
    s.queue_frames = read(j, "queue_frames", s.queue_frames);
    s.encoder = read(j, "encoder", s.encoder);
    s.preset = read(j, "preset", s.preset);
    s.tune = read(j, "tune", s.tune);
    s.crf = read(j, "crf", s.crf);
    s.bitrate_kbps = read(j, "bitrate_kbps", s.bitrate_kbps);
    s.encoder_threads = read(j, "encoder_threads", s.encoder_threads);
    s.fragment_ms = read(j, "fragment_ms", s.fragment_ms);
    s.preview_width = read(j, "preview_width", s.preview_width);
    s.preview_height = read(j, "preview_height", s.preview_height);
    s.preview_fps = read(j, "preview_fps", s.preview_fps);
    s.preview_format = read(j, "preview_format", s.preview_format);
    s.snapshot_format = read(j, "snapshot_format", s.snapshot_format);
    s.exposure_us = read(j, "exposure_us", s.exposure_us);
    s.analogue_gain = read(j, "analogue_gain", s.analogue_gain);
    s.af_mode = read(j, "af_mode", s.af_mode);
    s.lens_position = read(j, "lens_position", s.lens_position);
    s.hflip = read(j, "hflip", s.hflip);
    s.vflip = read(j, "vflip", s.vflip);

    // The config loader checked all of this with file and line; a hand-made configure gets it here.
    check_choice("backend", s.backend, {"libcamera", "test_pattern"});
    check_range("width", s.width, 16, 8192);
    check_range("height", s.height, 16, 8192);
    if (s.width % 2 != 0 || s.height % 2 != 0) {
        throw std::invalid_argument("camera settings \"width\" and \"height\" must be even (YUV 4:2:0)");
    }
    check_range("fps", s.fps, 1.0, 240.0);
    check_choice("pixel_format", s.pixel_format,
                 {"YUV420", "NV12", "YUYV", "UYVY", "RGB888", "BGR888", "XRGB8888", "XBGR8888", "MJPEG"});
    check_range("buffer_count", s.buffer_count, 2, 32);
    check_range("queue_frames", s.queue_frames, 2, 600);
    check_choice("encoder", s.encoder, {"libx264", "h264_v4l2m2m"});
    check_choice("preset", s.preset, {"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                                      "slower", "veryslow"});
    check_choice("tune", s.tune, {"zerolatency", "film", "animation", "grain", "stillimage", "fastdecode", "none"});
    check_range("crf", s.crf, 0, 51);
    check_range("bitrate_kbps", s.bitrate_kbps, 0, 200000);
    check_range("encoder_threads", s.encoder_threads, 0, 16);
    check_range("fragment_ms", s.fragment_ms, 100, 1000);
    check_range("preview_width", s.preview_width, 16, 1920);
    check_range("preview_height", s.preview_height, 16, 1080);
    check_range("preview_fps", s.preview_fps, 0.0, 30.0);
    check_choice("preview_format", s.preview_format, {"rgb24", "gray"});
    check_choice("snapshot_format", s.snapshot_format, {"png", "jpg"});
    check_range<int64_t>("exposure_us", s.exposure_us, 0, 10'000'000);
    check_range("analogue_gain", s.analogue_gain, 0.0, 64.0);
    check_choice("af_mode", s.af_mode, {"default", "manual", "auto", "continuous"});
    check_range("lens_position", s.lens_position, 0.0, 32.0);
    return s;
}

nlohmann::json CameraSettings::to_json() const {
    return {{"backend", backend},
            {"camera", camera},
            {"width", width},
            {"height", height},
            {"fps", fps},
            {"pixel_format", pixel_format},
            {"buffer_count", buffer_count},
            {"queue_frames", queue_frames},
            {"encoder", encoder},
            {"preset", preset},
            {"tune", tune},
            {"crf", crf},
            {"bitrate_kbps", bitrate_kbps},
            {"encoder_threads", encoder_threads},
            {"fragment_ms", fragment_ms},
            {"preview_width", preview_width},
            {"preview_height", preview_height},
            {"preview_fps", preview_fps},
            {"preview_format", preview_format},
            {"snapshot_format", snapshot_format},
            {"exposure_us", exposure_us},
            {"analogue_gain", analogue_gain},
            {"af_mode", af_mode},
            {"lens_position", lens_position},
            {"hflip", hflip},
            {"vflip", vflip}};
}

int64_t CameraSettings::frame_period_ns() const { return std::llround(1e9 / fps); }

int CameraSettings::gop_frames() const { return std::max(1, static_cast<int>(std::floor(fps))); }

}  // namespace pilogger::camera

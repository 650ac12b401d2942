#include "camera_settings.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace pilogger::camera {

const ModuleKind& camera_kind() {
    static const ModuleKind kind = [] {
        ModuleKind k;
        k.kind = "camera";
        k.summary = "one camera (libcamera, or a test pattern) into fragmented MP4 and one CSV row per frame";
        k.files = "`camera/<name>/trial_NNN.mp4` and `trial_NNN_frames.csv` ([camera.md](camera.md))";
        k.capabilities = {"snapshot", "preview", "devices"};
        k.devices_heading = "Cameras (libcamera)";
        SettingsSchema& s = k.settings;
        s.choice("backend", "libcamera", {"libcamera", "test_pattern"}, "`libcamera` or `test_pattern`");
        s.text("camera", "0",
               "libcamera: the index `pilogger devices` shows, the camera's full id, or a part of the id that matches "
               "one camera (e.g. `i2c@88000`). With two cameras, prefer ids: indexes follow the sorted ids.");
        s.integer("width", 1456, 16, 8192, "frame width in pixels. libcamera may adjust it; the module log says so.")
            .must_be_even("YUV 4:2:0 video");
        s.integer("height", 1088, 16, 8192, "frame height in pixels").must_be_even("YUV 4:2:0 video");
        s.number("fps", 30, 1, 240, "frames per second. libcamera: set with `FrameDurationLimits`.");
        s.choice("pixel_format", "YUV420",
                 {"YUV420", "NV12", "YUYV", "UYVY", "RGB888", "BGR888", "XRGB8888", "XBGR8888", "MJPEG"},
                 "what libcamera delivers (`MJPEG` for USB cameras at high resolution). Everything becomes YUV420 "
                 "before encoding.");
        s.integer("buffer_count", 6, 2, 32, "libcamera buffers, allocated and mmapped once");
        s.integer("queue_frames", 30, 2, 600, "encoder queue bound (frames); the frame pool holds 6 more");
        s.choice("encoder", "libx264", {"libx264", "h264_v4l2m2m"},
                 "`h264_v4l2m2m` is the Pi 4's hardware encoder (not on the Pi 5)");
        s.choice("preset", "ultrafast",
                 {"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"},
                 "x264 preset");
        s.choice("tune", "zerolatency",
                 {"zerolatency", "film", "animation", "grain", "stillimage", "fastdecode", "none"}, "x264 tune, or `none`");
        s.integer("crf", 23, 0, 51, "x264 constant quality (0 best, 51 worst), used when `bitrate_kbps` is 0");
        s.integer("bitrate_kbps", 0, 0, 200000, "target bit rate; `h264_v4l2m2m` uses 10000 when 0");
        s.integer("encoder_threads", 0, 0, 16, "encoder threads; 0 lets x264 choose");
        s.integer("fragment_ms", 1000, 100, 1000, "longest MP4 fragment");
        s.integer("preview_width", 320, 16, 1920, "preview width");
        s.integer("preview_height", 240, 16, 1080, "preview height");
        s.number("preview_fps", 10, 0, 30, "preview rate; `0` turns the preview off");
        s.choice("preview_format", "rgb24", {"rgb24", "gray"}, "preview pixels");
        s.choice("snapshot_format", "png", {"png", "jpg"}, "snapshot files");
        s.integer("exposure_us", 0, 0, 10'000'000, "fixed exposure time; 0: automatic (libcamera only)");
        s.number("analogue_gain", 0, 0, 64, "fixed gain; 0: automatic (libcamera only)");
        s.choice("af_mode", "default", {"default", "manual", "auto", "continuous"},
                 "`default` is the camera's own; ignored with a warning by cameras without autofocus");
        s.number("lens_position", 0, 0, 32, "dioptres, with `af_mode: manual` (0 is infinity)");
        s.boolean("hflip", false, "mirror the image left-right (with `vflip`: rotate 180°)");
        s.boolean("vflip", false, "mirror the image top-bottom");
        // Raw frames bound what the encoder can write; a bit-rate cap bounds it tighter.
        k.disk_rate = {{"video", {"width", "height", 1.5, "fps"}, "", "bitrate_kbps"},
                       {"frames CSV", {200, "fps"}, "", ""}};
        return k;
    }();
    return kind;
}

CameraSettings CameraSettings::from_json(const nlohmann::json& given) {
    if (!given.is_object()) throw std::invalid_argument("camera settings must be an object");
    nlohmann::json j = given;
    // An index may come as a number from a hand-written configure.
    if (j.contains("camera") && j["camera"].is_number_integer()) j["camera"] = std::to_string(j["camera"].get<int64_t>());
    j = camera_kind().settings.apply(j, "camera");
    CameraSettings s;
    s.backend = j["backend"];
    s.camera = j["camera"];
    s.width = j["width"];
    s.height = j["height"];
    s.fps = j["fps"];
    s.pixel_format = j["pixel_format"];
    s.buffer_count = j["buffer_count"];
    s.queue_frames = j["queue_frames"];
    s.encoder = j["encoder"];
    s.preset = j["preset"];
    s.tune = j["tune"];
    s.crf = j["crf"];
    s.bitrate_kbps = j["bitrate_kbps"];
    s.encoder_threads = j["encoder_threads"];
    s.fragment_ms = j["fragment_ms"];
    s.preview_width = j["preview_width"];
    s.preview_height = j["preview_height"];
    s.preview_fps = j["preview_fps"];
    s.preview_format = j["preview_format"];
    s.snapshot_format = j["snapshot_format"];
    s.exposure_us = j["exposure_us"];
    s.analogue_gain = j["analogue_gain"];
    s.af_mode = j["af_mode"];
    s.lens_position = j["lens_position"];
    s.hflip = j["hflip"];
    s.vflip = j["vflip"];
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

// `pilogger-camera --list-devices [--json]` (what `pilogger devices` runs): every camera libcamera
// sees, with its video formats and sensor modes.
#include "frame_source.hpp"
#include "libcamera_cameras.hpp"

#include <libcamera/control_ids.h>
#include <libcamera/stream.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <sstream>

namespace pilogger::camera {

namespace {

struct RawMode {
    std::string format;
    unsigned width;
    unsigned height;
    double max_fps;  // 0: unknown
};

std::vector<RawMode> raw_modes(lc::Camera& camera) {
    std::vector<RawMode> modes;
    std::vector<lc::StreamRole> roles{lc::StreamRole::Raw};
    std::unique_ptr<lc::CameraConfiguration> config = camera.generateConfiguration(roles);
    if (!config || config->empty()) return modes;
    const lc::StreamFormats formats = config->at(0).formats();
    for (const lc::PixelFormat& pf : formats.pixelformats()) {
        for (const lc::Size& size : formats.sizes(pf)) {
            RawMode mode{pf.toString(), size.width, size.height, 0};
            // The fastest frame rate is known only with the mode configured.
            config->at(0).pixelFormat = pf;
            config->at(0).size = size;
            if (config->validate() != lc::CameraConfiguration::Invalid && camera.configure(config.get()) == 0) {
                auto it = camera.controls().find(&lc::controls::FrameDurationLimits);
                if (it != camera.controls().end()) {
                    int64_t min_us = it->second.min().get<int64_t>();
                    if (min_us > 0) mode.max_fps = 1e6 / static_cast<double>(min_us);
                }
            }
            modes.push_back(mode);
        }
    }
    return modes;
}

}  // namespace

int list_libcamera_devices(bool as_json) {
    quiet_libcamera_logs();
    lc::CameraManager manager;
    int rc = manager.start();
    if (rc < 0) {
        std::cerr << "libcamera " << libcamera_version() << " would not start: " << std::strerror(-rc) << "\n";
        return 1;
    }
    auto cameras = sorted_cameras(manager);
    nlohmann::json list = nlohmann::json::array();
    std::ostringstream text;
    if (cameras.empty()) {
        text << "No cameras: " << describe_cameras(cameras) << ".\n";
    }
    for (size_t i = 0; i < cameras.size(); ++i) {
        lc::Camera& camera = *cameras[i];
        nlohmann::json entry{{"index", i},
                             {"id", camera.id()},
                             {"model", camera_model(camera)},
                             {"location", camera_location(camera)}};
        text << i << ": " << camera_model(camera) << "  " << camera.id() << "\n"
             << "   location: " << camera_location(camera) << "\n";

        std::vector<lc::StreamRole> roles{lc::StreamRole::VideoRecording};
        std::unique_ptr<lc::CameraConfiguration> video = camera.generateConfiguration(roles);
        nlohmann::json video_formats = nlohmann::json::array();
        if (video && !video->empty()) {
            const lc::StreamFormats formats = video->at(0).formats();
            text << "   video formats:";
            for (const lc::PixelFormat& pf : formats.pixelformats()) {
                const lc::SizeRange range = formats.range(pf);
                video_formats.push_back({{"format", pf.toString()},
                                         {"min", range.min.toString()},
                                         {"max", range.max.toString()}});
                text << " " << pf.toString() << " (" << range.min.toString() << " to " << range.max.toString() << ")";
            }
            text << "\n   default: " << video->at(0).toString() << "\n";
        }
        entry["video_formats"] = video_formats;

        nlohmann::json modes = nlohmann::json::array();
        if (camera.acquire() == 0) {
            for (const RawMode& m : raw_modes(camera)) {
                modes.push_back({{"format", m.format}, {"width", m.width}, {"height", m.height}, {"max_fps", m.max_fps}});
                char line[128];
                snprintf(line, sizeof line, "   sensor mode: %ux%u %s, up to %.2f fps\n", m.width, m.height,
                         m.format.c_str(), m.max_fps);
                text << line;
            }
            camera.release();
        } else {
            text << "   (busy: another program uses this camera, so its sensor modes are not listed)\n";
            entry["busy"] = true;
        }
        entry["sensor_modes"] = modes;
        list.push_back(entry);
    }
    if (as_json) {
        std::cout << nlohmann::json{{"libcamera", libcamera_version()}, {"cameras", list}}.dump(2) << "\n";
    } else {
        std::cout << text.str();
    }
    cameras.clear();
    manager.stop();
    return 0;
}

}  // namespace pilogger::camera

#include "libcamera_cameras.hpp"

#include <libcamera/property_ids.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

namespace pilogger::camera {

void quiet_libcamera_logs() { setenv("LIBCAMERA_LOG_LEVELS", "*:WARN", 0); }

std::string libcamera_version() { return lc::CameraManager::version(); }

std::vector<std::shared_ptr<lc::Camera>> sorted_cameras(const lc::CameraManager& manager) {
    auto cameras = manager.cameras();
    std::sort(cameras.begin(), cameras.end(), [](const auto& a, const auto& b) { return a->id() < b->id(); });
    return cameras;
}

std::string camera_model(const lc::Camera& camera) {
    auto model = camera.properties().get(lc::properties::Model);
    return model ? *model : std::string("unknown model");
}

std::string camera_location(const lc::Camera& camera) {
    auto location = camera.properties().get(lc::properties::Location);
    if (!location) return "unknown";
    switch (*location) {
        case lc::properties::CameraLocationFront: return "front";
        case lc::properties::CameraLocationBack: return "back";
        case lc::properties::CameraLocationExternal: return "external (USB)";
        default: return "unknown";
    }
}

std::string describe_cameras(const std::vector<std::shared_ptr<lc::Camera>>& cameras) {
    if (cameras.empty()) {
        return "libcamera " + libcamera_version() +
               " found no cameras (CSI: check the ribbon cable and camera_auto_detect=1 in config.txt; "
               "USB: check `ls /dev/video*`)";
    }
    std::string text = "libcamera " + libcamera_version() + " sees";
    for (size_t i = 0; i < cameras.size(); ++i) {
        text += (i == 0 ? " " : ", ") + std::to_string(i) + ": " + cameras[i]->id() + " (" + camera_model(*cameras[i]) + ")";
    }
    return text;
}

std::shared_ptr<lc::Camera> find_camera(const std::vector<std::shared_ptr<lc::Camera>>& cameras,
                                        const std::string& wanted) {
    auto fail = [&](const std::string& why) -> std::shared_ptr<lc::Camera> {
        if (cameras.empty()) throw std::runtime_error("camera '" + wanted + "' not found: " + describe_cameras(cameras));
        throw std::runtime_error("camera '" + wanted + "' " + why + "; " + describe_cameras(cameras) +
                                 " (`pilogger devices` lists them with their modes)");
    };
    if (!wanted.empty() && std::all_of(wanted.begin(), wanted.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        size_t index = std::stoul(wanted);
        if (index >= cameras.size()) return fail("not found (there is no camera number " + wanted + ")");
        return cameras[index];
    }
    for (const auto& c : cameras) {
        if (c->id() == wanted) return c;
    }
    std::shared_ptr<lc::Camera> match;
    for (const auto& c : cameras) {
        if (c->id().find(wanted) == std::string::npos) continue;
        if (match) return fail("matches more than one camera; give more of the id");
        match = c;
    }
    if (!match) return fail("not found");
    return match;
}

}  // namespace pilogger::camera

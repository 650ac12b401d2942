// The cameras libcamera sees, for the backend and for `pilogger-camera --list-devices`: the
// version, a stable order, their names, and `camera:` resolved to one of them.
#pragma once

#include <libcamera/camera.h>
#include <libcamera/camera_manager.h>
#include <libcamera/version.h>

#include <memory>
#include <string>
#include <vector>

// libcamera 0.0.3 (Debian 12) and the Raspberry Pi builds (0.3 and later) differ in a few places.
#define PILOGGER_LIBCAMERA_AT_LEAST(major, minor) \
    (LIBCAMERA_VERSION_MAJOR > (major) || (LIBCAMERA_VERSION_MAJOR == (major) && LIBCAMERA_VERSION_MINOR >= (minor)))

namespace pilogger::camera {

namespace lc = libcamera;

// Quiet libcamera's INFO lines unless the person asked for them.
void quiet_libcamera_logs();
std::string libcamera_version();

// Sorted by id, so `camera: <index>` is stable (libcamera's own order follows enumeration).
std::vector<std::shared_ptr<lc::Camera>> sorted_cameras(const lc::CameraManager& manager);
std::string camera_model(const lc::Camera& camera);
std::string camera_location(const lc::Camera& camera);
// "libcamera v0.3 sees 0: <id> (<model>), ..." or what to check when it sees none.
std::string describe_cameras(const std::vector<std::shared_ptr<lc::Camera>>& cameras);
// `camera:` is an index into the sorted list, an exact id, or a unique part of one. Throws
// std::runtime_error naming what was asked for and the cameras there are.
std::shared_ptr<lc::Camera> find_camera(const std::vector<std::shared_ptr<lc::Camera>>& cameras,
                                        const std::string& wanted);

}  // namespace pilogger::camera

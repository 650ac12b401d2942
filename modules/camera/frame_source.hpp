// Where frames come from: the libcamera backend or the test pattern, behind one interface.
#pragma once

#include "camera_settings.hpp"
#include "frame.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace pilogger::camera {

// Receives what a source produces. Called on the source's own thread; must never block for long.
class FrameSink {
public:
    virtual ~FrameSink() = default;
    virtual void on_frame(FramePtr frame) = 0;
    // Frames the camera made but that never became a Frame (sensor overrun, a frame without
    // FrameSuccess, an empty pool).
    virtual void on_frames_lost(uint64_t count) = 0;
    // Something the person running the camera should hear about (a camera restart, ...).
    virtual void on_source_warning(const std::string& message) = 0;
};

struct SourceInfo {
    std::string description;  // "test pattern", "imx296 (/base/soc/i2c0mux/...)"
    int width = 0;            // what the frames really are (libcamera may adjust the request)
    int height = 0;
    std::string pixel_format;
    ColorInfo color;
};

class FrameSource {
public:
    virtual ~FrameSource() = default;
    // Opens the device and starts delivering frames to sink from the source's own thread.
    // Blocking (run it off the event loop). Throws std::runtime_error with a message that names
    // the camera and what was found instead.
    virtual SourceInfo start(FrameSink& sink) = 0;
    // Stops delivering and releases the device. Blocking, idempotent; no sink call after it returns.
    virtual void stop() = 0;
    virtual nlohmann::json stats() const { return nlohmann::json::object(); }
};

std::unique_ptr<FrameSource> make_test_pattern_source(const CameraSettings& settings);
std::unique_ptr<FrameSource> make_libcamera_source(const CameraSettings& settings, const std::string& name);

// Lists the cameras libcamera sees with their modes; returns the process exit status.
int list_libcamera_devices(bool as_json);

}  // namespace pilogger::camera

// The eye tracker's scene preview for the GUI: decodes H.264 on a worker thread at a modest rate
// (keyframes only unless every frame is decoded anyway), scales to the preview size and publishes
// into the same shared-memory layout as the cameras (modules/camera/preview.hpp), with the gaze
// point of the frame in the header's gaze fields (docs/gui.md: header_bytes 80,
// 64 f32 gaze_x, 68 f32 gaze_y as 0..1 of the scene, 72 i64 gaze_mono_ns, 0 = no gaze).
// The recording path never waits for it: offer() drops when the worker is busy.
#pragma once

#include "h264_depacketizer.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace pilogger::neon {

class ScenePreview {
public:
    // Throws std::runtime_error naming the shared-memory object when it cannot be made.
    ScenePreview(std::string shm_name, int width, int height, double fps,
                 std::string parameter_sets_annexb);
    ~ScenePreview();  // joins the worker, removes the object
    ScenePreview(const ScenePreview&) = delete;
    ScenePreview& operator=(const ScenePreview&) = delete;

    // Loop thread; copies what it keeps. Never blocks on the worker.
    void offer(const AccessUnit& unit, int64_t mono_ns);
    // Loop thread: the latest gaze sample (scene pixels, scene size from the SDP/decoder).
    void set_gaze(float x_px, float y_px, int64_t mono_ns);
    const std::string& name() const;
    uint64_t published() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace pilogger::neon

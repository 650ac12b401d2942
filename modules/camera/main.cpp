#include "camera_module.hpp"
#include "camera_settings.hpp"
#include "frame_source.hpp"
#include "reconcile.hpp"

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    // Two extras before the common module options: --list-devices (what `pilogger devices` runs)
    // and --camera NAME, the same as --name (the camera's entry under modules:).
    std::vector<char*> args;
    bool list = false;
    bool as_json = false;
    std::string renamed;
    for (int i = 0; i < argc; ++i) {
        if (std::strcmp(argv[i], "--reconcile") == 0 && i + 1 < argc) {
            // After a crash nothing continued (docs/camera.md): row k is video frame k again.
            return pilogger::reconcile_folder(
                argv[i + 1], "_frames.csv",
                [](const std::string& csv) { return csv.substr(0, csv.size() - std::strlen("_frames.csv")) + ".mp4"; },
                std::cout, 20);
        }
        if (std::strcmp(argv[i], "--list-devices") == 0) {
            list = true;
        } else if (std::strcmp(argv[i], "--json") == 0) {
            as_json = true;
        } else if (std::strcmp(argv[i], "--camera") == 0) {
            args.push_back(const_cast<char*>("--name"));
        } else if (std::strncmp(argv[i], "--camera=", 9) == 0) {
            renamed = std::string("--name=") + (argv[i] + 9);
            args.push_back(renamed.data());
        } else {
            args.push_back(argv[i]);
        }
    }
    if (list) return pilogger::camera::list_libcamera_devices(as_json);
    if (as_json) args.push_back(const_cast<char*>("--json"));  // not a module option: CLI11 reports it
    return pilogger::run_module(
        static_cast<int>(args.size()), args.data(), pilogger::camera::camera_kind(),
        "pilogger camera module: libcamera or test-pattern capture into fragmented MP4 + per-frame CSV\n"
        "  pilogger-camera --config FILE --camera NAME --output DIR [--duration S]\n"
        "  pilogger-camera --list-devices [--json]\n"
        "  pilogger-camera --reconcile SESSION/camera/NAME   (frames CSVs against their MP4s after a crash)",
        [](pilogger::ModuleRuntime& rt) { return std::make_unique<pilogger::camera::CameraModule>(rt); });
}

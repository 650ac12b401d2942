#include "eyetracker_module.hpp"
#include "eyetracker_settings.hpp"
#include "list_devices.hpp"
#include "reconcile.hpp"

#include <cstring>
#include <iostream>

int main(int argc, char** argv) {
    // --list-devices [--json] (what `pilogger devices` runs) comes before the module options.
    bool list = false;
    bool as_json = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--list-devices") == 0) list = true;
        if (std::strcmp(argv[i], "--json") == 0) as_json = true;
        if (std::strcmp(argv[i], "--reconcile") == 0 && i + 1 < argc) {
            // After a crash nothing continued (docs/eyetracker.md): row k is scene frame k again.
            return pilogger::reconcile_folder(
                argv[i + 1], "_scene_frames.csv",
                [](const std::string& csv) {
                    return csv.substr(0, csv.size() - std::strlen("_scene_frames.csv")) + "_scene.mp4";
                },
                std::cout, 20);
        }
    }
    if (list) return pilogger::neon::list_neon_devices(as_json);
    return pilogger::run_module(
        argc, argv, pilogger::neon::eyetracker_kind(),
        "pilogger eye-tracker module: a Pupil Labs Neon over its real-time API (gaze, IMU, eye events,\n"
        "scene video) into per-trial CSV files and a fragmented MP4\n"
        "  pilogger-eyetracker --config FILE [--name NAME] --output DIR [--duration S]\n"
        "  pilogger-eyetracker --list-devices [--json]\n"
        "  pilogger-eyetracker --reconcile SESSION/eyetracker   (scene frames CSVs against their MP4s after a crash)",
        [](pilogger::ModuleRuntime& rt) { return std::make_unique<pilogger::neon::EyetrackerModule>(rt); });
}

#include "eyetracker_module.hpp"
#include "list_devices.hpp"

#include <cstring>

int main(int argc, char** argv) {
    // --list-devices [--json] (what `pilogger devices` runs) comes before the module options.
    bool list = false;
    bool as_json = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--list-devices") == 0) list = true;
        if (std::strcmp(argv[i], "--json") == 0) as_json = true;
    }
    if (list) return pilogger::neon::list_neon_devices(as_json);
    return pilogger::run_module(
        argc, argv, "eyetracker",
        "pilogger eye-tracker module: a Pupil Labs Neon over its real-time API (gaze, IMU, eye events,\n"
        "scene video) into per-trial CSV files and a fragmented MP4\n"
        "  pilogger-eyetracker --config FILE [--name NAME] --output DIR [--duration S]\n"
        "  pilogger-eyetracker --list-devices [--json]",
        [](pilogger::ModuleRuntime& rt) { return std::make_unique<pilogger::neon::EyetrackerModule>(rt); });
}

#include "eyetracker_module.hpp"

int main(int argc, char** argv) {
    return pilogger::run_module(
        argc, argv, "eyetracker",
        "pilogger eye-tracker module: a Pupil Labs Neon over its real-time API (gaze, IMU, eye events,\n"
        "scene video) into per-trial CSV files and a fragmented MP4\n"
        "  pilogger-eyetracker --config FILE [--name NAME] --output DIR [--duration S]",
        [](pilogger::ModuleRuntime& rt) { return std::make_unique<pilogger::neon::EyetrackerModule>(rt); });
}

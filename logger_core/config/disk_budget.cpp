#include "disk_budget.hpp"

#include "json_read.hpp"

#include <cstdio>

namespace pilogger {

namespace {
constexpr double kMiB = 1024.0 * 1024.0;
// The supervisor reads at most this much of a module's stderr per second (module_process.cpp).
constexpr double kLogBytesPerS = 128.0 * 1024 * 10;
// Above any Neon scene stream (the Companion app sends a few Mbit/s).
constexpr double kNeonSceneBytesPerS = 32e6 / 8;

double camera_rate(const nlohmann::json& s) {
    double fps = read::real(s, "fps", 30);
    double raw = static_cast<double>(read::integer(s, "width", 1456) * read::integer(s, "height", 1088)) * 1.5 * fps;
    double rows = 200 * fps;  // frames CSV
    int64_t kbps = read::integer(s, "bitrate_kbps", 0);
    // With a bitrate cap the encoder stays near it; twice covers its rate control's overshoot.
    double video = kbps > 0 ? std::min(raw, static_cast<double>(kbps) * 1000 / 8 * 2) : raw;
    return video + rows;
}

double eyetracker_rate(const nlohmann::json& s) {
    double rate = 200 * 400 + 110 * 300;  // gaze and IMU rows
    if (read::flag(s, "scene", true)) rate += kNeonSceneBytesPerS;
    // The overlay re-encodes the 1600x1200 scene at 30 fps: raw frames bound it.
    if (read::flag(s, "overlay", false)) rate += 1600.0 * 1200 * 1.5 * 30;
    return rate;
}

std::string mib(double bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f MiB", bytes / kMiB);
    return buf;
}
}  // namespace

DiskBudget disk_budget(const Config& config) {
    DiskBudget b;
    double total = kLogBytesPerS;  // supervisor.log, events.csv, clocks.csv, session.json
    std::string parts;
    auto add = [&](const std::string& what, double rate) {
        total += rate;
        parts += (parts.empty() ? "" : ", ") + what + " " + mib(rate) + "/s";
    };
    for (const auto& m : config.modules) {
        if (!m.enabled) continue;
        double rate = kLogBytesPerS;
        if (m.type == "camera") rate += camera_rate(m.settings);
        if (m.type == "eyetracker") rate += eyetracker_rate(m.settings);
        add(m.type + " " + m.name, rate);
    }
    if (config.pico) add("pico", 20e3);
    b.bytes_per_s = static_cast<int64_t>(total);
    const SupervisorSettings& s = config.supervisor;
    b.check_interval_s = static_cast<double>(s.disk_check_interval_ms) / 1000;
    b.required_reserve_bytes = static_cast<int64_t>(total * b.check_interval_s) + 1;
    b.breakdown = parts;
    return b;
}

}  // namespace pilogger

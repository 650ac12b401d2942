#include "disk_budget.hpp"

#include <cstdio>

namespace pilogger {

namespace {
constexpr double kMiB = 1024.0 * 1024.0;
// The supervisor reads at most this much of a module's stderr per second (module_process.cpp).
constexpr double kLogBytesPerS = 128.0 * 1024 * 10;

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
        add(m.type + " " + m.name, kLogBytesPerS + m.disk_bytes_per_s);
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

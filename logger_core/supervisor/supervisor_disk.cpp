// Disk space: free space sampled off the loop, the rate it falls while a trial records, and the
// trial stopped while the files can still close above the reserve.
#include "supervisor.hpp"

#include "clock.hpp"

#include <sys/statvfs.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace pilogger {

namespace {
// What modules typically take to close their files after a stop instant (the disk-low stop plans for it).
constexpr double kFileCloseAllowanceS = 1.0;
}  // namespace

void Supervisor::check_disk() {
    if (disk_check_in_flight_) return;
    disk_check_in_flight_ = true;
    std::string path = session_ ? session_->dir() : config_.data_dir;
    auto free_bytes = std::make_shared<int64_t>(-1);
    requests_.work(
        [path, free_bytes]() -> std::string {
            // The data folder may not exist yet: measure the nearest folder that does.
            std::string p = path;
            struct statvfs st {};
            while (!p.empty() && statvfs(p.c_str(), &st) != 0) {
                size_t slash = p.find_last_of('/');
                p = slash == std::string::npos || slash == 0 ? (slash == 0 ? "/" : ".") : p.substr(0, slash);
                if (p == "/" || p == ".") {
                    if (statvfs(p.c_str(), &st) != 0) return "statvfs failed";
                    break;
                }
            }
            *free_bytes = static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
            return {};
        },
        [this, free_bytes](const std::string&) {
            disk_check_in_flight_ = false;
            const int64_t now = mono_ns();
            const int64_t previous = disk_free_bytes_;
            disk_free_bytes_ = *free_bytes;
            // Measured while a trial records; between trials the last trial's rate stands, so
            // a new one is not started into space it would fill before it could stop.
            if (trial_ && previous >= 0 && disk_free_bytes_ >= 0 && disk_sampled_mono_ns_ != 0) {
                double dt = static_cast<double>(now - disk_sampled_mono_ns_) / 1e9;
                double rate = dt > 0 ? std::max(0.0, static_cast<double>(previous - disk_free_bytes_) / dt) : 0;
                // The recent peak, forgotten over about 5 s: a burst is planned for, not averaged away.
                disk_write_rate_ = std::max(rate, disk_write_rate_ * std::exp(-dt / 5.0));
            }
            disk_sampled_mono_ns_ = now;
            if (!trial_) return;
            std::string why = disk_too_full();
            if (why.empty()) return;
            log("error", "stopping the trial: " + why);
            record_event("disk_low", "", why);
            stop_trial([](const CommandResult&) {});
        });
}

std::string Supervisor::disk_too_full() const {
    if (disk_free_bytes_ < 0) return {};
    // Room is what is left above the reserve once a trial stopped now has closed its files.
    const int64_t reserve = config_.disk_reserve_mb * 1024 * 1024;
    const double stop_takes_s =
        static_cast<double>(config_.supervisor.disk_check_interval_ms + config_.supervisor.trial_start_delay_ms) / 1000 +
        kFileCloseAllowanceS;
    const int64_t threshold = reserve + static_cast<int64_t>(disk_write_rate_ * stop_takes_s);
    if (disk_free_bytes_ >= threshold) return {};
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.1f", disk_write_rate_ / (1024 * 1024));
    return "only " + std::to_string(disk_free_bytes_ / (1024 * 1024)) + " MiB free in " +
           (session_ ? session_->dir() : config_.data_dir) + "; at the " + rate + " MiB/s being written, the reserve of " +
           std::to_string(config_.disk_reserve_mb) + " MiB (disk_reserve_mb) would be reached before the files are closed";
}

}  // namespace pilogger

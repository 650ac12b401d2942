// How fast a config can fill the disk, and so how much reserve it needs. The supervisor checks
// free space every disk_check_interval_ms and stops a trial early enough, at the rate it
// measures, that the files close above the reserve; the reserve itself must hold at least what
// the config can write in one check interval, so a burst between two checks never reaches it.
#pragma once

#include "config.hpp"

#include <cstdint>
#include <string>

namespace pilogger {

struct DiskBudget {
    int64_t bytes_per_s = 0;     // the most the config's modules and logs can write per second
    double check_interval_s = 0;
    int64_t required_reserve_bytes = 0;  // bytes_per_s over one check interval
    std::string breakdown;       // "camera cam0 71.3 MiB/s, logs 3.8 MiB/s, ..."
};

// Upper bounds, not typical rates: a camera's raw YUV 4:2:0 frame rate (an H.264 encoder writes
// less than that), a Neon scene stream at 32 Mbit/s, every module's log at the supervisor's
// stderr read budget.
DiskBudget disk_budget(const Config& config);


}  // namespace pilogger

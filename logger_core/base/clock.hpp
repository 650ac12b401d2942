// Host clocks. mono_ns (CLOCK_MONOTONIC, what uv_hrtime returns) is the one time base of every
// row; realtime and boottime are recorded beside it so other clocks can be mapped onto it.
#pragma once

#include <cstdint>
#include <string>

namespace pilogger {

int64_t mono_ns();
int64_t realtime_ns();
int64_t boottime_ns();

// One reading of the three clocks, taken back to back. mono_ns is the midpoint of two
// monotonic reads around the others, so a realtime/boottime value maps to it within
// half of uncertainty_ns.
struct ClockTriple {
    int64_t realtime_ns;
    int64_t mono_ns;
    int64_t boottime_ns;
    int64_t uncertainty_ns;
};
ClockTriple read_clock_triple();

// "2026-11-23T08:37:34.123456Z"
std::string format_utc(int64_t realtime_ns);
// "20261123T083734Z", for folder names.
std::string format_utc_compact(int64_t realtime_ns);
std::string wall_time_utc_now();

}  // namespace pilogger

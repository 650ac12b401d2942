#include "clock.hpp"

#include <ctime>

namespace pilogger {

namespace {
int64_t read(clockid_t id) {
    timespec ts{};
    clock_gettime(id, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string format(int64_t realtime_ns, const char* pattern, bool with_micros) {
    time_t seconds = static_cast<time_t>(realtime_ns / 1'000'000'000);
    int64_t micros = (realtime_ns % 1'000'000'000) / 1000;
    if (micros < 0) {
        micros += 1'000'000;
        --seconds;
    }
    tm utc{};
    gmtime_r(&seconds, &utc);
    char buf[64];
    size_t n = strftime(buf, sizeof buf, pattern, &utc);
    std::string out(buf, n);
    if (with_micros) {
        char frac[16];
        snprintf(frac, sizeof frac, ".%06lldZ", static_cast<long long>(micros));
        out += frac;
    }
    return out;
}
}  // namespace

int64_t mono_ns() { return read(CLOCK_MONOTONIC); }
int64_t realtime_ns() { return read(CLOCK_REALTIME); }
int64_t boottime_ns() { return read(CLOCK_BOOTTIME); }

ClockTriple read_clock_triple() {
    int64_t before = read(CLOCK_MONOTONIC);
    int64_t real = read(CLOCK_REALTIME);
    int64_t boot = read(CLOCK_BOOTTIME);
    int64_t after = read(CLOCK_MONOTONIC);
    return ClockTriple{real, before + (after - before) / 2, boot, after - before};
}

std::string format_utc(int64_t ns) { return format(ns, "%Y-%m-%dT%H:%M:%S", true); }
std::string format_utc_compact(int64_t ns) { return format(ns, "%Y%m%dT%H%M%SZ", false); }
std::string wall_time_utc_now() { return format_utc(realtime_ns()); }

}  // namespace pilogger

// How the parts of the Pico W link tell the supervisor what happened: log lines, and rows of
// events.csv (module "pico"). Every part holds a PicoReporter over the same callbacks.
#pragma once

#include "clock.hpp"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace pilogger {

struct PicoCallbacks {
    std::function<void(std::string_view level, const std::string& message)> log;
    // A row of events.csv, module "pico".
    std::function<void(std::string_view event, const std::string& detail, int64_t at_mono_ns)> event;
};

class PicoReporter {
public:
    explicit PicoReporter(PicoCallbacks callbacks) : callbacks_(std::move(callbacks)) {}

    void log(std::string_view level, const std::string& message) const {
        if (callbacks_.log) callbacks_.log(level, message);
    }
    void event(std::string_view name, const std::string& detail, std::optional<int64_t> at = std::nullopt) const {
        if (callbacks_.event) callbacks_.event(name, detail, at.value_or(mono_ns()));
    }

private:
    PicoCallbacks callbacks_;
};

inline std::string errno_text(int err) { return std::strerror(err); }

// v with this many decimals, as the log lines, events and emulator arguments show numbers.
inline std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

}  // namespace pilogger

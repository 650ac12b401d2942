// The Pico clock fitted to CLOCK_MONOTONIC: a burst of PINGs every ping_interval_ms, the
// exchange with the shortest round trip kept (unless implausibly far off the fit), every exchange
// a row of pico/sync.csv.
#pragma once

#include "clock_fit.hpp"
#include "pico_config.hpp"
#include "pico_files.hpp"
#include "pico_report.hpp"
#include "pico_serial.hpp"
#include "psync.hpp"
#include "uv.hpp"

#include <functional>
#include <string>
#include <vector>

namespace pilogger {

class PicoClockSync {
public:
    // kept: a burst's exchange went into the fit.
    PicoClockSync(uv::Loop& loop, const PicoConfig& config, PicoSerial& serial, PicoFiles& files, PicoReporter report,
                  std::function<void()> kept);
    PicoClockSync(const PicoClockSync&) = delete;
    PicoClockSync& operator=(const PicoClockSync&) = delete;

    // Bursts from now on (the first at once), their rows in this segment and boot.
    void start(int segment, const std::string& boot);
    // No burst in flight and none to come (the port closed, the board at its prompt).
    void stop();
    // A new segment: the fit starts over from nothing.
    void reset();
    // A PONG; false when no PING of the current burst waits for it.
    bool on_pong(const psync::Line& line, int64_t t4_ns);

    const ClockFit& fit() const { return fit_; }
    double last_rtt_us() const { return last_rtt_us_; }
    uint64_t exchanges() const { return exchanges_; }
    uint64_t pongs_missing() const { return pongs_missing_; }

private:
    struct Ping {
        std::string nonce;
        bool sent = false;
        bool answered = false;
        SyncExchange exchange;
    };
    struct Burst {
        uint64_t id = 0;
        bool active = false;
        size_t next = 0;
        std::vector<Ping> pings;
    };

    void begin_burst();
    void send_next_ping();
    void finish_burst();

    const PicoConfig& config_;
    PicoSerial& serial_;
    PicoFiles& files_;
    PicoReporter report_;
    std::function<void()> kept_;
    int segment_ = 0;
    std::string boot_;
    ClockFit fit_;
    Burst burst_;
    uint64_t next_nonce_ = 1;
    double last_rtt_us_ = -1;
    int implausible_in_row_ = 0;
    uint64_t exchanges_ = 0;
    uint64_t pongs_missing_ = 0;
    uv::Timer burst_timer_;
    uv::Timer ping_timer_;
    uv::Timer burst_done_timer_;
};

}  // namespace pilogger

// Fitting the Pico's microsecond clock to the host's CLOCK_MONOTONIC.
//
// Each PING/PONG exchange gives the Pico-minus-host offset at one host instant, with an error
// bounded by half its round trip. Per burst the lowest-rtt exchange is kept; over a sliding
// window of kept exchanges the fit estimates, robustly (Theil-Sen, then least squares over the
// inliers weighted by how close each round trip came to the window's shortest),
//     offset_us(h) = pico_us - h / 1000 = c + e * (h - ref) / 1000
// i.e. pico_us = a + b * host_us with b = 1 + e; drift_ppm = e * 1e6.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

namespace pilogger {

// One PING/PONG: host times in CLOCK_MONOTONIC ns, Pico times in its us clock.
struct SyncExchange {
    int64_t host_t1_ns = 0;   // just before the PING was written
    uint64_t pico_rx_us = 0;  // when the Pico read the PING
    uint64_t pico_tx_us = 0;  // when the Pico wrote the PONG
    int64_t host_t4_ns = 0;   // when the PONG was read

    // Link delay both ways, without the Pico's own processing time.
    double rtt_us() const;
    // Pico minus host clock (us) at host_mid_ns(), assuming symmetric delays; off by at most
    // rtt/2.
    double offset_us() const;
    int64_t host_mid_ns() const { return host_t1_ns + (host_t4_ns - host_t1_ns) / 2; }
};

struct ClockFitOptions {
    int64_t window_ns = 60'000'000'000;  // points older than this before the newest are dropped
    size_t max_points = 400;             // bounds the O(n^2) Theil-Sen step
    // Drift is estimated only once the points span this long; before that it is taken as 0.
    int64_t min_drift_span_ns = 2'000'000'000;
    // Weight of a point: 1 / (rtt_floor_us^2 + (excess / 2)^2), where excess is its round trip
    // above the window's shortest. Half the excess bounds the extra error a slow, lopsided
    // exchange can carry; the floor stops the single fastest point from taking all the weight.
    double rtt_floor_us = 25;
};

class ClockFit {
public:
    explicit ClockFit(ClockFitOptions options = {}) : options_(options) {}

    // Adds one kept exchange (its midpoint, offset and round trip) and refits.
    void add(int64_t host_ns, double offset_us, double rtt_us = 0);
    void reset();

    bool valid() const { return !points_.empty(); }
    const ClockFitOptions& options() const { return options_; }
    size_t points() const { return points_.size(); }
    int64_t newest_host_ns() const { return points_.empty() ? 0 : points_.back().host_ns; }
    // Host span of the points in the window.
    int64_t span_ns() const { return points_.empty() ? 0 : points_.back().host_ns - points_.front().host_ns; }

    // The fitted Pico-minus-host offset (us) at a host instant.
    double offset_us_at(int64_t host_ns) const;
    // Pico clock (us) at a host instant, and back.
    double pico_us_at(int64_t host_ns) const;
    int64_t host_ns_at(uint64_t pico_us) const;
    double drift_ppm() const { return drift_ppm_; }
    // Robust spread (1.4826 * median absolute deviation) of the points around the fit, in us.
    double residual_us() const { return residual_us_; }

private:
    struct Point {
        int64_t host_ns;
        double offset_us;
        double rtt_us;
    };
    void refit();

    ClockFitOptions options_;
    std::deque<Point> points_;
    int64_t ref_ns_ = 0;       // host instant of the intercept (the newest point)
    double offset_c_us_ = 0;   // offset at ref_ns_
    double drift_ppm_ = 0;
    double residual_us_ = 0;
};

}  // namespace pilogger

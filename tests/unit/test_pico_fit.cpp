// The Pico clock fit (logger_core/base/clock_fit.hpp) on synthetic exchanges of known offset and drift.
#include "clock_fit.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

using namespace pilogger;

namespace {

// A Pico clock: pico_us = p0_us + (host_ns - h0_ns) / 1000 * (1 + drift_ppm / 1e6).
struct TrueClock {
    int64_t h0_ns;
    double p0_us;
    double drift_ppm;
    double pico_us(int64_t host_ns) const {
        return p0_us + static_cast<double>(host_ns - h0_ns) / 1e3 * (1 + drift_ppm * 1e-6);
    }
    double offset_us(int64_t host_ns) const {
        return pico_us(host_ns) - static_cast<double>(host_ns) / 1e3;
    }
};

// One exchange with one-way delays up_us and down_us and 30 us in the Pico.
SyncExchange exchange(const TrueClock& c, int64_t t1_ns, double up_us, double down_us) {
    SyncExchange x;
    x.host_t1_ns = t1_ns;
    int64_t rx_host = t1_ns + static_cast<int64_t>(up_us * 1000);
    int64_t tx_host = rx_host + 30'000;
    x.pico_rx_us = static_cast<uint64_t>(std::floor(c.pico_us(rx_host)));
    x.pico_tx_us = static_cast<uint64_t>(std::floor(c.pico_us(tx_host)));
    x.host_t4_ns = tx_host + static_cast<int64_t>(down_us * 1000);
    return x;
}

constexpr int64_t kHost0 = 123'456'789'000'000;  // ~34 hours of host uptime, in ns

}  // namespace

TEST_CASE("pico fit: one exchange gives rtt and offset; symmetric delays give the true offset") {
    TrueClock c{kHost0, 5'000'000, 0};
    SyncExchange x = exchange(c, kHost0 + 1'000'000'000, 400, 400);
    CHECK(x.rtt_us() == doctest::Approx(800).epsilon(0.002));
    CHECK(std::fabs(x.offset_us() - c.offset_us(x.host_mid_ns())) < 1.5);
    // An asymmetric path shifts the estimate by half the difference, never more than rtt/2.
    SyncExchange y = exchange(c, kHost0 + 2'000'000'000, 100, 900);
    double err = y.offset_us() - c.offset_us(y.host_mid_ns());
    CHECK(err == doctest::Approx(-400).epsilon(0.01));
    CHECK(std::fabs(err) <= y.rtt_us() / 2 + 1);
}

TEST_CASE("pico fit: known offset and drift recovered from noisy exchanges") {
    for (double drift : {-80.0, 0.0, 40.0, 150.0}) {
        CAPTURE(drift);
        TrueClock c{kHost0, 987'654'321, drift};
        ClockFit fit;
        std::mt19937 rng(42);
        std::normal_distribution<double> noise(0, 30);
        for (int k = 0; k < 90; ++k) {
            int64_t h = kHost0 + k * 1'000'000'000LL + (k * 7919 % 1000) * 100'000;
            fit.add(h, c.offset_us(h) + noise(rng));
        }
        // 60 s window: the first 30 points have slid out.
        CHECK(fit.points() >= 59);
        CHECK(fit.points() <= 61);
        CHECK(std::fabs(fit.drift_ppm() - drift) < 1.0);
        int64_t last = fit.newest_host_ns();
        CHECK(std::fabs(fit.pico_us_at(last) - c.pico_us(last)) < 20);
        CHECK(fit.residual_us() == doctest::Approx(30).epsilon(0.35));
        // Pico -> host is the inverse of host -> Pico.
        for (int64_t h : std::vector<int64_t>{last, last - 30'000'000'000, last + 2'000'000'000}) {
            auto p = static_cast<uint64_t>(std::llround(fit.pico_us_at(h)));
            CHECK(std::llabs(fit.host_ns_at(p) - h) < 1000);
            // And it maps the true clock back to the right host instant.
            auto truth = static_cast<uint64_t>(std::llround(c.pico_us(h)));
            CHECK(std::llabs(fit.host_ns_at(truth) - h) < 25'000);
        }
    }
}

TEST_CASE("pico fit: exchanges delayed on one side do not pull the line") {
    TrueClock c{kHost0, 42'000'000, 25};
    ClockFit fit;
    std::mt19937 rng(7);
    std::normal_distribution<double> noise(0, 20);
    std::uniform_real_distribution<double> u(0, 1);
    for (int k = 0; k < 60; ++k) {
        int64_t h = kHost0 + k * 1'000'000'000LL;
        double y = c.offset_us(h) + noise(rng);
        if (u(rng) < 0.2) y += (u(rng) < 0.5 ? 1 : -1) * (2000 + 5000 * u(rng));  // a GC pause
        fit.add(h, y);
    }
    CHECK(std::fabs(fit.drift_ppm() - 25) < 1.5);
    CHECK(std::fabs(fit.offset_us_at(fit.newest_host_ns()) - c.offset_us(fit.newest_host_ns())) < 20);
    CHECK(fit.residual_us() < 40);
}

TEST_CASE("pico fit: few points or a short span give an offset without drift") {
    TrueClock c{kHost0, 1'000, 40};
    ClockFit fit;
    CHECK_FALSE(fit.valid());
    fit.add(kHost0, c.offset_us(kHost0));
    CHECK(fit.valid());
    CHECK(fit.drift_ppm() == 0);
    CHECK(fit.offset_us_at(kHost0) == doctest::Approx(c.offset_us(kHost0)));
    fit.add(kHost0 + 500'000'000, c.offset_us(kHost0 + 500'000'000));
    fit.add(kHost0 + 1'000'000'000, c.offset_us(kHost0 + 1'000'000'000));
    CHECK(fit.drift_ppm() == 0);  // 1 s span: below min_drift_span_ns
    fit.add(kHost0 + 2'000'000'000, c.offset_us(kHost0 + 2'000'000'000));
    CHECK(fit.drift_ppm() == doctest::Approx(40).epsilon(0.001));
    fit.reset();
    CHECK_FALSE(fit.valid());
    CHECK(fit.points() == 0);
}

TEST_CASE("pico fit: the window follows a drift that changes") {
    ClockFitOptions options;
    options.window_ns = 30'000'000'000;
    ClockFit fit(options);
    double offset = 0;
    int64_t h = kHost0;
    for (int k = 0; k < 120; ++k) {
        double drift = k < 60 ? 10 : 30;  // the Pico warmed up
        h += 1'000'000'000;
        offset += drift;                  // us per second
        fit.add(h, offset);
    }
    CHECK(fit.drift_ppm() == doctest::Approx(30).epsilon(0.001));
    CHECK(fit.span_ns() == 30'000'000'000);
}

TEST_CASE("pico fit: exchanges with long round trips weigh less") {
    // Half the exchanges waited 200-600 us longer, and the longer one took the more lopsided it
    // came back (by a tenth of the extra round trip): a bias spread through the noise band, so no
    // outlier test catches it.
    TrueClock c{kHost0, 10'000'000, -30};
    ClockFit weighted;
    ClockFit plain;
    std::mt19937 rng(3);
    std::normal_distribution<double> noise(0, 3);
    std::uniform_real_distribution<double> fast(0, 30);
    std::uniform_real_distribution<double> slow(200, 600);
    for (int k = 0; k < 60; ++k) {
        int64_t h = kHost0 + k * 1'000'000'000LL;
        double excess = k % 2 == 0 ? fast(rng) : slow(rng);
        double y = c.offset_us(h) + noise(rng) + excess / 10;
        weighted.add(h, y, 700 + excess);
        plain.add(h, y);
    }
    int64_t last = weighted.newest_host_ns();
    double weighted_err = std::fabs(weighted.offset_us_at(last) - c.offset_us(last));
    double plain_err = std::fabs(plain.offset_us_at(last) - c.offset_us(last));
    CHECK(weighted_err < 6);
    CHECK(plain_err > 12);  // equal weights: the median exchange's bias stays in
    CHECK(std::fabs(weighted.drift_ppm() + 30) < 1);
}

TEST_CASE("pico fit: min-rtt bursts over a jittery link stay well inside 200 us") {
    // 0.3 ms +- 0.2 ms per direction, 8 PINGs per burst, one burst a second, +40 ppm.
    TrueClock c{kHost0, 3'000'000, 40};
    ClockFit fit;
    std::mt19937 rng(1);
    std::uniform_real_distribution<double> delay(100, 500);
    double worst = 0;
    for (int burst = 0; burst < 120; ++burst) {
        int64_t t = kHost0 + burst * 1'000'000'000LL;
        SyncExchange best;
        double best_rtt = 1e18;
        for (int i = 0; i < 8; ++i) {
            SyncExchange x = exchange(c, t + i * 5'000'000, delay(rng), delay(rng));
            if (x.rtt_us() < best_rtt) {
                best_rtt = x.rtt_us();
                best = x;
            }
        }
        fit.add(best.host_mid_ns(), best.offset_us(), best.rtt_us());
        if (burst >= 10) {
            // What an LED line a moment later would be mapped to.
            int64_t h = t + 500'000'000;
            worst = std::max(worst, std::fabs(fit.pico_us_at(h) - c.pico_us(h)));
        }
    }
    CHECK(worst < 200);
    CHECK(std::fabs(fit.drift_ppm() - 40) < 2);
}

#include "pico_clock_sync.hpp"

#include <cmath>

namespace pilogger {

namespace {
constexpr uint64_t kBurstWaitMs = 250;
// An exchange this far off a fit of the same boot means the clock restarted unnoticed.
constexpr double kImplausibleOffsetUs = 50'000;
constexpr int kImplausibleInRow = 3;
}  // namespace

PicoClockSync::PicoClockSync(uv::Loop& loop, const PicoConfig& config, PicoSerial& serial, PicoFiles& files,
                             PicoReporter report, std::function<void()> kept)
    : config_(config),
      serial_(serial),
      files_(files),
      report_(std::move(report)),
      kept_(std::move(kept)),
      fit_(ClockFitOptions{config.fit_window_s * 1'000'000'000, 400, 2'000'000'000}),
      burst_timer_(loop),
      ping_timer_(loop),
      burst_done_timer_(loop) {}

void PicoClockSync::start(int segment, const std::string& boot) {
    segment_ = segment;
    boot_ = boot;
    burst_timer_.start(0, static_cast<uint64_t>(config_.ping_interval_ms), [this] { begin_burst(); });
}

void PicoClockSync::stop() {
    burst_.active = false;
    burst_timer_.stop();
    ping_timer_.stop();
    burst_done_timer_.stop();
}

void PicoClockSync::reset() {
    fit_.reset();
    implausible_in_row_ = 0;
    burst_.active = false;
}

void PicoClockSync::begin_burst() {
    if (burst_.active) finish_burst();
    burst_ = Burst{};
    burst_.id = next_nonce_;
    burst_.active = true;
    burst_.pings.resize(static_cast<size_t>(config_.ping_burst));
    for (Ping& p : burst_.pings) p.nonce = std::to_string(next_nonce_++);
    send_next_ping();
    if (burst_.next < burst_.pings.size()) {
        auto spacing = static_cast<uint64_t>(config_.ping_spacing_ms);
        ping_timer_.start(spacing, spacing, [this] { send_next_ping(); });
    }
}

void PicoClockSync::send_next_ping() {
    if (!burst_.active || !serial_.is_open() || burst_.next >= burst_.pings.size()) {
        ping_timer_.stop();
        return;
    }
    size_t i = burst_.next++;
    serial_.send(psync::ping(burst_.pings[i].nonce), [this, id = burst_.id, i] {
        if (!burst_.active || burst_.id != id) return;  // a PING of an earlier burst
        Ping& p = burst_.pings[i];
        p.sent = true;
        p.exchange.host_t1_ns = mono_ns();  // t1: right before the write
    });
    if (burst_.next == burst_.pings.size()) {
        ping_timer_.stop();
        burst_done_timer_.start(kBurstWaitMs, 0, [this] { finish_burst(); });
    }
}

bool PicoClockSync::on_pong(const psync::Line& line, int64_t t4_ns) {
    bool matched = false;
    if (burst_.active) {
        for (Ping& p : burst_.pings) {
            if (p.sent && !p.answered && p.nonce == line.nonce) {
                p.answered = true;
                p.exchange.pico_rx_us = line.t_rx_us;
                p.exchange.pico_tx_us = line.t_tx_us;
                p.exchange.host_t4_ns = t4_ns;
                matched = true;
                break;
            }
        }
    }
    if (!matched) return false;
    if (burst_.next < burst_.pings.size()) return true;
    for (const Ping& p : burst_.pings) {
        if (!p.answered) return true;
    }
    finish_burst();
    return true;
}

void PicoClockSync::finish_burst() {
    if (!burst_.active) return;
    burst_.active = false;
    ping_timer_.stop();
    burst_done_timer_.stop();

    int best = -1;
    double best_rtt = 0;
    for (size_t i = 0; i < burst_.pings.size(); ++i) {
        const Ping& p = burst_.pings[i];
        if (p.sent && !p.answered) ++pongs_missing_;
        if (!p.answered) continue;
        double rtt = p.exchange.rtt_us();
        // A negative round trip beyond rounding cannot happen on one clock: skip it.
        if (rtt < -10) continue;
        if (best < 0 || rtt < best_rtt) {
            best = static_cast<int>(i);
            best_rtt = rtt;
        }
    }
    bool keep = best >= 0;
    // From the first point on: two well-formed lies would otherwise outvote it (the median of three).
    if (keep && fit_.valid()) {
        const SyncExchange& x = burst_.pings[static_cast<size_t>(best)].exchange;
        double jump = x.offset_us() - fit_.offset_us_at(x.host_mid_ns());
        if (std::fabs(jump) > kImplausibleOffsetUs) {
            keep = false;
            ++implausible_in_row_;
            report_.log("warning", "Pico W clock is " + fixed(jump / 1000, 1) +
                                       " ms off its fit; asking for HELLO to check for a restart");
            serial_.send(psync::hello_query());
            if (implausible_in_row_ >= kImplausibleInRow) {
                // Same boot, yet the clock moved: trust the new exchanges.
                report_.log("warning", "Pico W clock moved without a restart; its fit starts over");
                report_.event("pico_clock_jump", "offset changed by " + fixed(jump, 0) + " us");
                fit_.reset();
                implausible_in_row_ = 0;
                keep = true;
            }
        } else {
            implausible_in_row_ = 0;
        }
    }
    if (keep) {
        const SyncExchange& x = burst_.pings[static_cast<size_t>(best)].exchange;
        fit_.add(x.host_mid_ns(), x.offset_us(), best_rtt);
        last_rtt_us_ = best_rtt;
        kept_();
    }
    for (size_t i = 0; i < burst_.pings.size(); ++i) {
        const Ping& p = burst_.pings[i];
        if (!p.answered) continue;
        ++exchanges_;
        const SyncExchange& x = p.exchange;
        CsvRow row;
        row.add(x.host_t1_ns).add(x.pico_rx_us).add(x.pico_tx_us).add(x.host_t4_ns).add(x.rtt_us(), 3);
        row.add(keep && static_cast<int>(i) == best ? 1 : 0);
        if (fit_.valid()) {
            row.add(fit_.offset_us_at(x.host_t4_ns), 3).add(fit_.drift_ppm(), 4).add(fit_.residual_us(), 3);
        } else {
            row.empty().empty().empty();
        }
        row.add(static_cast<uint64_t>(fit_.points())).add(segment_).add(boot_);
        files_.write_sync(row);
    }
}

}  // namespace pilogger

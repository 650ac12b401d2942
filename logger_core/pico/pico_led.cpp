#include "pico_led.hpp"

#include <algorithm>
#include <cmath>

namespace pilogger {

namespace {
// LED rows of a segment wait for this many kept exchanges (bursts, ~1 s apart) before mapping.
constexpr size_t kSettledFitPoints = 3;
}  // namespace

PicoLed::PicoLed(uv::Loop& loop, const PicoConfig& config, const ClockFit& fit, PicoFiles& files, PicoReporter report,
                 Callbacks callbacks)
    : config_(config),
      fit_(fit),
      files_(files),
      report_(std::move(report)),
      callbacks_(std::move(callbacks)),
      on_timer_(loop),
      off_timer_(loop),
      close_wait_timer_(loop) {}

std::string PicoLed::next_id(const std::string& prefix) { return prefix + std::to_string(next_cmd_++); }

void PicoLed::apply_state() {
    if (!callbacks_.ready()) return;
    if (wanted_) {
        const std::string id = "t" + std::to_string(trial_) + "on";
        callbacks_.send_command(id, psync::led(id, config_.led_channel, 1));
    } else {
        const std::string id = next_id("idle");
        callbacks_.send_command(id, psync::led(id, config_.led_channel, 0));
    }
}

void PicoLed::stop() {
    on_timer_.stop();
    off_timer_.stop();
}

void PicoLed::trial_started(int trial, int64_t start_at_mono_ns) {
    trial_ = trial;
    wanted_ = true;
    off_timer_.stop();
    if (!callbacks_.ready()) {
        report_.log("warning", "Pico W not connected: trial " + std::to_string(trial) +
                                   " starts without its sync code (the LED comes on when the Pico is back)");
        report_.event("pico_no_code", "trial " + std::to_string(trial) + ": the Pico W is not connected",
                      start_at_mono_ns);
        return;
    }
    send_trial_code(trial, start_at_mono_ns);
}

void PicoLed::send_trial_code(int trial, int64_t start_at_mono_ns) {
    const std::string n = std::to_string(trial);
    const std::string bits = psync::trial_code_hex(trial);
    std::optional<uint64_t> at;
    if (fit_.valid()) {
        double p = fit_.pico_us_at(start_at_mono_ns);
        if (p > 0) at = static_cast<uint64_t>(std::llround(p));
    }
    if (!at) {
        report_.log("warning", "Pico W: no clock fit yet, so trial " + n +
                                   "'s code starts when the Pico reads it rather than at the start instant");
    }
    callbacks_.send_command("t" + n + "code",
                            psync::code("t" + n + "code", config_.led_channel, bits, config_.code_bit_ms, at));
    report_.event("pico_code",
                  "trial=" + n + " bits=" + bits + " bit_ms=" + std::to_string(config_.code_bit_ms) +
                      (at ? " at_pico_us=" + std::to_string(*at) : std::string(" at=now")),
                  start_at_mono_ns);
    // The LED then stays on for the trial (a new command would cut the code short).
    int64_t code_end_ns = start_at_mono_ns +
                          static_cast<int64_t>(psync::kTrialCodeBits) * config_.code_bit_ms * 1'000'000 + 20'000'000;
    int64_t wait_ms = std::max<int64_t>(0, (code_end_ns - mono_ns()) / 1'000'000);
    on_timer_.start(static_cast<uint64_t>(wait_ms), 0, [this, trial] {
        if (trial_ == trial && wanted_ && callbacks_.ready()) {
            const std::string id = "t" + std::to_string(trial) + "on";
            callbacks_.send_command(id, psync::led(id, config_.led_channel, 1));
        }
    });
}

void PicoLed::trial_stopped(int trial, int64_t stop_at_mono_ns) {
    wanted_ = false;
    trial_ = 0;
    on_timer_.stop();
    off_due_ns_ = stop_at_mono_ns;
    if (!callbacks_.ready()) return;  // switched off when the Pico is back
    const std::string id = "t" + std::to_string(trial) + "off";
    if (fit_.valid()) {
        // CODE with four 0 bits: off exactly at the stop instant, and the pattern ends there.
        double p = fit_.pico_us_at(stop_at_mono_ns);
        callbacks_.send_command(
            id, psync::code(id, config_.led_channel, "0", 1, static_cast<uint64_t>(std::llround(std::max(p, 0.0)))));
        return;
    }
    int64_t wait_ms = std::max<int64_t>(0, (stop_at_mono_ns - mono_ns()) / 1'000'000);
    off_timer_.start(static_cast<uint64_t>(wait_ms), 0, [this, id] {
        if (!wanted_ && callbacks_.ready()) callbacks_.send_command(id, psync::led(id, config_.led_channel, 0));
    });
}

void PicoLed::reported(const psync::Line& line, int segment) {
    if (line.channel == config_.led_channel) on_ = line.level != 0;
    if (fit_.points() < kSettledFitPoints) {
        // Mapped once the segment's fit rests on a few bursts: one slow exchange on a loaded host
        // would otherwise put the first edges of a segment (a trial's code) milliseconds off.
        if (waiting_.size() < 1000) waiting_.push_back(Waiting{line, segment});
        return;
    }
    CsvRow row;
    row.add(static_cast<uint64_t>(line.seq)).add(line.t_us).add(fit_.host_ns_at(line.t_us));
    row.add(line.channel).add(line.level).add(line.cmd_id).add(segment);
    files_.write_led(row);
}

void PicoLed::heartbeat(uint32_t led_mask) { on_ = ((led_mask >> config_.led_channel) & 1u) != 0; }

void PicoLed::fit_grew() {
    if (fit_.points() >= kSettledFitPoints && !waiting_.empty()) write_waiting();
}

void PicoLed::segment_ended() {
    write_waiting();
    on_.reset();
}

void PicoLed::write_waiting() {
    std::vector<Waiting> waiting = std::move(waiting_);
    waiting_.clear();
    for (const auto& [line, segment] : waiting) {
        CsvRow row;
        row.add(static_cast<uint64_t>(line.seq)).add(line.t_us);
        if (fit_.valid()) {
            row.add(fit_.host_ns_at(line.t_us));
        } else {
            row.empty();  // the segment ended before any exchange: no mapping exists
        }
        row.add(line.channel).add(line.level).add(line.cmd_id).add(segment);
        files_.write_led(row);
    }
}

void PicoLed::after_last_edge(std::function<void()> then) {
    // The LED's last edge, at the trial's stop instant, may still be on its way: keep led.csv
    // open for it a little while.
    const int64_t wait_until = off_due_ns_ + 500'000'000;
    auto edge_pending = [this, wait_until] {
        return callbacks_.ready() && !wanted_ && on_.value_or(false) && mono_ns() < wait_until;
    };
    if (!edge_pending()) return then();
    close_wait_timer_.start(10, 10, [this, edge_pending, then] {
        if (edge_pending()) return;
        close_wait_timer_.stop();
        then();
    });
}

}  // namespace pilogger

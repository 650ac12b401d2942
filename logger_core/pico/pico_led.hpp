// The sync LED: what it should show (the trial code at a trial's start instant, on for the
// trial, off at its stop instant, off between trials), and the LED changes the Pico reports as
// rows of pico/led.csv, held back until their segment's fit has settled.
#pragma once

#include "clock_fit.hpp"
#include "pico_config.hpp"
#include "pico_files.hpp"
#include "pico_report.hpp"
#include "psync.hpp"
#include "uv.hpp"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace pilogger {

class PicoLed {
public:
    struct Callbacks {
        // The Pico is connected (its HELLO came): commands can be sent.
        std::function<bool()> ready;
        std::function<void(const std::string& cmd_id, std::string text)> send_command;
    };

    PicoLed(uv::Loop& loop, const PicoConfig& config, const ClockFit& fit, PicoFiles& files, PicoReporter report,
            Callbacks callbacks);
    PicoLed(const PicoLed&) = delete;
    PicoLed& operator=(const PicoLed&) = delete;

    // Coded flash at the trial's start instant, then the LED stays on until the stop instant.
    void trial_started(int trial, int64_t start_at_mono_ns);
    void trial_stopped(int trial, int64_t stop_at_mono_ns);
    // The Pico (re)connected or restarted: sets the LED as it should be now.
    void apply_state();
    // No more timed commands (the link stops).
    void stop();

    // An LED change the Pico reported (its time checked already), in this segment.
    void reported(const psync::Line& line, int segment);
    // A heartbeat's mask of LED channels that are on.
    void heartbeat(uint32_t led_mask);
    // The fit took an exchange: rows waiting for it are written once it has settled.
    void fit_grew();
    // The segment ends: the rows waiting are written with the fit there is, the LED's level is unknown.
    void segment_ended();
    // The session's files close: the rows waiting are written with the fit there is.
    void write_waiting();
    // then() once the last trial's off edge has come, or half a second after its stop instant.
    void after_last_edge(std::function<void()> then);

    // The LED's level as last reported (none in a new segment until its first report).
    std::optional<bool> on() const { return on_; }

private:
    struct Waiting {
        psync::Line line;
        int segment;
    };

    void send_trial_code(int trial, int64_t start_at_mono_ns);
    std::string next_id(const std::string& prefix);

    const PicoConfig& config_;
    const ClockFit& fit_;
    PicoFiles& files_;
    PicoReporter report_;
    Callbacks callbacks_;
    std::optional<bool> on_;
    // LED lines that came before their segment's fit had settled.
    std::vector<Waiting> waiting_;
    int trial_ = 0;
    bool wanted_ = false;
    uint64_t next_cmd_ = 1;
    int64_t off_due_ns_ = 0;  // the last trial's stop instant
    uv::Timer on_timer_;
    uv::Timer off_timer_;
    uv::Timer close_wait_timer_;
};

}  // namespace pilogger

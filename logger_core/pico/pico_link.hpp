// The Pico W sync link, on the supervisor's loop.
//
// Opens the Pico's USB serial port (or the emulator's pseudo-terminal) without blocking,
// speaks PSYNC/1 (psync.hpp), fits the Pico clock to CLOCK_MONOTONIC from PING bursts
// (clock_fit.hpp), drives the sync LED around trials, and writes pico/sync.csv and pico/led.csv
// while a session is open. A missing or unplugged Pico never stops a recording: the link logs
// the loss and keeps reopening the device with back-off.
//
// PicoLink is the facade the supervisor uses. It owns the parts and reconnects: PicoSerial (the
// port), PicoSession (the PSYNC conversation), PicoClockSync (the bursts and the fit), PicoLed
// (what the LED shows, led.csv rows), PicoFiles (the two files), PicoEmulator (device: emulator).
#pragma once

#include "clock_fit.hpp"
#include "ndjson.hpp"
#include "pico_clock_sync.hpp"
#include "pico_config.hpp"
#include "pico_files.hpp"
#include "pico_led.hpp"
#include "pico_report.hpp"
#include "pico_serial.hpp"
#include "pico_session.hpp"
#include "uv.hpp"

#include <functional>
#include <memory>
#include <string>

namespace pilogger {

class PicoLink {
public:
    using Callbacks = PicoCallbacks;

    PicoLink(uv::Loop& loop, PicoConfig config, Callbacks callbacks);
    ~PicoLink();
    PicoLink(const PicoLink&) = delete;
    PicoLink& operator=(const PicoLink&) = delete;

    // Opens the device (retrying in the background).
    void start();
    // Switches the LED off and closes the port; afterwards the link holds no active handle, so
    // the loop can finish.
    void stop();

    // A device at a path that comes and goes, run beside the link by its owner (the emulator,
    // for device: emulator): the link asks it where the port is instead of the config, opens
    // it when told it appeared, and shows why it failed.
    using DeviceSource = std::function<std::string(std::string* why)>;
    void use_device_source(DeviceSource source) { device_source_ = std::move(source); }
    void device_appeared();
    void device_failed(const std::string& why) { last_error_ = why; }

    // pico/sync.csv and pico/led.csv under the session folder.
    void open_session(const std::string& session_dir);
    void close_session(std::function<void()> done);

    // Coded flash at the trial's start instant, then the LED stays on until the stop instant.
    void trial_started(int trial, int64_t start_at_mono_ns);
    void trial_stopped(int trial, int64_t stop_at_mono_ns);

    json status() const;
    json session_info() const;

    bool ready() const { return session_.ready(); }
    // True for the first seconds after start() while a Pico that is there is still connecting
    // and taking its first clock samples: worth waiting for before a trial's code is sent.
    bool settling() const;
    int segment() const { return session_.segment(); }
    const ClockFit& fit() const { return clock_.fit(); }

private:
    std::string resolve_device(std::string* why) const;
    void try_open();
    void open_failed(const std::string& why);
    void hang_up(const std::string& why);
    void close_port();

    PicoConfig config_;
    PicoReporter report_;
    bool started_ = false;
    bool stopping_ = false;
    bool warned_absent_ = false;  // pico_absent is recorded once
    std::string last_error_;
    int64_t started_mono_ns_ = 0;

    // The parts, each the one owner of what it holds (declared in the order they depend on).
    PicoFiles files_;
    PicoSerial serial_;
    PicoClockSync clock_;
    PicoLed led_;
    PicoSession session_;
    DeviceSource device_source_;  // empty: the config's device
    uv::Timer tick_timer_;
};

}  // namespace pilogger

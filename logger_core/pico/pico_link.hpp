// The Pico W sync link, on the supervisor's loop.
//
// Opens the Pico's USB serial port (or the emulator's pseudo-terminal) without blocking,
// speaks PSYNC/1 (psync.hpp), fits the Pico clock to CLOCK_MONOTONIC from PING bursts
// (clock_fit.hpp), drives the sync LED around trials, and writes pico/sync.csv and pico/led.csv
// while a session is open. A missing or unplugged Pico never stops a recording: the link logs
// the loss and keeps reopening the device with back-off.
#pragma once

#include "clock_fit.hpp"
#include "ndjson.hpp"
#include "pico_clock_sync.hpp"
#include "pico_config.hpp"
#include "pico_emulator.hpp"
#include "pico_files.hpp"
#include "pico_led.hpp"
#include "pico_report.hpp"
#include "pico_serial.hpp"
#include "psync.hpp"
#include "rate_limit.hpp"
#include "uv.hpp"

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pilogger {

class PicoLink {
public:
    using Callbacks = PicoCallbacks;

    // runtime_dir: a private folder for the emulator's pseudo-terminal link.
    PicoLink(uv::Loop& loop, PicoConfig config, std::string runtime_dir, Callbacks callbacks);
    ~PicoLink();
    PicoLink(const PicoLink&) = delete;
    PicoLink& operator=(const PicoLink&) = delete;

    // Starts the emulator if configured, then opens the device (retrying in the background).
    void start();
    // Switches the LED off, closes the port and ends the emulator; afterwards the link holds
    // no active handle, so the loop can finish.
    void stop();

    // pico/sync.csv and pico/led.csv under the session folder.
    void open_session(const std::string& session_dir);
    void close_session(std::function<void()> done);

    // Coded flash at the trial's start instant, then the LED stays on until the stop instant.
    void trial_started(int trial, int64_t start_at_mono_ns);
    void trial_stopped(int trial, int64_t stop_at_mono_ns);

    json status() const;
    json session_info() const;

    bool ready() const { return state_ == State::Ready; }
    // True for the first seconds after start() while a Pico that is there is still connecting
    // and taking its first clock samples: worth waiting for before a trial's code is sent.
    bool settling() const;
    int segment() const { return segment_; }
    const ClockFit& fit() const { return clock_.fit(); }

private:
    enum class State { Closed, AwaitHello, Ready };
    struct Segment {
        int number;
        std::string boot;
        std::string fw;
        int64_t first_mono_ns;
    };

    // Port
    std::string resolve_device(std::string* why) const;
    void try_open();
    void open_failed(const std::string& why);
    void on_data(std::string_view chunk, int64_t t4_ns);
    void hang_up(const std::string& why);
    void close_port();
    // A command with an id: remembered (the last kRememberedIds), so that its ACK or ERR can be
    // told from a reply to a command never sent.
    void send_command(const std::string& cmd_id, std::string text);
    bool sent_command(std::string_view cmd_id) const;

    // Protocol
    void handle_line(std::string_view text, int64_t t4_ns);
    void handle_parsed_line(std::string_view text, int64_t t4_ns);
    // A line the link cannot use (the caller counts it), to the log and events.csv
    // (pico_bad_line) at a bounded rate.
    void report_bad(const std::string& problem, std::string_view text);
    void on_hello(const psync::Line& line, std::string_view text, int64_t t4_ns);
    void on_led(const psync::Line& line, std::string_view text, int64_t t4_ns);
    void on_heartbeat(const psync::Line& line, int64_t t4_ns);
    void new_segment(const psync::Line& hello, int64_t at_ns);
    // Line numbers went back: asks HELLO? (at most every 2 s) to tell a restart from a stray line.
    void check_boot();
    void end_back_run();
    // The Pico's clock at a host instant: from the fit, else from the segment's HELLO.
    std::optional<double> pico_clock_at(int64_t host_ns) const;
    void recover_from_prompt();
    void tick();

    uv::Loop& loop_;
    PicoConfig config_;
    PicoReporter report_;

    bool started_ = false;
    bool stopping_ = false;
    State state_ = State::Closed;
    psync::LineSplitter splitter_;
    psync::SeqTracker seq_;
    bool warned_absent_ = false;
    bool ever_connected_ = false;
    std::string last_error_;
    int64_t opened_mono_ns_ = 0;
    int64_t next_hello_ns_ = 0;
    int hello_attempts_ = 0;
    int64_t next_verify_ns_ = 0;
    int64_t last_recovery_ns_ = 0;
    int64_t last_hb_ns_ = 0;
    bool healthy_ = false;
    int64_t started_mono_ns_ = 0;

    // The Pico and its clock
    int segment_ = 0;
    std::string boot_;
    std::string fw_;
    std::string board_;
    std::string uid_;
    std::vector<Segment> segments_;
    uint64_t hello_pico_us_ = 0;  // the segment's HELLO: its t, and when it came
    int64_t hello_host_ns_ = 0;
    bool boot_check_pending_ = false;
    int64_t boot_check_due_ns_ = 0;
    // The lines that went back, followed on their own (see handle_parsed_line).
    psync::SeqTracker back_seq_;
    int back_in_order_ = 0;
    bool same_boot_confirmed_ = false;
    uint64_t last_gap_ = 0;  // lines_lost_ added by the last gap in the numbers
    std::deque<std::string> sent_ids_;

    // Counters
    uint64_t lines_lost_ = 0;
    uint64_t lines_bad_ = 0;
    // What the device makes us record (bad lines, ERR, LOG, new segments): 5 a second, burst 20.
    RateLimit report_limit_{5, 20};
    int64_t last_flood_report_ns_ = 0;
    uint64_t overlong_reported_ = 0;
    uint64_t lines_out_of_order_ = 0;
    uint64_t replies_unmatched_ = 0;
    uint64_t lines_unknown_ = 0;
    uint64_t connects_ = 0;
    uint64_t pico_errors_ = 0;
    int64_t pico_drop_ = 0;

    // The parts, each the one owner of what it holds (declared in the order they depend on).
    PicoFiles files_;
    PicoSerial serial_;
    PicoClockSync clock_;
    PicoLed led_;
    std::unique_ptr<PicoEmulator> emulator_;  // device: emulator only
    uv::Timer tick_timer_;
};

}  // namespace pilogger

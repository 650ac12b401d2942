// The Pico W sync link, on the supervisor's loop.
//
// Opens the Pico's USB serial port (or the emulator's pseudo-terminal) without blocking,
// speaks PSYNC/1 (psync.hpp), fits the Pico clock to CLOCK_MONOTONIC from PING bursts
// (clock_fit.hpp), drives the sync LED around trials, and writes pico/sync.csv and pico/led.csv
// while a session is open. A missing or unplugged Pico never stops a recording: the link logs
// the loss and keeps reopening the device with back-off.
#pragma once

#include "clock_fit.hpp"
#include "csv_writer.hpp"
#include "ndjson.hpp"
#include "pico_config.hpp"
#include "psync.hpp"
#include "rate_limit.hpp"
#include "uv.hpp"

#include <array>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pilogger {

inline const std::vector<std::string> kPicoSyncColumns = {
    "host_t1_ns", "pico_rx_us", "pico_tx_us", "host_t4_ns", "rtt_us",     "kept",
    "offset_us",  "drift_ppm",  "residual_us", "fit_points", "segment",   "boot"};
inline const std::vector<std::string> kPicoLedColumns = {"seq",   "pico_us", "mono_ns", "channel",
                                                         "level", "cmd_id",  "segment"};

// udev's name for a Pico running MicroPython; device: auto takes the first match.
inline constexpr const char* kPicoAutoGlob = "/dev/serial/by-id/usb-MicroPython_Board_in_FS_mode_*";
// The paths matching kPicoAutoGlob, sorted (device: auto opens the first).
std::vector<std::string> pico_auto_devices();

class PicoLink {
public:
    struct Callbacks {
        std::function<void(std::string_view level, const std::string& message)> log;
        // A row of events.csv, module "pico".
        std::function<void(std::string_view event, const std::string& detail, int64_t at_mono_ns)> event;
    };

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
    const ClockFit& fit() const { return fit_; }

private:
    enum class State { Closed, AwaitHello, Ready };
    struct Outgoing {
        std::string text;
        size_t written = 0;
        int ping_index = -1;  // a PING of the current burst: t1 is taken right before its write
        uint64_t burst_id = 0;
    };
    struct Ping {
        std::string nonce;
        bool sent = false;
        bool answered = false;
        SyncExchange exchange;
    };
    struct Burst {
        uint64_t id = 0;
        int segment = 0;
        bool active = false;
        size_t next = 0;
        std::vector<Ping> pings;
    };
    struct Segment {
        int number;
        std::string boot;
        std::string fw;
        int64_t first_mono_ns;
    };

    void log(std::string_view level, const std::string& message) const;
    void event(std::string_view name, const std::string& detail, std::optional<int64_t> at = std::nullopt) const;

    // Port
    std::string resolve_device(std::string* why) const;
    void try_open();
    void schedule_reopen(int64_t delay_ms);
    void open_failed(const std::string& why);
    void on_poll(int status, int events);
    void read_input(int64_t t4_ns);
    void hang_up(const std::string& why);
    void close_port();
    bool send(std::string text, int ping_index = -1);
    // A command with an id: remembered (the last kRememberedIds), so that its ACK or ERR can be
    // told from a reply to a command never sent.
    bool send_command(const std::string& cmd_id, std::string text);
    bool sent_command(std::string_view cmd_id) const;
    void flush_output();
    void update_poll();

    // Protocol
    void handle_line(std::string_view text, int64_t t4_ns);
    void handle_parsed_line(std::string_view text, int64_t t4_ns);
    // A line the link cannot use (the caller counts it), to the log and events.csv
    // (pico_bad_line) at a bounded rate.
    void report_bad(const std::string& problem, std::string_view text);
    void on_hello(const psync::Line& line, std::string_view text, int64_t t4_ns);
    void on_pong(const psync::Line& line, std::string_view text, int64_t t4_ns);
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

    // Clock sync
    void begin_burst();
    void send_next_ping();
    void finish_burst();

    // LED
    void apply_led_state();
    void send_trial_code(int trial, int64_t start_at_mono_ns);
    std::string next_id(const std::string& prefix);

    // Files
    void write_sync_row(const CsvRow& row);
    void write_led_row(const CsvRow& row);
    void write_unmapped_leds();
    void close_files(std::function<void()> done);

    // Emulator
    void spawn_emulator();
    void on_emulator_exit(int64_t status, int signal);
    std::vector<std::string> emulator_args(const std::string& executable) const;

    uv::Loop& loop_;
    PicoConfig config_;
    Callbacks callbacks_;
    std::string link_path_;  // emulator: the symlink to its pseudo-terminal
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // guards thread-pool callbacks

    bool started_ = false;
    bool stopping_ = false;
    State state_ = State::Closed;
    int fd_ = -1;
    std::string path_;  // the device opened last
    std::unique_ptr<uv::Poll> poll_;
    int poll_events_ = 0;
    std::deque<Outgoing> out_;
    psync::LineSplitter splitter_;
    psync::SeqTracker seq_;
    int64_t retry_ms_ = 500;
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
    ClockFit fit_;
    Burst burst_;
    uint64_t next_nonce_ = 1;
    double last_rtt_us_ = -1;
    int implausible_in_row_ = 0;
    std::optional<bool> led_on_;
    // LED lines that came before the first clock sample of their segment.
    std::vector<psync::Line> unmapped_leds_;
    int64_t started_mono_ns_ = 0;
    int64_t led_off_due_ns_ = 0;  // the last trial's stop instant

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
    uint64_t exchanges_ = 0;
    uint64_t pongs_missing_ = 0;
    uint64_t tx_dropped_ = 0;
    uint64_t connects_ = 0;
    uint64_t pico_errors_ = 0;
    int64_t pico_drop_ = 0;

    // Trial LED
    int trial_ = 0;
    bool led_wanted_ = false;
    uint64_t next_cmd_ = 1;

    // Session files
    int files_generation_ = 0;
    bool files_opening_ = false;
    std::unique_ptr<AsyncFileWriter> sync_csv_;
    std::unique_ptr<AsyncFileWriter> led_csv_;
    std::vector<std::unique_ptr<AsyncFileWriter>> closing_writers_;
    std::vector<std::string> pending_sync_;
    std::vector<std::string> pending_led_;

    // Emulator
    std::unique_ptr<uv::Process> emulator_;
    std::unique_ptr<uv::Stream> emulator_out_;
    std::unique_ptr<uv::Stream> emulator_err_;
    LineFramer emulator_out_lines_{4096};
    LineFramer emulator_err_lines_{4096};
    bool emulator_announced_ = false;

    uv::Timer reopen_timer_;
    uv::Timer tick_timer_;
    uv::Timer burst_timer_;
    uv::Timer ping_timer_;
    uv::Timer burst_done_timer_;
    uv::Timer led_on_timer_;
    uv::Timer led_off_timer_;
    uv::Timer emulator_timer_;
    uv::Timer close_wait_timer_;
};

}  // namespace pilogger

// The PSYNC/1 conversation with the Pico over the open port: HELLO and the boot id (a new one
// begins a clock segment), line numbers, heartbeats and health, the replies to commands, and the
// lines the link cannot use (pico_bad_line, at a bounded rate). PONGs go to the clock sync, LED
// changes to the LED.
#pragma once

#include "ndjson.hpp"
#include "pico_clock_sync.hpp"
#include "pico_config.hpp"
#include "pico_led.hpp"
#include "pico_report.hpp"
#include "pico_serial.hpp"
#include "psync.hpp"
#include "rate_limit.hpp"

#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pilogger {

class PicoSession {
public:
    // connected: the HELLO came that makes the link ready.
    PicoSession(const PicoConfig& config, PicoSerial& serial, PicoClockSync& clock, PicoLed& led, PicoReporter report,
                std::function<void()> connected);
    PicoSession(const PicoSession&) = delete;
    PicoSession& operator=(const PicoSession&) = delete;

    // The port opened: asks for HELLO.
    void opened();
    void closed();
    // Bytes read from the port (t4_ns: when the poll callback began).
    void on_data(std::string_view chunk, int64_t t4_ns);
    // Every 250 ms: HELLO? retries and checks, health, the flood report.
    void tick();

    // A command with an id: remembered (the last kRememberedIds), so that its ACK or ERR can be
    // told from a reply to a command never sent.
    void send_command(const std::string& cmd_id, std::string text);

    bool ready() const { return state_ == State::Ready; }
    int segment() const { return segment_; }
    const std::string& board() const { return board_; }
    const std::string& uid() const { return uid_; }
    // Its part of PicoLink::status().
    json status() const;
    // session.json's pico.segments.
    json segments() const;

private:
    enum class State { Closed, AwaitHello, Ready };
    struct Segment {
        int number;
        std::string boot;
        std::string fw;
        int64_t first_mono_ns;
    };

    bool sent_command(std::string_view cmd_id) const;
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

    const PicoConfig& config_;
    PicoSerial& serial_;
    PicoClockSync& clock_;
    PicoLed& led_;
    PicoReporter report_;
    std::function<void()> connected_;

    State state_ = State::Closed;
    psync::LineSplitter splitter_;
    psync::SeqTracker seq_;
    bool ever_connected_ = false;
    int64_t next_hello_ns_ = 0;
    int hello_attempts_ = 0;
    int64_t next_verify_ns_ = 0;
    int64_t last_recovery_ns_ = 0;
    int64_t last_hb_ns_ = 0;
    bool healthy_ = false;

    // The Pico and its clock segments
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
};

}  // namespace pilogger

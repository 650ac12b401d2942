#include "pico_session.hpp"

#include <algorithm>
#include <cmath>

namespace pilogger {

namespace {
constexpr int64_t kHelloRetryNs = 2'000'000'000;
// A HELLO? now and then catches a reboot whose HELLO and seq restart were both missed.
constexpr int64_t kVerifyNs = 10'000'000'000;
constexpr int64_t kRecoveryGapNs = 5'000'000'000;
constexpr int64_t kHeartbeatNs = 1'000'000'000;  // the firmware's default interval
constexpr int64_t kUnhealthyNs = 3 * kHeartbeatNs + kHeartbeatNs / 2;  // three missed
// An LED line comes right after the pin changed: a time further than this from the Pico's clock
// (as fitted, or since its HELLO) is not a real change.
constexpr double kMaxLedSkewUs = 10e6;
// Command ids remembered, so an ACK or ERR can be told from a reply to nothing.
constexpr size_t kRememberedIds = 64;
constexpr int64_t kFloodReportNs = 1'000'000'000;

// Bytes from the device shown in a log line: printable ASCII, the rest as \xNN.
std::string excerpt(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 80)) {
        if (c >= 32 && c <= 126) {
            out.push_back(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
            out += buf;
        }
    }
    return out;
}
}  // namespace

PicoSession::PicoSession(const PicoConfig& config, PicoSerial& serial, PicoClockSync& clock, PicoLed& led,
                         PicoReporter report, std::function<void()> connected)
    : config_(config),
      serial_(serial),
      clock_(clock),
      led_(led),
      report_(std::move(report)),
      connected_(std::move(connected)) {}

void PicoSession::opened() {
    splitter_.reset();
    state_ = State::AwaitHello;
    int64_t now = mono_ns();
    report_.log("debug", "Pico W: opened " + serial_.path() + ", asking for HELLO");
    // The newline first ends any partial line an earlier program left in the Pico.
    serial_.send("\n" + psync::hello_query());
    hello_attempts_ = 1;
    next_hello_ns_ = now + kHelloRetryNs;
}

void PicoSession::closed() { state_ = State::Closed; }

void PicoSession::on_data(std::string_view chunk, int64_t t4_ns) {
    splitter_.feed(chunk, [this, t4_ns](std::string_view line) {
        if (serial_.is_open()) handle_line(line, t4_ns);
    });
    for (; overlong_reported_ < splitter_.overlong_lines(); ++overlong_reported_) {
        report_bad("a line over " + std::to_string(psync::kMaxLineBytes) + " bytes, dropped unread", "");
    }
    if (serial_.is_open() && splitter_.prompt_pending()) recover_from_prompt();
}

void PicoSession::send_command(const std::string& cmd_id, std::string text) {
    sent_ids_.push_back(cmd_id);
    if (sent_ids_.size() > kRememberedIds) sent_ids_.pop_front();
    serial_.send(std::move(text));
}

bool PicoSession::sent_command(std::string_view cmd_id) const {
    return std::find(sent_ids_.begin(), sent_ids_.end(), cmd_id) != sent_ids_.end();
}

void PicoSession::handle_line(std::string_view text, int64_t t4_ns) {
    // The barrier: whatever comes down the wire, a line we cannot handle is counted as garbage.
    try {
        handle_parsed_line(text, t4_ns);
    } catch (const std::exception& e) {
        ++lines_bad_;
        report_bad(std::string("the line could not be handled: ") + e.what(), text);
    }
}

void PicoSession::report_bad(const std::string& problem, std::string_view text) {
    // Counted by the caller; recorded at a bounded rate (tick() sums the rest in pico_flood).
    if (!report_limit_.allow(mono_ns())) return;
    std::string detail = text.empty() ? problem : problem + ": " + excerpt(text);
    report_.log("warning", "Pico W sent a line it should not have (" + detail + ")");
    report_.event("pico_bad_line", detail);
}

void PicoSession::handle_parsed_line(std::string_view text, int64_t t4_ns) {
    std::string why;
    std::optional<psync::Line> parsed = psync::parse_line(text, &why);
    if (!parsed) {
        ++lines_bad_;
        return report_bad(why, text);
    }
    const psync::Line& line = *parsed;
    if (line.kind == psync::Kind::Hello) return on_hello(line, text, t4_ns);
    // Until HELLO names the boot, times cannot be placed in a clock segment.
    if (state_ != State::Ready) return;
    if (line.has_seq) {
        std::optional<uint32_t> last = seq_.last();
        uint64_t lost = 0;
        psync::SeqTracker::Result r = seq_.add(line.seq, &lost);
        if (r == psync::SeqTracker::Result::Gap) {
            lines_lost_ += lost;
            last_gap_ = lost;
        }
        if (r == psync::SeqTracker::Result::Back) {
            // A repeated or stray line, or a restart whose HELLO was lost: ignored either way,
            // and the HELLO asked for now tells which (a new boot id starts a new segment).
            ++lines_out_of_order_;
            report_bad("seq " + std::to_string(line.seq) + " after " + std::to_string(last.value_or(0)) +
                           " (repeated or out of order; ignored)",
                       text);
            // Or the stray line was the one before, far ahead: then the lines that go back count
            // up on their own. Once HELLO showed the same boot, three of them in a row are the
            // Pico's own numbering again.
            back_in_order_ = back_seq_.add(line.seq) == psync::SeqTracker::Result::InOrder ? back_in_order_ + 1 : 0;
            if (same_boot_confirmed_ && back_in_order_ >= 2) {
                seq_.reset();
                seq_.add(line.seq);
                lines_lost_ -= std::min(lines_lost_, last_gap_);  // that jump lost nothing
                last_gap_ = 0;
                end_back_run();
                return;
            }
            return check_boot();
        }
        end_back_run();
    }
    switch (line.kind) {
        case psync::Kind::Pong:
            if (!clock_.on_pong(line, t4_ns)) {
                ++replies_unmatched_;
                report_bad("a PONG for nonce " + line.nonce + ", which no PING waits for (never sent, already answered, "
                           "or after its burst)",
                           text);
            }
            return;
        case psync::Kind::Led: return on_led(line, text, t4_ns);
        case psync::Kind::Heartbeat: return on_heartbeat(line, t4_ns);
        case psync::Kind::Ack:
            if (!sent_command(line.cmd_id)) {
                ++replies_unmatched_;
                report_bad("an ACK of command " + line.cmd_id + ", which was never sent", text);
            }
            return;
        case psync::Kind::Err:
            // "-": the firmware could not read the command's id.
            if (line.cmd_id != "-" && !sent_command(line.cmd_id)) {
                ++replies_unmatched_;
                return report_bad("an ERR for command " + line.cmd_id + ", which was never sent", text);
            }
            ++pico_errors_;
            // A device that repeats itself is recorded at a bounded rate (the counters stay exact).
            if (!report_limit_.allow(mono_ns())) return;
            report_.log("warning", "Pico W rejected command " + line.cmd_id + ": " + line.err_word + " (code " +
                                       std::to_string(line.code) + ")");
            report_.event("pico_error", "cmd_id=" + line.cmd_id + " code=" + std::to_string(line.code) + " " + line.err_word);
            return;
        case psync::Kind::Log:
            if (!report_limit_.allow(mono_ns())) return;
            if (line.log_level == "info") {
                report_.log("debug", "Pico W: " + line.text);
            } else {
                report_.log("warning", "Pico W reports: " + line.text);
                if (line.text.rfind("late", 0) == 0) report_.event("pico_late", line.text);
            }
            return;
        case psync::Kind::Hello: return;
        case psync::Kind::Unknown: ++lines_unknown_; return;
    }
}

void PicoSession::end_back_run() {
    back_seq_.reset();
    back_in_order_ = 0;
    same_boot_confirmed_ = false;
}

void PicoSession::check_boot() {
    int64_t now = mono_ns();
    if (boot_check_pending_ && now < boot_check_due_ns_) return;
    boot_check_pending_ = true;
    boot_check_due_ns_ = now + kHelloRetryNs;
    serial_.send(psync::hello_query());
}

void PicoSession::on_hello(const psync::Line& line, std::string_view text, int64_t t4_ns) {
    if (line.proto != 1) {
        // Another protocol may mean other fields: nothing it says can be trusted.
        ++lines_bad_;
        return report_bad("speaks PSYNC/" + std::to_string(line.proto) + ", expected PSYNC/1", text);
    }
    bool fresh = line.boot != boot_;
    if (fresh) {
        new_segment(line, t4_ns);
    } else if (boot_check_pending_ && back_seq_.last()) {
        same_boot_confirmed_ = true;  // the lines still going back are no restart
    }
    boot_check_pending_ = false;
    // One boot runs one firmware: what a HELLO of the same boot says otherwise is not taken.
    if (fresh || state_ != State::Ready) {
        fw_ = line.fw;
        board_ = line.board;
        uid_ = line.uid;
    }
    if (state_ != State::Ready) {
        state_ = State::Ready;
        ++connects_;
        ever_connected_ = true;
        connected_();
        healthy_ = true;
        last_hb_ns_ = t4_ns;
        next_verify_ns_ = t4_ns + kVerifyNs;
        std::string detail = serial_.path() + ": fw=" + fw_ + " board=" + board_ + " boot=" + boot_ +
                             " segment=" + std::to_string(segment_);
        report_.log("info", "Pico W connected (" + detail + ")");
        report_.event("pico_connected", detail, t4_ns);
    } else if (!fresh) {
        return;  // an answer to a verifying HELLO?: same boot, nothing changes
    }
    clock_.start(segment_, boot_);
    led_.apply_state();
}

void PicoSession::new_segment(const psync::Line& hello, int64_t at_ns) {
    led_.segment_ended();
    ++segment_;
    boot_ = hello.boot;
    hello_pico_us_ = hello.t_us;
    hello_host_ns_ = at_ns;
    clock_.reset();
    seq_.reset();
    end_back_run();
    segments_.push_back(Segment{segment_, hello.boot, hello.fw, at_ns});
    if (segments_.size() > 1000) segments_.erase(segments_.begin());
    // A device that says a new boot id many times a second: recorded at the bounded rate.
    if (!report_limit_.allow(at_ns)) return;
    if (segment_ > 1) {
        report_.log("info", "Pico W clock segment " + std::to_string(segment_) + " begins (boot " + hello.boot +
                                "): the Pico restarted, so its clock is fitted afresh");
    }
    report_.event("pico_segment", "segment=" + std::to_string(segment_) + " boot=" + hello.boot, at_ns);
}

void PicoSession::recover_from_prompt() {
    splitter_.reset();
    int64_t now = mono_ns();
    if (now - last_recovery_ns_ < kRecoveryGapNs) return;
    last_recovery_ns_ = now;
    report_.log("warning", "Pico W on " + serial_.path() +
                               " is at the MicroPython prompt (its program stopped): sending Ctrl-C, Ctrl-D to restart it");
    report_.event("pico_repl", "prompt seen on " + serial_.path() + "; soft reboot requested");
    clock_.stop();
    state_ = State::AwaitHello;
    // Ctrl-C ends whatever runs at the prompt; Ctrl-D at an empty prompt soft-reboots into main.py.
    serial_.send("\r\x03\x03\x04");
    hello_attempts_ = 1;
    next_hello_ns_ = now + kHelloRetryNs;
}

std::optional<double> PicoSession::pico_clock_at(int64_t host_ns) const {
    if (clock_.fit().valid()) return clock_.fit().pico_us_at(host_ns);
    if (hello_host_ns_ != 0) {
        return static_cast<double>(hello_pico_us_) + static_cast<double>(host_ns - hello_host_ns_) / 1e3;
    }
    return std::nullopt;
}

void PicoSession::on_led(const psync::Line& line, std::string_view text, int64_t t4_ns) {
    if (std::optional<double> now_us = pico_clock_at(t4_ns)) {
        double off_us = static_cast<double>(line.t_us) - *now_us;
        if (std::fabs(off_us) > kMaxLedSkewUs) {
            ++lines_bad_;
            return report_bad("an LED change at " + std::to_string(line.t_us) + " us, " + fixed(off_us / 1e6, 1) +
                                  " s from the Pico's clock",
                              text);
        }
    }
    led_.reported(line, segment_);
}

void PicoSession::on_heartbeat(const psync::Line& line, int64_t t4_ns) {
    last_hb_ns_ = t4_ns;
    pico_drop_ = line.drop;
    led_.heartbeat(line.led_mask);
    if (!healthy_) {
        healthy_ = true;
        report_.log("info", "Pico W heartbeats are back");
        report_.event("pico_healthy", "heartbeat received", t4_ns);
    }
}

void PicoSession::tick() {
    int64_t now = mono_ns();
    if (now - last_flood_report_ns_ >= kFloodReportNs) {
        last_flood_report_ns_ = now;
        if (uint64_t n = report_limit_.take_suppressed(); n > 0) {
            report_.event("pico_flood", std::to_string(n) + " more reports about the Pico's lines over the rate limit, not "
                                        "recorded one by one (status pico counts every line)");
        }
    }
    if (!serial_.is_open()) return;
    if (state_ == State::AwaitHello && now >= next_hello_ns_) {
        ++hello_attempts_;
        if (hello_attempts_ == 3) {
            report_.log("warning", "Pico W: no HELLO from " + serial_.path() +
                                       " yet; is it running the pilogger firmware (firmware/pico_w/)? Still asking");
        }
        serial_.send(psync::hello_query());
        next_hello_ns_ = now + kHelloRetryNs;
    }
    if (state_ != State::Ready) return;
    if (healthy_ && now - last_hb_ns_ > kUnhealthyNs) {
        healthy_ = false;
        report_.log("warning", "Pico W on " + serial_.path() + " missed 3 heartbeats; the link is unhealthy");
        report_.event("pico_unhealthy", "no heartbeat for " + fixed(static_cast<double>(now - last_hb_ns_) / 1e9, 1) + " s");
        serial_.send(psync::hello_query());
        next_verify_ns_ = now + kHelloRetryNs;
    } else if (now >= next_verify_ns_) {
        serial_.send(psync::hello_query());
        next_verify_ns_ = now + (healthy_ ? kVerifyNs : kHelloRetryNs);
    }
}

json PicoSession::status() const {
    std::string state = state_ == State::Ready        ? (healthy_ ? "connected" : "unhealthy")
                        : state_ == State::AwaitHello ? "connecting"
                        : ever_connected_             ? "disconnected"
                                                      : "absent";
    return json{{"state", state},
                {"connected", state_ == State::Ready},
                {"healthy", state_ == State::Ready && healthy_},
                {"firmware", fw_},
                {"board", board_},
                {"boot", boot_},
                {"uid", uid_},
                {"segment", segment_},
                {"lines_lost", lines_lost_},
                {"lines_bad", lines_bad_ + splitter_.overlong_lines()},
                {"lines_unknown", lines_unknown_},
                {"lines_out_of_order", lines_out_of_order_},
                {"replies_unmatched", replies_unmatched_},
                {"pico_output_drops", pico_drop_},
                {"pico_errors", pico_errors_},
                {"connects", connects_}};
}

json PicoSession::segments() const {
    json segments = json::array();
    for (const auto& s : segments_) {
        segments.push_back({{"segment", s.number}, {"boot", s.boot}, {"firmware", s.fw}, {"first_mono_ns", s.first_mono_ns}});
    }
    return segments;
}

}  // namespace pilogger

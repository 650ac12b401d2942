#include "pico_link.hpp"

#include "clock.hpp"
#include "paths.hpp"

#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>

namespace pilogger {

namespace {
constexpr uint64_t kTickMs = 250;
constexpr int64_t kHelloRetryNs = 2'000'000'000;
// A HELLO? now and then catches a reboot whose HELLO and seq restart were both missed.
constexpr int64_t kVerifyNs = 10'000'000'000;
constexpr int64_t kRecoveryGapNs = 5'000'000'000;
constexpr int64_t kHeartbeatNs = 1'000'000'000;  // the firmware's default interval
constexpr int64_t kUnhealthyNs = 3 * kHeartbeatNs + kHeartbeatNs / 2;  // three missed
constexpr int64_t kRetryFirstMs = 500;
constexpr int64_t kRetryMaxMs = 5000;
constexpr uint64_t kBurstWaitMs = 250;
constexpr size_t kMaxQueuedLines = 64;
constexpr size_t kMaxPendingRows = 10000;
// An exchange this far off a fit of the same boot means the clock restarted unnoticed.
constexpr double kImplausibleOffsetUs = 50'000;
constexpr int kImplausibleInRow = 3;
constexpr uint64_t kEmulatorRestartMs = 2000;
constexpr uint64_t kEmulatorKillMs = 2000;
// An LED line comes right after the pin changed: a time further than this from the Pico's clock
// (as fitted, or since its HELLO) is not a real change.
constexpr double kMaxLedSkewUs = 10e6;
// LED rows of a segment wait for this many kept exchanges (bursts, ~1 s apart) before mapping.
constexpr size_t kSettledFitPoints = 3;
// Command ids remembered, so an ACK or ERR can be told from a reply to nothing.
constexpr size_t kRememberedIds = 64;
constexpr int64_t kFloodReportNs = 1'000'000'000;

std::string errno_text(int err) { return std::strerror(err); }

std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

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

PicoLink::PicoLink(uv::Loop& loop, PicoConfig config, std::string runtime_dir, Callbacks callbacks)
    : loop_(loop),
      config_(std::move(config)),
      callbacks_(std::move(callbacks)),
      link_path_(std::move(runtime_dir) + "/pico-emulator.tty"),
      fit_(ClockFitOptions{config_.fit_window_s * 1'000'000'000, 400, 2'000'000'000}),
      reopen_timer_(loop),
      tick_timer_(loop),
      burst_timer_(loop),
      ping_timer_(loop),
      burst_done_timer_(loop),
      led_on_timer_(loop),
      led_off_timer_(loop),
      emulator_timer_(loop),
      close_wait_timer_(loop) {}

PicoLink::~PicoLink() {
    close_port();
    if (emulator_ && emulator_->running()) emulator_->kill(SIGKILL);
}

void PicoLink::log(std::string_view level, const std::string& message) const {
    if (callbacks_.log) callbacks_.log(level, message);
}

void PicoLink::event(std::string_view name, const std::string& detail, std::optional<int64_t> at) const {
    if (callbacks_.event) callbacks_.event(name, detail, at.value_or(mono_ns()));
}

// ---- life cycle ----

void PicoLink::start() {
    if (started_) return;
    started_ = true;
    stopping_ = false;
    started_mono_ns_ = mono_ns();
    tick_timer_.start(kTickMs, kTickMs, [this] { tick(); });
    if (config_.device == "emulator") {
        spawn_emulator();
    } else {
        try_open();
    }
}

bool PicoLink::settling() const {
    if (!started_ || stopping_) return false;
    if (state_ == State::Ready && fit_.points() >= 2) return false;
    // Not there at all (nothing to open): nothing to wait for.
    if (state_ == State::Closed && warned_absent_ && config_.device != "emulator") return false;
    return mono_ns() - started_mono_ns_ < 5'000'000'000;
}

void PicoLink::stop() {
    if (stopping_) return;
    stopping_ = true;
    for (uv::Timer* t : {&reopen_timer_, &tick_timer_, &burst_timer_, &ping_timer_, &burst_done_timer_,
                         &led_on_timer_, &led_off_timer_, &emulator_timer_}) {
        t->stop();
    }
    // Leave the LED dark. By now the last trial's stop instant has passed.
    if (state_ == State::Ready) send_command("quit", psync::stop("quit", config_.led_channel));
    close_port();
    if (emulator_ && emulator_->running()) {
        emulator_->kill(SIGTERM);
        emulator_timer_.start(kEmulatorKillMs, 0, [this] {
            if (emulator_ && emulator_->running()) emulator_->kill(SIGKILL);
        });
    }
}

// ---- the port ----

std::vector<std::string> pico_auto_devices() {
    std::vector<std::string> paths;
    glob_t g{};
    if (::glob(kPicoAutoGlob, 0, nullptr, &g) == 0) paths.assign(g.gl_pathv, g.gl_pathv + g.gl_pathc);  // sorted
    ::globfree(&g);
    return paths;
}

std::string PicoLink::resolve_device(std::string* why) const {
    if (config_.device == "emulator") {
        if (!emulator_announced_) *why = "the emulator has not opened its pseudo-terminal yet";
        return emulator_announced_ ? link_path_ : std::string();
    }
    if (config_.device == "auto") {
        const std::vector<std::string> found = pico_auto_devices();
        const std::string path = found.empty() ? std::string() : found.front();
        if (path.empty()) {
            *why = std::string("no device matches ") + kPicoAutoGlob +
                   " (is the Pico W plugged in and running MicroPython?)";
        }
        return path;
    }
    return config_.device;
}

void PicoLink::try_open() {
    if (stopping_ || fd_ >= 0) return;
    std::string why;
    std::string path = resolve_device(&why);
    if (path.empty()) return open_failed(why);

    int fd = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        std::string hint = err == EACCES ? " (the user needs to be in the dialout group)"
                           : err == EBUSY ? " (another program holds it open)"
                                          : "";
        return open_failed("cannot open " + path + ": " + errno_text(err) + hint);
    }
    // One program at a time: a second reader would steal the PONGs.
    ::ioctl(fd, TIOCEXCL);
    termios tio{};
    if (::tcgetattr(fd, &tio) != 0) {
        int err = errno;
        ::close(fd);
        return open_failed(path + " is not a serial port: " + errno_text(err));
    }
    ::cfmakeraw(&tio);
    tio.c_cflag |= CLOCAL | CREAD;
    tio.c_cc[VMIN] = 0;
    tio.c_cc[VTIME] = 0;
    // cdc_acm ignores the rate, but 1200 baud reboots some boards into their bootloader.
    if (::cfgetospeed(&tio) == B1200) {
        ::cfsetispeed(&tio, B115200);
        ::cfsetospeed(&tio, B115200);
    }
    if (::tcsetattr(fd, TCSANOW, &tio) != 0) {
        int err = errno;
        ::close(fd);
        return open_failed("cannot set raw mode on " + path + ": " + errno_text(err));
    }
    ::tcflush(fd, TCIOFLUSH);
    // The Pico counts the host as present only while DTR is up. A pty has no modem lines (ENOTTY).
    int dtr = TIOCM_DTR;
    if (::ioctl(fd, TIOCMBIS, &dtr) != 0 && errno != ENOTTY && errno != EINVAL) {
        log("debug", "Pico W: cannot raise DTR on " + path + ": " + errno_text(errno));
    }
    try {
        poll_ = std::make_unique<uv::Poll>(loop_, fd);
    } catch (const uv::Error& e) {
        ::close(fd);
        return open_failed("cannot watch " + path + ": " + e.what());
    }
    fd_ = fd;
    path_ = path;
    poll_events_ = 0;
    splitter_.reset();
    state_ = State::AwaitHello;
    opened_mono_ns_ = mono_ns();
    log("debug", "Pico W: opened " + path + ", asking for HELLO");
    // The newline first ends any partial line an earlier program left in the Pico.
    send("\n" + psync::hello_query());
    hello_attempts_ = 1;
    next_hello_ns_ = opened_mono_ns_ + kHelloRetryNs;
    update_poll();
}

void PicoLink::open_failed(const std::string& why) {
    last_error_ = why;
    if (!warned_absent_) {
        warned_absent_ = true;
        log("warning", "Pico W not available: " + why + "; recording goes on without it, and the link keeps trying");
        event("pico_absent", why);
    } else {
        log("debug", "Pico W: " + why);
    }
    schedule_reopen(retry_ms_);
    retry_ms_ = std::min(retry_ms_ * 2, kRetryMaxMs);
}

void PicoLink::schedule_reopen(int64_t delay_ms) {
    if (stopping_) return;
    reopen_timer_.start(static_cast<uint64_t>(std::max<int64_t>(0, delay_ms)), 0, [this] { try_open(); });
}

void PicoLink::on_poll(int status, int events) {
    // The PONG's t4: taken first, before any other work in this callback.
    int64_t t4 = mono_ns();
    if (fd_ < 0) return;
    if (status < 0) return hang_up("the device reported an error (" + uv::error_text(status) + ")");
    if (events & UV_WRITABLE) flush_output();
    if (fd_ >= 0 && (events & UV_READABLE)) read_input(t4);
}

void PicoLink::read_input(int64_t t4_ns) {
    char buf[4096];
    bool got_data = false;
    // Bounded: a device that never stops talking cannot starve the loop.
    for (int round = 0; round < 64 && fd_ >= 0; ++round) {
        ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n > 0) {
            got_data = true;
            splitter_.feed(std::string_view(buf, static_cast<size_t>(n)), [this, t4_ns](std::string_view line) {
                if (fd_ >= 0) handle_line(line, t4_ns);
            });
            for (; overlong_reported_ < splitter_.overlong_lines(); ++overlong_reported_) {
                report_bad("a line over " + std::to_string(psync::kMaxLineBytes) + " bytes, dropped unread", "");
            }
            if (fd_ >= 0 && splitter_.prompt_pending()) recover_from_prompt();
            continue;
        }
        if (n == 0) {
            // With VMIN=0 an empty read also means "nothing yet"; only a hang-up makes the
            // descriptor readable with nothing in it.
            if (!got_data) {
                pollfd p{fd_, POLLIN, 0};
                if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL)) != 0) {
                    hang_up("the device hung up");
                }
            }
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        // EIO, ENODEV, ENXIO: unplugged (or the emulator closed its side).
        return hang_up("read failed: " + errno_text(errno));
    }
}

void PicoLink::hang_up(const std::string& why) {
    bool was_ready = state_ == State::Ready;
    std::string path = path_;
    close_port();
    last_error_ = path + ": " + why;
    if (was_ready) {
        log("warning", "Pico W disconnected (" + last_error_ + "); recording goes on, reconnecting in the background");
        event("pico_disconnected", last_error_);
    } else {
        log("debug", "Pico W: " + last_error_);
    }
    warned_absent_ = true;  // the retries stay quiet
    retry_ms_ = kRetryFirstMs;
    schedule_reopen(retry_ms_);
    retry_ms_ *= 2;
}

void PicoLink::close_port() {
    burst_.active = false;
    burst_timer_.stop();
    ping_timer_.stop();
    burst_done_timer_.stop();
    // The poll handle goes first: libuv must stop watching before the descriptor closes.
    poll_.reset();
    poll_events_ = 0;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    out_.clear();
    state_ = State::Closed;
}

bool PicoLink::send(std::string text, int ping_index) {
    if (fd_ < 0) return false;
    if (out_.size() >= kMaxQueuedLines) {
        ++tx_dropped_;
        return false;
    }
    out_.push_back(Outgoing{std::move(text), 0, ping_index, burst_.id});
    flush_output();
    return true;
}

bool PicoLink::send_command(const std::string& cmd_id, std::string text) {
    sent_ids_.push_back(cmd_id);
    if (sent_ids_.size() > kRememberedIds) sent_ids_.pop_front();
    return send(std::move(text));
}

bool PicoLink::sent_command(std::string_view cmd_id) const {
    return std::find(sent_ids_.begin(), sent_ids_.end(), cmd_id) != sent_ids_.end();
}

void PicoLink::flush_output() {
    while (fd_ >= 0 && !out_.empty()) {
        Outgoing& o = out_.front();
        if (o.written == 0 && o.ping_index >= 0 && burst_.active && o.burst_id == burst_.id) {
            Ping& p = burst_.pings[static_cast<size_t>(o.ping_index)];
            p.sent = true;
            p.exchange.host_t1_ns = mono_ns();  // t1: right before the write
        }
        ssize_t n = ::write(fd_, o.text.data() + o.written, o.text.size() - o.written);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return hang_up("write failed: " + errno_text(errno));
        }
        o.written += static_cast<size_t>(n);
        if (o.written < o.text.size()) break;
        out_.pop_front();
    }
    update_poll();
}

void PicoLink::update_poll() {
    if (!poll_) return;
    int want = UV_READABLE | (out_.empty() ? 0 : UV_WRITABLE);
    if (want == poll_events_) return;
    poll_events_ = want;
    try {
        poll_->start(want, [this](int status, int events) { on_poll(status, events); });
    } catch (const uv::Error& e) {
        hang_up(std::string("cannot watch the device: ") + e.what());
    }
}

// ---- protocol ----

void PicoLink::handle_line(std::string_view text, int64_t t4_ns) {
    // The barrier: whatever comes down the wire, a line we cannot handle is counted as garbage.
    try {
        handle_parsed_line(text, t4_ns);
    } catch (const std::exception& e) {
        ++lines_bad_;
        report_bad(std::string("the line could not be handled: ") + e.what(), text);
    }
}

void PicoLink::report_bad(const std::string& problem, std::string_view text) {
    // Counted by the caller; recorded at a bounded rate (tick() sums the rest in pico_flood).
    if (!report_limit_.allow(mono_ns())) return;
    std::string detail = text.empty() ? problem : problem + ": " + excerpt(text);
    log("warning", "Pico W sent a line it should not have (" + detail + ")");
    event("pico_bad_line", detail);
}

void PicoLink::handle_parsed_line(std::string_view text, int64_t t4_ns) {
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
        case psync::Kind::Pong: return on_pong(line, text, t4_ns);
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
            log("warning", "Pico W rejected command " + line.cmd_id + ": " + line.err_word + " (code " +
                               std::to_string(line.code) + ")");
            event("pico_error", "cmd_id=" + line.cmd_id + " code=" + std::to_string(line.code) + " " + line.err_word);
            return;
        case psync::Kind::Log:
            if (!report_limit_.allow(mono_ns())) return;
            if (line.log_level == "info") {
                log("debug", "Pico W: " + line.text);
            } else {
                log("warning", "Pico W reports: " + line.text);
                if (line.text.rfind("late", 0) == 0) event("pico_late", line.text);
            }
            return;
        case psync::Kind::Hello: return;
        case psync::Kind::Unknown: ++lines_unknown_; return;
    }
}

void PicoLink::end_back_run() {
    back_seq_.reset();
    back_in_order_ = 0;
    same_boot_confirmed_ = false;
}

void PicoLink::check_boot() {
    int64_t now = mono_ns();
    if (boot_check_pending_ && now < boot_check_due_ns_) return;
    boot_check_pending_ = true;
    boot_check_due_ns_ = now + kHelloRetryNs;
    send(psync::hello_query());
}

void PicoLink::on_hello(const psync::Line& line, std::string_view text, int64_t t4_ns) {
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
        retry_ms_ = kRetryFirstMs;
        last_error_.clear();
        healthy_ = true;
        last_hb_ns_ = t4_ns;
        next_verify_ns_ = t4_ns + kVerifyNs;
        std::string detail = path_ + ": fw=" + fw_ + " board=" + board_ + " boot=" + boot_ +
                             " segment=" + std::to_string(segment_);
        log("info", "Pico W connected (" + detail + ")");
        event("pico_connected", detail, t4_ns);
    } else if (!fresh) {
        return;  // an answer to a verifying HELLO?: same boot, nothing changes
    }
    burst_timer_.start(0, static_cast<uint64_t>(config_.ping_interval_ms), [this] { begin_burst(); });
    apply_led_state();
}

void PicoLink::new_segment(const psync::Line& hello, int64_t at_ns) {
    write_unmapped_leds();
    ++segment_;
    boot_ = hello.boot;
    hello_pico_us_ = hello.t_us;
    hello_host_ns_ = at_ns;
    fit_.reset();
    seq_.reset();
    end_back_run();
    implausible_in_row_ = 0;
    burst_.active = false;
    led_on_.reset();
    segments_.push_back(Segment{segment_, hello.boot, hello.fw, at_ns});
    if (segments_.size() > 1000) segments_.erase(segments_.begin());
    // A device that says a new boot id many times a second: recorded at the bounded rate.
    if (!report_limit_.allow(at_ns)) return;
    if (segment_ > 1) {
        log("info", "Pico W clock segment " + std::to_string(segment_) + " begins (boot " + hello.boot +
                        "): the Pico restarted, so its clock is fitted afresh");
    }
    event("pico_segment", "segment=" + std::to_string(segment_) + " boot=" + hello.boot, at_ns);
}

void PicoLink::recover_from_prompt() {
    splitter_.reset();
    int64_t now = mono_ns();
    if (now - last_recovery_ns_ < kRecoveryGapNs) return;
    last_recovery_ns_ = now;
    log("warning", "Pico W on " + path_ +
                       " is at the MicroPython prompt (its program stopped): sending Ctrl-C, Ctrl-D to restart it");
    event("pico_repl", "prompt seen on " + path_ + "; soft reboot requested");
    burst_.active = false;
    burst_timer_.stop();
    ping_timer_.stop();
    burst_done_timer_.stop();
    state_ = State::AwaitHello;
    // Ctrl-C ends whatever runs at the prompt; Ctrl-D at an empty prompt soft-reboots into main.py.
    send("\r\x03\x03\x04");
    hello_attempts_ = 1;
    next_hello_ns_ = now + kHelloRetryNs;
}

void PicoLink::on_pong(const psync::Line& line, std::string_view text, int64_t t4_ns) {
    bool matched = false;
    if (burst_.active && burst_.segment == segment_) {
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
    if (!matched) {
        ++replies_unmatched_;
        return report_bad("a PONG for nonce " + line.nonce + ", which no PING waits for (never sent, already answered, "
                          "or after its burst)",
                          text);
    }
    if (burst_.next < burst_.pings.size()) return;
    for (const Ping& p : burst_.pings) {
        if (!p.answered) return;
    }
    finish_burst();
}

std::optional<double> PicoLink::pico_clock_at(int64_t host_ns) const {
    if (fit_.valid()) return fit_.pico_us_at(host_ns);
    if (hello_host_ns_ != 0) {
        return static_cast<double>(hello_pico_us_) + static_cast<double>(host_ns - hello_host_ns_) / 1e3;
    }
    return std::nullopt;
}

void PicoLink::on_led(const psync::Line& line, std::string_view text, int64_t t4_ns) {
    if (std::optional<double> now_us = pico_clock_at(t4_ns)) {
        double off_us = static_cast<double>(line.t_us) - *now_us;
        if (std::fabs(off_us) > kMaxLedSkewUs) {
            ++lines_bad_;
            return report_bad("an LED change at " + std::to_string(line.t_us) + " us, " + fixed(off_us / 1e6, 1) +
                                  " s from the Pico's clock",
                              text);
        }
    }
    if (line.channel == config_.led_channel) led_on_ = line.level != 0;
    if (fit_.points() < kSettledFitPoints) {
        // Mapped once the segment's fit rests on a few bursts: one slow exchange on a loaded host
        // would otherwise put the first edges of a segment (a trial's code) milliseconds off.
        if (unmapped_leds_.size() < 1000) unmapped_leds_.push_back(line);
        return;
    }
    CsvRow row;
    row.add(static_cast<uint64_t>(line.seq)).add(line.t_us).add(fit_.host_ns_at(line.t_us));
    row.add(line.channel).add(line.level).add(line.cmd_id).add(segment_);
    write_led_row(row);
}

void PicoLink::write_unmapped_leds() {
    std::vector<psync::Line> lines = std::move(unmapped_leds_);
    unmapped_leds_.clear();
    for (const auto& line : lines) {
        CsvRow row;
        row.add(static_cast<uint64_t>(line.seq)).add(line.t_us);
        if (fit_.valid()) {
            row.add(fit_.host_ns_at(line.t_us));
        } else {
            row.empty();  // the segment ended before any exchange: no mapping exists
        }
        row.add(line.channel).add(line.level).add(line.cmd_id).add(segment_);
        write_led_row(row);
    }
}

void PicoLink::on_heartbeat(const psync::Line& line, int64_t t4_ns) {
    last_hb_ns_ = t4_ns;
    pico_drop_ = line.drop;
    led_on_ = ((line.led_mask >> config_.led_channel) & 1u) != 0;
    if (!healthy_) {
        healthy_ = true;
        log("info", "Pico W heartbeats are back");
        event("pico_healthy", "heartbeat received", t4_ns);
    }
}

void PicoLink::tick() {
    int64_t now = mono_ns();
    if (now - last_flood_report_ns_ >= kFloodReportNs) {
        last_flood_report_ns_ = now;
        if (uint64_t n = report_limit_.take_suppressed(); n > 0) {
            event("pico_flood", std::to_string(n) + " more reports about the Pico's lines over the rate limit, not "
                                "recorded one by one (status pico counts every line)");
        }
    }
    if (fd_ < 0) return;
    if (state_ == State::AwaitHello && now >= next_hello_ns_) {
        ++hello_attempts_;
        if (hello_attempts_ == 3) {
            log("warning", "Pico W: no HELLO from " + path_ +
                               " yet; is it running the pilogger firmware (firmware/pico_w/)? Still asking");
        }
        send(psync::hello_query());
        next_hello_ns_ = now + kHelloRetryNs;
    }
    if (state_ != State::Ready) return;
    if (healthy_ && now - last_hb_ns_ > kUnhealthyNs) {
        healthy_ = false;
        log("warning", "Pico W on " + path_ + " missed 3 heartbeats; the link is unhealthy");
        event("pico_unhealthy", "no heartbeat for " + fixed(static_cast<double>(now - last_hb_ns_) / 1e9, 1) + " s");
        send(psync::hello_query());
        next_verify_ns_ = now + kHelloRetryNs;
    } else if (now >= next_verify_ns_) {
        send(psync::hello_query());
        next_verify_ns_ = now + (healthy_ ? kVerifyNs : kHelloRetryNs);
    }
}

// ---- clock sync ----

void PicoLink::begin_burst() {
    if (state_ != State::Ready || fd_ < 0) return;
    if (burst_.active) finish_burst();
    burst_ = Burst{};
    burst_.id = next_nonce_;
    burst_.segment = segment_;
    burst_.active = true;
    burst_.pings.resize(static_cast<size_t>(config_.ping_burst));
    for (Ping& p : burst_.pings) p.nonce = std::to_string(next_nonce_++);
    send_next_ping();
    if (burst_.next < burst_.pings.size()) {
        auto spacing = static_cast<uint64_t>(config_.ping_spacing_ms);
        ping_timer_.start(spacing, spacing, [this] { send_next_ping(); });
    }
}

void PicoLink::send_next_ping() {
    if (!burst_.active || fd_ < 0 || burst_.next >= burst_.pings.size()) {
        ping_timer_.stop();
        return;
    }
    size_t i = burst_.next++;
    send(psync::ping(burst_.pings[i].nonce), static_cast<int>(i));
    if (burst_.next == burst_.pings.size()) {
        ping_timer_.stop();
        burst_done_timer_.start(kBurstWaitMs, 0, [this] { finish_burst(); });
    }
}

void PicoLink::finish_burst() {
    if (!burst_.active) return;
    burst_.active = false;
    ping_timer_.stop();
    burst_done_timer_.stop();
    if (burst_.segment != segment_) return;

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
            log("warning", "Pico W clock is " + fixed(jump / 1000, 1) + " ms off its fit; asking for HELLO to check for a restart");
            send(psync::hello_query());
            if (implausible_in_row_ >= kImplausibleInRow) {
                // Same boot, yet the clock moved: trust the new exchanges.
                log("warning", "Pico W clock moved without a restart; its fit starts over");
                event("pico_clock_jump", "offset changed by " + fixed(jump, 0) + " us");
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
        if (fit_.points() >= kSettledFitPoints && !unmapped_leds_.empty()) write_unmapped_leds();
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
        write_sync_row(row);
    }
}

// ---- LED ----

std::string PicoLink::next_id(const std::string& prefix) { return prefix + std::to_string(next_cmd_++); }

void PicoLink::apply_led_state() {
    if (state_ != State::Ready) return;
    if (led_wanted_) {
        const std::string id = "t" + std::to_string(trial_) + "on";
        send_command(id, psync::led(id, config_.led_channel, 1));
    } else {
        const std::string id = next_id("idle");
        send_command(id, psync::led(id, config_.led_channel, 0));
    }
}

void PicoLink::trial_started(int trial, int64_t start_at_mono_ns) {
    trial_ = trial;
    led_wanted_ = true;
    led_off_timer_.stop();
    if (state_ != State::Ready) {
        log("warning", "Pico W not connected: trial " + std::to_string(trial) +
                           " starts without its sync code (the LED comes on when the Pico is back)");
        event("pico_no_code", "trial " + std::to_string(trial) + ": the Pico W is not connected", start_at_mono_ns);
        return;
    }
    send_trial_code(trial, start_at_mono_ns);
}

void PicoLink::send_trial_code(int trial, int64_t start_at_mono_ns) {
    const std::string n = std::to_string(trial);
    const std::string bits = psync::trial_code_hex(trial);
    std::optional<uint64_t> at;
    if (fit_.valid()) {
        double p = fit_.pico_us_at(start_at_mono_ns);
        if (p > 0) at = static_cast<uint64_t>(std::llround(p));
    }
    if (!at) {
        log("warning", "Pico W: no clock fit yet, so trial " + n +
                           "'s code starts when the Pico reads it rather than at the start instant");
    }
    send_command("t" + n + "code", psync::code("t" + n + "code", config_.led_channel, bits, config_.code_bit_ms, at));
    event("pico_code",
          "trial=" + n + " bits=" + bits + " bit_ms=" + std::to_string(config_.code_bit_ms) +
              (at ? " at_pico_us=" + std::to_string(*at) : std::string(" at=now")),
          start_at_mono_ns);
    // The LED then stays on for the trial (a new command would cut the code short).
    int64_t code_end_ns = start_at_mono_ns + static_cast<int64_t>(psync::kTrialCodeBits) * config_.code_bit_ms * 1'000'000 +
                          20'000'000;
    int64_t wait_ms = std::max<int64_t>(0, (code_end_ns - mono_ns()) / 1'000'000);
    led_on_timer_.start(static_cast<uint64_t>(wait_ms), 0, [this, trial] {
        if (trial_ == trial && led_wanted_ && state_ == State::Ready) {
            const std::string id = "t" + std::to_string(trial) + "on";
            send_command(id, psync::led(id, config_.led_channel, 1));
        }
    });
}

void PicoLink::trial_stopped(int trial, int64_t stop_at_mono_ns) {
    led_wanted_ = false;
    trial_ = 0;
    led_on_timer_.stop();
    led_off_due_ns_ = stop_at_mono_ns;
    if (state_ != State::Ready) return;  // switched off when the Pico is back
    const std::string id = "t" + std::to_string(trial) + "off";
    if (fit_.valid()) {
        // CODE with four 0 bits: off exactly at the stop instant, and the pattern ends there.
        double p = fit_.pico_us_at(stop_at_mono_ns);
        send_command(id, psync::code(id, config_.led_channel, "0", 1, static_cast<uint64_t>(std::llround(std::max(p, 0.0)))));
        return;
    }
    int64_t wait_ms = std::max<int64_t>(0, (stop_at_mono_ns - mono_ns()) / 1'000'000);
    led_off_timer_.start(static_cast<uint64_t>(wait_ms), 0, [this, id] {
        if (!led_wanted_ && state_ == State::Ready) send_command(id, psync::led(id, config_.led_channel, 0));
    });
}

// ---- session files ----

void PicoLink::open_session(const std::string& session_dir) {
    closing_writers_.clear();
    pending_sync_.clear();
    pending_led_.clear();
    int generation = ++files_generation_;
    files_opening_ = true;
    std::string dir = session_dir + "/pico";
    std::weak_ptr<int> alive = alive_;
    uv::queue_work(
        loop_,
        [dir]() -> std::string {
            if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return "cannot create " + dir + ": " + errno_text(errno);
            return {};
        },
        [this, alive, generation, dir](const std::string& error) {
            if (alive.expired() || generation != files_generation_) return;
            files_opening_ = false;
            if (!error.empty()) {
                log("error", "Pico W files: " + error);
                event("pico_file_error", error);
                pending_sync_.clear();
                pending_led_.clear();
                return;
            }
            auto on_error = [this, alive](const std::string& message) {
                if (!alive.expired()) log("error", "Pico W files: " + message);
            };
            sync_csv_ = std::make_unique<AsyncFileWriter>(loop_, dir + "/sync.csv", kPicoSyncColumns,
                                                          FileWriterOptions{}, on_error);
            led_csv_ = std::make_unique<AsyncFileWriter>(loop_, dir + "/led.csv", kPicoLedColumns,
                                                         FileWriterOptions{}, on_error);
            for (const auto& line : pending_sync_) sync_csv_->write_text(line);
            for (const auto& line : pending_led_) led_csv_->write_text(line);
            pending_sync_.clear();
            pending_led_.clear();
        });
}

void PicoLink::close_session(std::function<void()> done) {
    // The LED's last edge, at the trial's stop instant, may still be on its way: keep led.csv
    // open for it a little while.
    const int64_t wait_until = led_off_due_ns_ + 500'000'000;
    auto edge_pending = [this, wait_until] {
        return state_ == State::Ready && !led_wanted_ && led_on_.value_or(false) && mono_ns() < wait_until;
    };
    if (!edge_pending()) return close_files(std::move(done));
    close_wait_timer_.start(10, 10, [this, edge_pending, done] {
        if (edge_pending()) return;
        close_wait_timer_.stop();
        close_files(done);
    });
}

void PicoLink::close_files(std::function<void()> done) {
    write_unmapped_leds();
    ++files_generation_;
    files_opening_ = false;
    pending_sync_.clear();
    pending_led_.clear();
    std::vector<AsyncFileWriter*> open;
    for (auto* w : {&sync_csv_, &led_csv_}) {
        if (*w) {
            open.push_back(w->get());
            closing_writers_.push_back(std::move(*w));
        }
    }
    if (open.empty()) {
        if (done) done();
        return;
    }
    auto remaining = std::make_shared<size_t>(open.size());
    auto finished = std::make_shared<std::function<void()>>(std::move(done));
    for (AsyncFileWriter* w : open) {
        w->close([remaining, finished] {
            if (--*remaining == 0 && *finished) (*finished)();
        });
    }
}

void PicoLink::write_sync_row(const CsvRow& row) {
    if (sync_csv_) {
        sync_csv_->write_row(row);
    } else if (files_opening_ && pending_sync_.size() < kMaxPendingRows) {
        pending_sync_.push_back(row.line());
    }
}

void PicoLink::write_led_row(const CsvRow& row) {
    if (led_csv_) {
        led_csv_->write_row(row);
    } else if (files_opening_ && pending_led_.size() < kMaxPendingRows) {
        pending_led_.push_back(row.line());
    }
}

// ---- status ----

json PicoLink::status() const {
    json fit = nullptr;
    if (fit_.valid()) {
        int64_t now = mono_ns();
        fit = {{"points", fit_.points()},
               {"span_s", static_cast<double>(fit_.span_ns()) / 1e9},
               {"offset_us", fit_.offset_us_at(now)},
               {"drift_ppm", fit_.drift_ppm()},
               {"residual_us", fit_.residual_us()},
               {"rtt_us", last_rtt_us_}};
    }
    std::string state = state_ == State::Ready        ? (healthy_ ? "connected" : "unhealthy")
                        : state_ == State::AwaitHello ? "connecting"
                        : ever_connected_             ? "disconnected"
                                                      : "absent";
    return json{{"device", config_.device},
                {"path", path_.empty() ? json(nullptr) : json(path_)},
                {"state", state},
                {"connected", state_ == State::Ready},
                {"healthy", state_ == State::Ready && healthy_},
                {"firmware", fw_},
                {"board", board_},
                {"boot", boot_},
                {"uid", uid_},
                {"segment", segment_},
                {"fit", fit},
                {"led", led_on_ ? json(*led_on_ ? "on" : "off") : json(nullptr)},
                {"led_pin", config_.led_pin},
                {"led_channel", config_.led_channel},
                {"lines_lost", lines_lost_},
                {"lines_bad", lines_bad_ + splitter_.overlong_lines()},
                {"lines_unknown", lines_unknown_},
                {"lines_out_of_order", lines_out_of_order_},
                {"replies_unmatched", replies_unmatched_},
                {"exchanges", exchanges_},
                {"pongs_missing", pongs_missing_},
                {"commands_dropped", tx_dropped_},
                {"pico_output_drops", pico_drop_},
                {"pico_errors", pico_errors_},
                {"connects", connects_},
                {"last_error", last_error_}};
}

json PicoLink::session_info() const {
    json segments = json::array();
    for (const auto& s : segments_) {
        segments.push_back({{"segment", s.number}, {"boot", s.boot}, {"firmware", s.fw}, {"first_mono_ns", s.first_mono_ns}});
    }
    return json{{"device", config_.device},
                {"path", path_},
                {"led_pin", config_.led_pin},
                {"led_channel", config_.led_channel},
                {"board", board_},
                {"uid", uid_},
                {"segments", segments},
                {"trial_code",
                 {{"bits", psync::kTrialCodeBits},
                  {"bit_ms", config_.code_bit_ms},
                  {"pattern", "1110, trial number in 16 bits, 1010; MSB first, LED on for 1; starts at the trial's start instant"}}},
                {"files", {{"sync", "pico/sync.csv"}, {"led", "pico/led.csv"}}}};
}

// ---- emulator ----

std::vector<std::string> PicoLink::emulator_args(const std::string& executable) const {
    const PicoEmulatorConfig& e = config_.emulator;
    std::vector<std::string> args = {executable,
                                     "--link", link_path_,
                                     "--offset-us", std::to_string(e.offset_us),
                                     "--skew-ppm", fixed(e.skew_ppm, 6),
                                     "--latency-us", fixed(e.latency_us, 3),
                                     "--jitter-us", fixed(e.jitter_us, 3),
                                     "--jitter-dist", e.jitter_dist,
                                     "--loss", fixed(e.loss, 6)};
    if (e.split) args.push_back("--split");
    if (e.crlf) args.push_back("--crlf");
    if (e.seed) args.insert(args.end(), {"--seed", std::to_string(*e.seed)});
    auto seconds = [&args](const char* flag, const std::optional<double>& v) {
        if (v) args.insert(args.end(), {flag, fixed(*v, 3)});
    };
    seconds("--reboot-after", e.reboot_after_s);
    seconds("--repl-after", e.repl_after_s);
    seconds("--unplug-after", e.unplug_after_s);
    seconds("--replug-after", e.replug_after_s);
    if (!e.truth_log.empty()) args.insert(args.end(), {"--log", e.truth_log});
    return args;
}

void PicoLink::spawn_emulator() {
    if (stopping_) return;
    // A link left by an earlier run could point at someone else's terminal by now.
    ::unlink(link_path_.c_str());
    emulator_announced_ = false;
    std::string exe = config_.emulator.executable.empty() ? find_module_executable("pico-emulator")
                                                          : config_.emulator.executable;
    emulator_ = std::make_unique<uv::Process>(loop_);
    emulator_out_ = std::make_unique<uv::Stream>(loop_);
    emulator_err_ = std::make_unique<uv::Stream>(loop_);
    emulator_out_lines_ = LineFramer(4096);
    emulator_err_lines_ = LineFramer(4096);
    uv::ProcessOptions options;
    options.file = exe;
    options.args = emulator_args(exe);
    options.stdout_pipe = emulator_out_.get();
    options.stderr_pipe = emulator_err_.get();
    options.detached = true;  // Ctrl-C on the terminal reaches the supervisor only
    try {
        emulator_->spawn(options, [this](int64_t status, int signal) { on_emulator_exit(status, signal); });
    } catch (const uv::Error& e) {
        last_error_ = e.what();
        log("error", std::string("Pico W emulator: ") + e.what() + "; trying again in 2 s");
        event("pico_emulator_error", e.what());
        emulator_timer_.start(kEmulatorRestartMs, 0, [this] { spawn_emulator(); });
        return;
    }
    std::string command;
    for (const auto& a : options.args) command += (command.empty() ? "" : " ") + a;
    log("info", "Pico W emulator started (pid " + std::to_string(emulator_->pid()) + "): " + command);
    emulator_out_->start_read(
        [this](std::string_view chunk) {
            emulator_out_lines_.feed(
                chunk,
                [this](std::string_view line) {
                    // "PTY /dev/pts/N": a (re)plugged pseudo-terminal behind the link.
                    if (line.rfind("PTY ", 0) != 0) return;
                    emulator_announced_ = true;
                    log("debug", "Pico W emulator: " + std::string(line));
                    if (fd_ < 0 && !stopping_) {
                        retry_ms_ = kRetryFirstMs;
                        schedule_reopen(20);
                    }
                },
                [](size_t) {});
        },
        [](int) {});
    emulator_err_->start_read(
        [this](std::string_view chunk) {
            emulator_err_lines_.feed(
                chunk, [this](std::string_view line) { log("info", "Pico W emulator: " + std::string(line)); },
                [](size_t) {});
        },
        [](int) {});
}

void PicoLink::on_emulator_exit(int64_t status, int signal) {
    emulator_announced_ = false;
    if (stopping_) {
        emulator_timer_.stop();
        return;
    }
    std::string why = signal != 0 ? "signal " + std::to_string(signal) : "status " + std::to_string(status);
    log("warning", "Pico W emulator exited (" + why + "); starting it again in 2 s");
    event("pico_emulator_exit", why);
    emulator_timer_.start(kEmulatorRestartMs, 0, [this] { spawn_emulator(); });
}

}  // namespace pilogger

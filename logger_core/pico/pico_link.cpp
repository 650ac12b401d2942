#include "pico_link.hpp"

#include "clock.hpp"

namespace pilogger {

namespace {
constexpr uint64_t kTickMs = 250;
}  // namespace

PicoLink::PicoLink(uv::Loop& loop, PicoConfig config, Callbacks callbacks)
    : config_(std::move(config)),
      report_(std::move(callbacks)),
      files_(loop, report_),
      serial_(loop, report_,
              PicoSerial::Callbacks{[this](std::string_view chunk, int64_t t4_ns) { session_.on_data(chunk, t4_ns); },
                                    [this](const std::string& why) { hang_up(why); }, [this] { try_open(); }}),
      clock_(loop, config_, serial_, files_, report_, [this] { led_.fit_grew(); }),
      led_(loop, config_, clock_.fit(), files_, report_,
           PicoLed::Callbacks{[this] { return session_.ready(); },
                              [this](const std::string& cmd_id, std::string text) {
                                  session_.send_command(cmd_id, std::move(text));
                              }}),
      session_(config_, serial_, clock_, led_, report_,
               [this] {
                   serial_.reset_backoff();
                   last_error_.clear();
               }),
      tick_timer_(loop) {}

PicoLink::~PicoLink() = default;

// ---- life cycle ----

void PicoLink::start() {
    if (started_) return;
    started_ = true;
    stopping_ = false;
    started_mono_ns_ = mono_ns();
    tick_timer_.start(kTickMs, kTickMs, [this] { session_.tick(); });
    // A device source says when its device is there (device_appeared).
    if (!device_source_) try_open();
}

void PicoLink::device_appeared() {
    if (started_ && !serial_.is_open() && !stopping_) serial_.retry_soon();
}

bool PicoLink::settling() const {
    if (!started_ || stopping_) return false;
    if (session_.ready() && clock_.fit().points() >= 2) return false;
    // Not there at all (nothing to open): nothing to wait for.
    if (!serial_.is_open() && warned_absent_ && !device_source_) return false;
    return mono_ns() - started_mono_ns_ < 5'000'000'000;
}

void PicoLink::stop() {
    if (stopping_) return;
    stopping_ = true;
    serial_.stop_retrying();
    tick_timer_.stop();
    clock_.stop();
    led_.stop();
    // Leave the LED dark. By now the last trial's stop instant has passed.
    if (session_.ready()) session_.send_command("quit", psync::stop("quit", config_.led_channel));
    close_port();
}

// ---- the port ----

std::string PicoLink::resolve_device(std::string* why) const {
    if (device_source_) return device_source_(why);
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
    if (stopping_ || serial_.is_open()) return;
    std::string why;
    std::string path = resolve_device(&why);
    if (path.empty()) return open_failed(why);
    if (std::string error = serial_.open(path); !error.empty()) return open_failed(error);
    session_.opened();
}

void PicoLink::open_failed(const std::string& why) {
    last_error_ = why;
    if (!warned_absent_) {
        warned_absent_ = true;
        report_.log("warning", "Pico W not available: " + why + "; recording goes on without it, and the link keeps trying");
        report_.event("pico_absent", why);
    } else {
        report_.log("debug", "Pico W: " + why);
    }
    serial_.retry_after_failure();
}

void PicoLink::hang_up(const std::string& why) {
    bool was_ready = session_.ready();
    close_port();
    last_error_ = serial_.path() + ": " + why;
    if (was_ready) {
        report_.log("warning", "Pico W disconnected (" + last_error_ + "); recording goes on, reconnecting in the background");
        report_.event("pico_disconnected", last_error_);
    } else {
        report_.log("debug", "Pico W: " + last_error_);
    }
    warned_absent_ = true;  // the retries stay quiet
    serial_.retry_after_hang_up();
}

void PicoLink::close_port() {
    clock_.stop();
    serial_.close();
    session_.closed();
}

// ---- trials and session files ----

void PicoLink::trial_started(int trial, int64_t start_at_mono_ns) { led_.trial_started(trial, start_at_mono_ns); }

void PicoLink::trial_stopped(int trial, int64_t stop_at_mono_ns) { led_.trial_stopped(trial, stop_at_mono_ns); }

void PicoLink::open_session(const std::string& session_dir) { files_.open(session_dir); }

void PicoLink::close_session(std::function<void()> done) {
    led_.after_last_edge([this, done = std::move(done)] {
        led_.write_waiting();
        files_.close(done);
    });
}

// ---- status ----

json PicoLink::status() const {
    json fit = nullptr;
    if (clock_.fit().valid()) {
        int64_t now = mono_ns();
        fit = {{"points", clock_.fit().points()},
               {"span_s", static_cast<double>(clock_.fit().span_ns()) / 1e9},
               {"offset_us", clock_.fit().offset_us_at(now)},
               {"drift_ppm", clock_.fit().drift_ppm()},
               {"residual_us", clock_.fit().residual_us()},
               {"rtt_us", clock_.last_rtt_us()}};
    }
    // The session's fields, and the link's own (json objects keep their keys sorted).
    json out = session_.status();
    out["device"] = config_.device;
    out["path"] = serial_.path().empty() ? json(nullptr) : json(serial_.path());
    out["fit"] = fit;
    out["led"] = led_.on() ? json(*led_.on() ? "on" : "off") : json(nullptr);
    out["led_pin"] = config_.led_pin;
    out["led_channel"] = config_.led_channel;
    out["exchanges"] = clock_.exchanges();
    out["pongs_missing"] = clock_.pongs_missing();
    out["commands_dropped"] = serial_.dropped();
    out["last_error"] = last_error_;
    return out;
}

json PicoLink::session_info() const {
    return json{{"device", config_.device},
                {"path", serial_.path()},
                {"led_pin", config_.led_pin},
                {"led_channel", config_.led_channel},
                {"board", session_.board()},
                {"uid", session_.uid()},
                {"segments", session_.segments()},
                {"trial_code",
                 {{"bits", psync::kTrialCodeBits},
                  {"bit_ms", config_.code_bit_ms},
                  {"pattern", "1110, trial number in 16 bits, 1010; MSB first, LED on for 1; starts at the trial's start instant"}}},
                {"files", {{"sync", "pico/sync.csv"}, {"led", "pico/led.csv"}}}};
}

}  // namespace pilogger

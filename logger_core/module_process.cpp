#include "module_process.hpp"

#include "clock.hpp"
#include "paths.hpp"

#include <csignal>

namespace pilogger {

namespace {
constexpr int kMaxConsecutiveAckTimeouts = 3;
// A hello must come soon after spawn: the runtime sends it before any module set-up.
constexpr int64_t kHelloGraceMs = 2000;
}  // namespace

const char* to_string(ModuleProcess::State state) {
    switch (state) {
        case ModuleProcess::State::Disabled: return "disabled";
        case ModuleProcess::State::Starting: return "starting";
        case ModuleProcess::State::Configuring: return "starting";
        case ModuleProcess::State::Ready: return "ready";
        case ModuleProcess::State::Recording: return "recording";
        case ModuleProcess::State::Stopping: return "stopping";
        case ModuleProcess::State::Restarting: return "restarting";
        case ModuleProcess::State::Error: return "error";
        case ModuleProcess::State::Exited: return "exited";
    }
    return "unknown";
}

json CommandResult::to_json() const {
    if (ok) return json{{"ok", true}, {"result", result}};
    return json{{"ok", false}, {"error", {{"code", code}, {"message", message}}}};
}

ModuleProcess::ModuleProcess(uv::Loop& loop, ModuleHost& host, ModuleConfig config,
                             const SupervisorSettings& settings)
    : loop_(loop),
      host_(host),
      config_(std::move(config)),
      settings_(settings),
      restart_timer_(loop),
      stop_timer_(loop),
      enabled_(config_.enabled),
      backoff_ms_(settings.restart_backoff_initial_ms) {
    executable_ = config_.executable.empty() ? find_module_executable(config_.type) : config_.executable;
}

ModuleProcess::~ModuleProcess() {
    // Never leave an orphan behind: the owner normally stopped us gracefully already.
    if (process_ && process_->running()) process_->kill(SIGKILL);
    fail_pending(errc::kUnavailable, "the supervisor is closing");
}

bool ModuleProcess::has_capability(const std::string& capability) const {
    for (const auto& c : hello_.value("capabilities", json::array())) {
        if (c == capability) return true;
    }
    return false;
}

bool ModuleProcess::connected() const {
    return process_ && process_->running() && !hello_.is_null() &&
           (state_ == State::Configuring || state_ == State::Ready || state_ == State::Recording);
}

void ModuleProcess::set_state(State s) {
    if (s == state_) return;
    state_ = s;
    host_.module_state_changed(*this);
}

void ModuleProcess::set_error(const std::string& message) { last_error_ = message; }

void ModuleProcess::start() {
    if (!enabled_) {
        set_state(State::Disabled);
        return;
    }
    spawn();
}

void ModuleProcess::spawn() {
    stopping_ = false;
    hello_ = json();
    last_stats_ = json::object();
    stdout_framer_ = LineFramer();
    stderr_framer_ = LineFramer(64 * 1024);
    process_ = std::make_unique<uv::Process>(loop_);
    stdin_ = std::make_unique<uv::Stream>(loop_);
    stdout_ = std::make_unique<uv::Stream>(loop_);
    stderr_ = std::make_unique<uv::Stream>(loop_);

    uv::ProcessOptions options;
    options.file = executable_;
    options.args = {executable_, "--supervised", "--name", config_.name};
    options.stdin_pipe = stdin_.get();
    options.stdout_pipe = stdout_.get();
    options.stderr_pipe = stderr_.get();
    options.detached = true;  // Ctrl-C on the terminal reaches the supervisor only
    // A supervisor killed outright: the module closes its files and exits (see ModuleRuntime).
    options.parent_death_signal = SIGTERM;
    spawned_mono_ns_ = mono_ns();
    last_seen_mono_ns_ = spawned_mono_ns_;
    try {
        process_->spawn(options, [this](int64_t status, int sig) { on_exit(status, sig); });
    } catch (const uv::Error& e) {
        last_error_ = std::string(e.what()) + " (module " + config_.name + ")";
        host_.module_incident(*this, "module_error", last_error_);
        process_.reset();
        set_state(State::Error);
        schedule_restart("could not start");
        return;
    }
    set_state(State::Starting);
    host_.module_incident(*this, "module_start", "pid " + std::to_string(process_->pid()) + ", " + executable_);
    stdout_->start_read([this](std::string_view chunk) { on_stdout(chunk); }, [](int) {});
    stderr_->start_read(
        [this](std::string_view chunk) {
            stderr_framer_.feed(
                chunk, [this](std::string_view line) { host_.module_stderr(*this, line); },
                [this](size_t n) {
                    host_.module_stderr(*this, "[pilogger: dropped an over-long stderr line of " +
                                                   std::to_string(n) + " bytes]");
                });
        },
        [](int) {});
}

void ModuleProcess::on_stdout(std::string_view chunk) {
    last_seen_mono_ns_ = mono_ns();
    stdout_framer_.feed(
        chunk, [this](std::string_view line) { on_line(line); },
        [this](size_t n) {
            ++bad_lines_;
            host_.module_incident(*this, "module_protocol_error",
                                  "dropped an over-long line of " + std::to_string(n) + " bytes");
        });
}

void ModuleProcess::on_line(std::string_view line) {
    Message m = parse_message(line);
    switch (m.kind) {
        case Message::Kind::Reply: {
            auto it = m.id ? pending_.find(*m.id) : pending_.end();
            if (it == pending_.end()) {
                // An answer after its timeout, or an id we never sent: note it and move on.
                ++bad_lines_;
                return;
            }
            Pending p = std::move(it->second);
            pending_.erase(it);
            consecutive_ack_timeouts_ = 0;
            CommandResult r;
            r.ok = m.body["ok"].get<bool>();
            if (r.ok) {
                r.result = m.body.value("result", json::object());
            } else {
                json err = m.body.value("error", json::object());
                if (!err.is_object()) err = json::object();
                r.code = err.value("code", "error");
                r.message = err.value("message", "");
            }
            p.cb(r);
            return;
        }
        case Message::Kind::Event:
            if (m.name == "hello") {
                if (m.body.value("protocol", 0) != kProtocolVersion) {
                    last_error_ = "speaks protocol " + m.body.value("protocol", json()).dump() + ", expected " +
                                  std::to_string(kProtocolVersion);
                    host_.module_incident(*this, "module_error", last_error_);
                    kill_hung("wrong protocol version");
                    return;
                }
                hello_ = m.body;
                set_state(State::Configuring);
                host_.module_hello(*this);
                return;
            }
            if (m.name == "stats") last_stats_ = m.body;
            if (m.name == "error") last_error_ = m.body.value("message", "");
            host_.module_event(*this, m);
            return;
        case Message::Kind::Command:
        case Message::Kind::Invalid:
            ++bad_lines_;
            host_.module_incident(*this, "module_protocol_error",
                                  m.problem.empty() ? "unexpected command from module" : m.problem);
            return;
    }
}

void ModuleProcess::send(const std::string& cmd, const json& args, ResultCallback cb, int64_t timeout_ms) {
    if (!process_ || !process_->running() || hello_.is_null() || stopping_) {
        cb(CommandResult::failure(errc::kUnavailable, config_.name + " is " + to_string(state_)));
        return;
    }
    int64_t id = next_id_++;
    if (timeout_ms <= 0) timeout_ms = settings_.ack_timeout_ms;
    if (!stdin_->write(make_command(id, cmd, args) + "\n")) {
        cb(CommandResult::failure(errc::kUnavailable, config_.name + ": cannot write to the module"));
        return;
    }
    pending_[id] = Pending{cmd, mono_ns() + timeout_ms * 1'000'000, std::move(cb)};
}

void ModuleProcess::fail_pending(const std::string& code, const std::string& message) {
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& [id, p] : pending) p.cb(CommandResult::failure(code, message));
}

void ModuleProcess::tick(int64_t now) {
    // ACK deadlines.
    std::vector<Pending> expired;
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second.deadline_mono_ns <= now) {
            expired.push_back(std::move(it->second));
            it = pending_.erase(it);
        } else {
            ++it;
        }
    }
    for (auto& p : expired) {
        ++consecutive_ack_timeouts_;
        host_.module_incident(*this, "ack_timeout", "no answer to " + p.cmd);
        p.cb(CommandResult::failure(errc::kTimeout, config_.name + " did not answer " + p.cmd + " in time"));
    }
    if (!process_ || !process_->running() || stopping_) return;

    int64_t silent_ms = (now - last_seen_mono_ns_) / 1'000'000;
    if (state_ == State::Starting && silent_ms > settings_.heartbeat_timeout_ms + kHelloGraceMs) {
        kill_hung("no hello within " + std::to_string(silent_ms) + " ms of starting");
    } else if (state_ != State::Starting && silent_ms > settings_.heartbeat_timeout_ms) {
        kill_hung("no heartbeat for " + std::to_string(silent_ms) + " ms");
    } else if (consecutive_ack_timeouts_ >= kMaxConsecutiveAckTimeouts) {
        kill_hung(std::to_string(consecutive_ack_timeouts_) + " commands in a row went unanswered");
    }
}

void ModuleProcess::kill_hung(const std::string& why) {
    if (!process_ || !process_->running() || stopping_) return;
    last_error_ = "hung: " + why;
    host_.module_incident(*this, "module_hung", why);
    consecutive_ack_timeouts_ = 0;
    // A hung process may not handle SIGTERM (or may be stopped): SIGKILL, then restart on exit.
    process_->kill(SIGKILL);
}

void ModuleProcess::on_exit(int64_t status, int signal) {
    std::string how = signal != 0 ? "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")"
                                  : "exit status " + std::to_string(status);
    fail_pending(errc::kUnavailable, config_.name + " exited (" + how + ")");
    stop_timer_.stop();
    stdin_.reset();
    if (stopping_) {
        host_.module_incident(*this, "module_exit", how);
        stopping_ = false;
        set_state(enabled_ ? State::Exited : State::Disabled);
        auto callbacks = std::move(on_stopped_);
        on_stopped_.clear();
        for (auto& cb : callbacks) cb();
        if (restart_after_stop_) {
            restart_after_stop_ = false;
            ++restarts_;
            spawn();
        }
        return;
    }
    last_error_ = "crashed: " + how;
    host_.module_incident(*this, "module_crash", how);
    schedule_restart(how);
}

void ModuleProcess::schedule_restart(const std::string& why) {
    if (!enabled_) {
        set_state(State::Disabled);
        return;
    }
    // A module that ran healthy for a while starts its back-off from the beginning again.
    int64_t ran_ms = (mono_ns() - spawned_mono_ns_) / 1'000'000;
    if (ran_ms >= settings_.restart_healthy_reset_s * 1000) backoff_ms_ = settings_.restart_backoff_initial_ms;
    int64_t delay = backoff_ms_;
    backoff_ms_ = std::min(backoff_ms_ * 2, settings_.restart_backoff_max_ms);
    set_state(State::Restarting);
    host_.module_incident(*this, "module_restart_scheduled",
                          "in " + std::to_string(delay) + " ms after: " + why);
    restart_timer_.start(static_cast<uint64_t>(delay), 0, [this] {
        ++restarts_;
        host_.module_incident(*this, "module_restart", "restart " + std::to_string(restarts_));
        spawn();
    });
}

void ModuleProcess::stop(std::function<void()> done) {
    restart_timer_.stop();
    if (!process_ || !process_->running()) {
        if (state_ == State::Restarting || state_ == State::Error || state_ == State::Starting) {
            set_state(enabled_ ? State::Exited : State::Disabled);
        }
        if (done) done();
        return;
    }
    if (done) on_stopped_.push_back(std::move(done));
    if (stopping_) return;
    stopping_ = true;
    set_state(State::Stopping);
    if (!hello_.is_null()) {
        int64_t id = next_id_++;
        stdin_->write(make_command(id, "shutdown", json::object()) + "\n");
    }
    // EOF on stdin means the same to the runtime, and reaches a module that never said hello.
    stdin_.reset();
    stop_timer_.start(static_cast<uint64_t>(settings_.shutdown_timeout_ms), 0, [this] {
        host_.module_incident(*this, "module_stop_escalation", "no exit after the shutdown command: SIGTERM");
        process_->kill(SIGTERM);
        stop_timer_.start(static_cast<uint64_t>(settings_.terminate_timeout_ms), 0, [this] {
            host_.module_incident(*this, "module_stop_escalation", "no exit after SIGTERM: SIGKILL");
            process_->kill(SIGKILL);
        });
    });
}

void ModuleProcess::enable() {
    if (enabled_ && state_ != State::Disabled && state_ != State::Exited) return;
    enabled_ = true;
    backoff_ms_ = settings_.restart_backoff_initial_ms;
    spawn();
}

void ModuleProcess::disable(std::function<void()> done) {
    enabled_ = false;
    stop([this, done = std::move(done)] {
        set_state(State::Disabled);
        if (done) done();
    });
}

void ModuleProcess::restart(const std::string& why) {
    host_.module_incident(*this, "module_restart_requested", why);
    enabled_ = true;
    if (!process_ || !process_->running()) {
        restart_timer_.stop();
        ++restarts_;
        spawn();
        return;
    }
    restart_after_stop_ = true;
    stop(nullptr);
}

json ModuleProcess::status() const {
    json s{{"name", config_.name},
           {"type", config_.type},
           {"enabled", enabled_},
           {"state", to_string(state_)},
           {"pid", pid()},
           {"restarts", restarts_},
           {"last_error", last_error_},
           {"bad_lines", bad_lines_},
           {"stats", last_stats_}};
    if (!hello_.is_null()) {
        s["version"] = hello_.value("version", "");
        s["capabilities"] = hello_.value("capabilities", json::array());
    }
    return s;
}

}  // namespace pilogger

#include "module_process.hpp"

#include "clock.hpp"
#include "paths.hpp"

#include <csignal>

namespace pilogger {

namespace {
constexpr int kMaxConsecutiveAckTimeouts = 3;
// A hello must come soon after spawn: the runtime sends it before any module set-up.
constexpr int64_t kHelloGraceMs = 2000;
// What one module may make the supervisor read per 100 ms window (10,000 lines/s, 10 MiB/s of
// protocol; 1.25 MiB/s of log). Past it, reading pauses until the window ends.
constexpr int64_t kReadWindowNs = 100'000'000;
constexpr uint64_t kStdoutLinesPerWindow = 1000;
constexpr uint64_t kStdoutBytesPerWindow = 1024 * 1024;
constexpr uint64_t kStderrBytesPerWindow = 128 * 1024;
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
      stdout_resume_timer_(loop),
      stderr_resume_timer_(loop),
      stdout_budget_(kReadWindowNs, kStdoutLinesPerWindow, kStdoutBytesPerWindow),
      stderr_budget_(kReadWindowNs, UINT64_MAX, kStderrBytesPerWindow),
      incident_limit_(5, 20),
      message_limit_(20, 100),
      stats_limit_(20, 40),
      enabled_(config_.enabled),
      backoff_ms_(settings.restart_backoff_initial_ms) {
    executable_ = config_.executable.empty() ? find_module_executable(config_.type) : config_.executable;
}

ModuleProcess::~ModuleProcess() {
    // Never leave an orphan behind (child_ kills and reaps one still running): the owner
    // normally stopped us gracefully already.
    fail_pending(errc::kUnavailable, "the supervisor is closing");
}

bool ModuleProcess::has_capability(const std::string& capability) const {
    for (const auto& c : hello_.capabilities) {
        if (c == capability) return true;
    }
    return false;
}

bool ModuleProcess::connected() const {
    return child_ && child_->running() && said_hello_ &&
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
    hello_ = ModuleHello{};
    said_hello_ = false;
    last_stats_ = json::object();
    stdout_resume_timer_.stop();
    stderr_resume_timer_.stop();
    stdout_framer_ = LineFramer();
    stdout_held_.clear();
    ++spawn_generation_;
    stderr_framer_ = LineFramer(64 * 1024);
    child_ = std::make_unique<ChildProcess>(loop_);

    ChildProcess::Options options;
    options.file = executable_;
    options.args = {executable_, "--supervised", "--name", config_.name};
    options.with_stdin = true;
    options.detached = true;  // Ctrl-C on the terminal reaches the supervisor only
    // A supervisor killed outright: the module closes its files and exits (see ModuleRuntime).
    options.parent_death_signal = SIGTERM;
    spawned_mono_ns_ = mono_ns();
    last_seen_mono_ns_ = spawned_mono_ns_;
    // Both outputs come raw: the read budgets below frame and pace them.
    ChildProcess::Output out;
    out.on_chunk = [this](std::string_view chunk) { on_stdout(chunk); };
    ChildProcess::Output err;
    err.on_chunk = [this](std::string_view chunk) { on_stderr(chunk); };
    try {
        child_->spawn(options, std::move(out), std::move(err), [this](int64_t status, int sig) { on_exit(status, sig); });
    } catch (const uv::Error& e) {
        last_error_ = std::string(e.what()) + " (module " + config_.name + ")";
        host_.module_incident(*this, "module_error", last_error_);
        child_.reset();
        set_state(State::Error);
        schedule_restart("could not start");
        return;
    }
    set_state(State::Starting);
    host_.module_incident(*this, "module_start", "pid " + std::to_string(child_->pid()) + ", " + executable_);
}

void ModuleProcess::pause_stderr_if_over_budget() {
    int64_t now = mono_ns();
    if (!stderr_budget_.exhausted(now) || stderr_resume_timer_.active()) return;
    child_->pause_stderr();
    uint64_t wait_ms = static_cast<uint64_t>(stderr_budget_.remaining_ns(now) / 1'000'000 + 1);
    stderr_resume_timer_.start(wait_ms, 0, [this] {
        if (child_) child_->resume_stderr();
    });
}

void ModuleProcess::on_stdout(std::string_view chunk) {
    last_seen_mono_ns_ = mono_ns();
    const uint64_t generation = spawn_generation_;
    size_t used = feed_stdout(chunk);
    // The handlers may have killed and replaced the process (and its pipes).
    if (!child_ || generation != spawn_generation_) return;
    // A read holds up to 64 KiB: its lines past the budget wait, and so does the pipe.
    if (used < chunk.size()) stdout_held_.assign(chunk.substr(used));
    if (!stdout_held_.empty() || stdout_budget_.exhausted(mono_ns())) pause_stdout();
}

size_t ModuleProcess::feed_stdout(std::string_view chunk) {
    const int64_t now = mono_ns();
    uint64_t lines = 0;
    size_t used = stdout_framer_.feed(
        chunk,
        [this, &lines](std::string_view line) {
            ++lines;
            on_line(line);
        },
        [this, &lines](size_t n) {
            ++lines;
            protocol_error("dropped an over-long line of " + std::to_string(n) + " bytes (limit " +
                           std::to_string(kDefaultMaxLineBytes) + ")");
        },
        static_cast<size_t>(stdout_budget_.lines_left(now)));
    stdout_budget_.add(now, lines, used);
    return used;
}

void ModuleProcess::pause_stdout() {
    child_->pause_stdout();
    if (stdout_resume_timer_.active()) return;
    uint64_t wait_ms = static_cast<uint64_t>(stdout_budget_.remaining_ns(mono_ns()) / 1'000'000 + 1);
    stdout_resume_timer_.start(wait_ms, 0, [this] { resume_stdout(); });
}

void ModuleProcess::resume_stdout() {
    if (!child_) return;
    if (!stdout_held_.empty()) {
        const uint64_t generation = spawn_generation_;
        std::string held = std::move(stdout_held_);
        stdout_held_.clear();
        size_t used = feed_stdout(held);
        if (!child_ || generation != spawn_generation_) return;
        if (used < held.size()) stdout_held_ = held.substr(used);
    }
    if (!stdout_held_.empty() || stdout_budget_.exhausted(mono_ns())) return pause_stdout();
    child_->resume_stdout();
}

void ModuleProcess::on_stderr(std::string_view chunk) {
    stderr_framer_.feed(
        chunk, [this](std::string_view line) { host_.module_stderr(*this, line); },
        [this](size_t n) {
            host_.module_stderr(*this, "[pilogger: dropped an over-long stderr line of " + std::to_string(n) + " bytes]");
        });
    stderr_budget_.add(mono_ns(), 0, chunk.size());
    if (child_) pause_stderr_if_over_budget();
}

void ModuleProcess::protocol_error(const std::string& problem, const std::string& field) {
    ++bad_lines_;
    if (!incident_limit_.allow(mono_ns())) return;
    host_.module_incident(*this, "module_protocol_error", field.empty() ? problem : problem + " (field " + field + ")");
}

void ModuleProcess::on_line(std::string_view line) {
    // The barrier: whatever a module prints, the supervisor goes on. An exception here would be
    // our bug; the module is restarted rather than trusted to be in step.
    try {
        handle_line(read_module_line(line));
    } catch (const std::exception& e) {
        ++bad_lines_;
        host_.module_incident(*this, "module_protocol_error", std::string("internal error handling its line: ") + e.what());
        kill_hung("its output could not be handled");
    }
}

void ModuleProcess::handle_line(ModuleLine&& line) {
    const int64_t now = mono_ns();
    switch (line.kind) {
        case ModuleLine::Kind::Invalid:
            // A broken answer still answers its command, as a failure naming the field.
            if (line.id) {
                if (auto it = pending_.find(*line.id); it != pending_.end()) {
                    Pending p = std::move(it->second);
                    pending_.erase(it);
                    p.cb(CommandResult::failure(errc::kInternal, config_.name + " sent a malformed answer to " +
                                                                     p.cmd + ": " + line.problem));
                }
            }
            protocol_error(line.problem, line.field);
            return;
        case ModuleLine::Kind::Reply:
            handle_reply(std::move(line.reply));
            return;
        case ModuleLine::Kind::Hello:
            handle_hello(std::move(line.hello));
            return;
        case ModuleLine::Kind::Event:
            break;
    }
    ModuleEvent& event = line.event;
    if (event.name == "stats") {
        last_stats_ = event.body;
        if (!stats_limit_.allow(now)) {
            ++lines_suppressed_;
            return;
        }
    } else if (!message_limit_.allow(now)) {
        ++lines_suppressed_;
        return;
    }
    if (event.name == "error") last_error_ = event.message;
    host_.module_event(*this, event);
}

void ModuleProcess::handle_reply(ModuleReply&& reply) {
    auto it = pending_.find(reply.id);
    if (it == pending_.end()) {
        // An answer after its timeout, or an id we never sent: counted, not acted on.
        protocol_error("an answer to id " + std::to_string(reply.id) + ", which is not waiting for one", "id");
        return;
    }
    Pending p = std::move(it->second);
    pending_.erase(it);
    consecutive_ack_timeouts_ = 0;
    CommandResult r;
    r.ok = reply.ok;
    r.result = std::move(reply.result);
    r.code = std::move(reply.code);
    r.message = std::move(reply.message);
    p.cb(r);
}

void ModuleProcess::handle_hello(ModuleHello&& hello) {
    if (said_hello_) {
        protocol_error("a second hello from the same process", "event");
        return;
    }
    if (hello.protocol != kProtocolVersion) {
        last_error_ = "speaks protocol " + std::to_string(hello.protocol) + ", expected " + std::to_string(kProtocolVersion);
        host_.module_incident(*this, "module_error", last_error_);
        kill_hung("wrong protocol version");
        return;
    }
    hello_ = std::move(hello);
    said_hello_ = true;
    set_state(State::Configuring);
    host_.module_hello(*this);
}

void ModuleProcess::report_suppressed() {
    uint64_t protocol = incident_limit_.take_suppressed();
    uint64_t events = lines_suppressed_;
    lines_suppressed_ = 0;
    if (protocol == 0 && events == 0) return;
    host_.module_incident(*this, "module_flood",
                          std::to_string(events) + " events over the rate limits and " + std::to_string(protocol) +
                              " more protocol errors not recorded one by one");
}

void ModuleProcess::send(const std::string& cmd, const json& args, ResultCallback cb, int64_t timeout_ms) {
    if (!child_ || !child_->running() || !said_hello_ || stopping_) {
        cb(CommandResult::failure(errc::kUnavailable, config_.name + " is " + to_string(state_)));
        return;
    }
    int64_t id = next_id_++;
    if (timeout_ms <= 0) timeout_ms = settings_.ack_timeout_ms;
    if (!child_->write(make_command(id, cmd, args) + "\n")) {
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
    if (now - last_suppressed_report_ns_ >= 1'000'000'000) {
        last_suppressed_report_ns_ = now;
        report_suppressed();
    }
    if (!child_ || !child_->running() || stopping_) return;

    // Only a valid hello ends the start: steady stats from a module that never said one do not.
    int64_t starting_ms = (now - spawned_mono_ns_) / 1'000'000;
    int64_t silent_ms = (now - last_seen_mono_ns_) / 1'000'000;
    if (state_ == State::Starting && starting_ms > settings_.heartbeat_timeout_ms + kHelloGraceMs) {
        kill_hung("no valid hello within " + std::to_string(starting_ms) + " ms of starting");
    } else if (state_ != State::Starting && silent_ms > settings_.heartbeat_timeout_ms) {
        kill_hung("no heartbeat for " + std::to_string(silent_ms) + " ms");
    } else if (consecutive_ack_timeouts_ >= kMaxConsecutiveAckTimeouts) {
        kill_hung(std::to_string(consecutive_ack_timeouts_) + " commands in a row went unanswered");
    }
}

void ModuleProcess::excuse_stall(int64_t stall_ns) {
    last_seen_mono_ns_ += stall_ns;
    spawned_mono_ns_ += stall_ns;
    for (auto& [id, p] : pending_) p.deadline_mono_ns += stall_ns;
}

void ModuleProcess::kill_hung(const std::string& why) {
    if (!child_ || !child_->running() || stopping_) return;
    last_error_ = "hung: " + why;
    host_.module_incident(*this, "module_hung", why);
    consecutive_ack_timeouts_ = 0;
    // A hung process may not handle SIGTERM (or may be stopped): SIGKILL, then restart on exit.
    child_->kill(SIGKILL);
}

void ModuleProcess::on_exit(int64_t status, int signal) {
    std::string how = signal != 0 ? "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")"
                                  : "exit status " + std::to_string(status);
    fail_pending(errc::kUnavailable, config_.name + " exited (" + how + ")");
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
    if (!child_ || !child_->running()) {
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
    if (said_hello_) {
        int64_t id = next_id_++;
        child_->write(make_command(id, "shutdown", json::object()) + "\n");
    }
    // The stop closes stdin: EOF means the same to the runtime, and reaches a module that never
    // said hello.
    child_->stop(static_cast<uint64_t>(settings_.shutdown_timeout_ms),
                 static_cast<uint64_t>(settings_.terminate_timeout_ms), [this](int signal) {
                     host_.module_incident(*this, "module_stop_escalation",
                                           signal == SIGTERM ? "no exit after the shutdown command: SIGTERM"
                                                             : "no exit after SIGTERM: SIGKILL");
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
    if (!child_ || !child_->running()) {
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
    if (said_hello_) {
        s["version"] = hello_.version;
        s["capabilities"] = hello_.capabilities;
    }
    return s;
}

}  // namespace pilogger

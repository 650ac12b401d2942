#include "supervisor.hpp"

#include "clock.hpp"
#include "control_request.hpp"
#include "json_read.hpp"
#include "output_queue.hpp"
#include "pico_link.hpp"

#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <csignal>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

namespace pilogger {

namespace {
constexpr size_t kMaxQueuedNotes = 1000;
// A client's commands to a module wait in memory until the module reads them: 40 clients sending
// 200 KB ping arguments were +73 MB. The supervisor's own commands are never held back.
constexpr size_t kMaxModuleCommandBacklog = 1024 * 1024;
// Each note waiting for the notes module is held twice (its arguments and the line to the module):
// 40 clients sending 64 KiB notes as fast as they can were +44 MB.
constexpr size_t kMaxNoteBytesWaiting = 2 * 1024 * 1024;

size_t note_text_bytes(const json& args) {
    const json& text = read::field(args, "text");
    return text.is_string() ? text.get_ref<const std::string&>().size() : 0;
}
constexpr int64_t kTickMs = 250;
// Ticks this far apart mean the loop itself stalled.
constexpr int64_t kStallNs = 1'000'000'000;
// run --record waits this long for the modules to come up before starting the trial anyway.
constexpr int64_t kReadyWaitMs = 15000;
// Configure and start_session may open devices: they get at least this long.
constexpr int64_t kSetupTimeoutMs = 10000;
// Time a module may take to close its files after the stop instant.
constexpr int64_t kStopGraceMs = 5000;
// What modules typically take to close their files after a stop instant (the disk-low stop plans for it).
constexpr double kFileCloseAllowanceS = 1.0;

int level_rank(std::string_view level) {
    if (level == "debug") return 0;
    if (level == "info") return 1;
    if (level == "warning") return 2;
    return 3;
}

json host_info() {
    json host = json::object();
    char name[256] = {0};
    if (gethostname(name, sizeof name - 1) == 0) host["hostname"] = name;
    utsname u{};
    if (uname(&u) == 0) {
        host["kernel"] = std::string(u.sysname) + " " + u.release;
        host["machine"] = u.machine;
    }
    std::ifstream os("/etc/os-release");
    for (std::string line; std::getline(os, line);) {
        if (line.rfind("PRETTY_NAME=", 0) == 0) {
            std::string v = line.substr(12);
            if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
            host["os"] = v;
        }
    }
    return host;
}

json clock_anchor() {
    ClockTriple t = read_clock_triple();
    return json{{"realtime_ns", t.realtime_ns},
                {"monotonic_ns", t.mono_ns},
                {"boottime_ns", t.boottime_ns},
                {"uncertainty_ns", t.uncertainty_ns},
                {"wall_time_utc", format_utc(t.realtime_ns)}};
}

CommandResult ok_result(json result = json::object()) { return CommandResult{true, std::move(result), {}, {}}; }

// A module's status with its capabilities even before its hello: its kind's (the config's, what
// the supervisor goes by), then any the instance added in its hello.
json module_status(const ModuleProcess& module) {
    json s = module.status();
    std::vector<std::string> caps = module.config().capabilities;
    if (module.said_hello()) {
        for (const std::string& c : module.hello().capabilities) {
            if (std::find(caps.begin(), caps.end(), c) == caps.end()) caps.push_back(c);
        }
    }
    s["capabilities"] = caps;
    return s;
}
}  // namespace

Supervisor::Supervisor(uv::Loop& loop, SupervisorOptions options, LogSink log_sink)
    : loop_(loop),
      options_(std::move(options)),
      log_sink_(std::move(log_sink)),
      config_(options_.config),
      tick_timer_(loop),
      disk_timer_(loop),
      duration_timer_(loop),
      sigint_(loop),
      sigterm_(loop),
      sighup_(loop) {}

Supervisor::~Supervisor() { uv::set_fault_handler(nullptr); }

// ---- logging and records ----

void Supervisor::log(std::string_view level, const std::string& message) {
    if (level_rank(level) < level_rank(config_.log_level)) return;
    if (log_sink_) log_sink_(level, message);
    if (session_) session_->log_line("supervisor", wall_time_utc_now() + " " + std::string(level) + " " + message);
}

void Supervisor::record_event(std::string_view event, std::string_view module, const std::string& detail,
                              std::optional<int64_t> at_mono_ns) {
    int64_t at = at_mono_ns.value_or(mono_ns());
    if (session_) session_->event(at, event, module, trial_ ? trial_->number : 0, detail);
    broadcast("supervisor_event", json{{"name", event}, {"module", module}, {"detail", detail}, {"at_mono_ns", at}});
}

void Supervisor::broadcast(std::string_view event, json fields) {
    if (control_) control_->broadcast(make_event(event, std::move(fields)));
}

json Supervisor::session_json() const {
    json modules = json::object();
    for (const auto& e : modules_) {
        json m = module_status(*e.process);
        m.erase("stats");
        modules[e.process->name()] = m;
    }
    json trials = json::array();
    auto add_trial = [&](const Trial& t) {
        trials.push_back(json{{"trial", t.number},
                              {"label", t.label},
                              {"start_at_mono_ns", t.start_at_mono_ns},
                              {"stop_at_mono_ns", t.stop_at_mono_ns == 0 ? json(nullptr) : json(t.stop_at_mono_ns)}});
    };
    for (const auto& t : trials_) add_trial(t);
    if (trial_) add_trial(*trial_);
    return json{{"format", "pilogger-session/1"},
                {"name", session_->name()},
                {"label", session_->label()},
                {"status", session_closing_ ? "closed" : "open"},
                {"started",
                 {{"mono_ns", session_->start_mono_ns()},
                  {"realtime_ns", session_->start_realtime_ns()},
                  {"wall_time_utc", format_utc(session_->start_realtime_ns())}}},
                {"clock_anchors", clock_anchors_},
                {"host", host_},
                {"software", {{"pilogger", PILOGGER_VERSION}, {"libuv", uv_version_string()}}},
                {"config", {{"file", config_.source_file}, {"yaml", options_.config_text}, {"effective", config_.to_json()}}},
                {"modules", modules},
                {"trials", trials},
                {"notes", {{"count", next_note_id_ - 1}, {"undelivered", notes_dropped_}}},
                {"pico", pico_ ? pico_->session_info() : json(nullptr)},
                {"time_base", "mono_ns is CLOCK_MONOTONIC in nanoseconds; clocks.csv maps it to realtime and boottime"}};
}

void Supervisor::rewrite_session_json() {
    if (session_) session_->write_json(session_json());
}

// ---- start and stop ----

void Supervisor::start() {
    started_mono_ns_ = mono_ns();
    host_ = host_info();  // read once, before the loop runs: session.json is rewritten often
    std::string socket = options_.socket_path.empty() ? control_socket_path() : options_.socket_path;
    lock_ = std::make_unique<InstanceLock>(socket + ".lock");
    // A client or module that hangs up while we write to it is an error to handle, not SIGPIPE.
    std::signal(SIGPIPE, SIG_IGN);
    // Our own bug, if it ever happens, is recorded and survived: the recording goes on.
    uv::set_fault_handler([this](std::string_view where, std::string_view what) {
        if (!control_problem_limit_.allow(mono_ns())) return;
        std::string text = "internal error in a " + std::string(where) + " callback: " + std::string(what);
        log("error", text);
        record_event("internal_error", "", text);
    });
    control_ = std::make_unique<ControlServer>(
        loop_, socket, [this](ControlServer::ClientId c, const Message& m) { handle_control(c, m); },
        [this](const std::string& problem) {
            if (!control_problem_limit_.allow(mono_ns())) return;
            log("warning", problem);
            record_event("control_client", "", problem);
        });
    control_->start();

    auto on_signal = [this](int signum) {
        ++signals_seen_;
        if (signals_seen_ == 1) {
            shutdown(signum == SIGINT ? "Ctrl-C" : "SIGTERM");
        } else if (signals_seen_ == 2) {
            log("warning", "still closing files; signal once more to kill the modules at once");
        } else {
            log("error", "forced exit: killing every module now");
            for (auto& e : modules_) {
                if (e.process->pid() > 0) ::kill(e.process->pid(), SIGKILL);
            }
            exit_code_ = 130;
            finish_shutdown();
        }
    };
    sigint_.start(SIGINT, on_signal);
    sigterm_.start(SIGTERM, on_signal);
    // A dropped ssh connection must not end a recording.
    sighup_.start(SIGHUP, [this](int) { log("warning", "SIGHUP ignored: the recording goes on"); });

    tick_timer_.start(kTickMs, kTickMs, [this] { tick(); });
    disk_timer_.start(0, static_cast<uint64_t>(config_.supervisor.disk_check_interval_ms), [this] { check_disk(); });

    for (const auto& mc : config_.modules) {
        modules_.push_back(Entry{std::make_unique<ModuleProcess>(loop_, *this, mc, config_.supervisor), Phase{}});
    }
    log("info", "control socket " + socket);
    if (config_.pico) {
        PicoLink::Callbacks callbacks{[this](std::string_view level, const std::string& m) { log(level, m); },
                                      [this](std::string_view event, const std::string& detail, int64_t at) {
                                          record_event(event, "pico", detail, at);
                                      }};
        pico_ = std::make_unique<PicoLink>(loop_, *config_.pico, socket.substr(0, socket.find_last_of('/')), callbacks);
        // With a session, the link starts once its folder exists, so the first events land in it.
        if (!options_.start_session) pico_->start();
    }

    if (!options_.start_session) {
        start_modules();
        return;
    }
    std::string label = options_.session_label.empty() ? config_.session_label : options_.session_label;
    start_session(label, [this](const CommandResult& r) {
        if (!r.ok) {
            log("error", "cannot start the session: " + r.message);
            exit_code_ = 1;
            shutdown("no session");
            return;
        }
        if (options_.record) {
            waiting_to_record_ = true;
            ready_deadline_mono_ns_ = mono_ns() + kReadyWaitMs * 1'000'000;
        } else if (options_.duration_s > 0) {
            duration_timer_.start(static_cast<uint64_t>(options_.duration_s * 1000), 0,
                                  [this] { shutdown("duration reached"); });
        }
    });
    // Modules start as soon as the session folder exists, so their logs land in it.
}

void Supervisor::start_modules() {
    for (auto& e : modules_) {
        if (e.process->state() == ModuleProcess::State::Disabled && e.process->pid() == 0) e.process->start();
    }
}

void Supervisor::maybe_start_planned_trial() {
    if (!waiting_to_record_ || shutting_down_) return;
    bool all_up = true;
    for (const auto& e : modules_) {
        auto s = e.process->state();
        bool settled = s == ModuleProcess::State::Ready || s == ModuleProcess::State::Recording ||
                       s == ModuleProcess::State::Disabled || s == ModuleProcess::State::Error;
        if (!settled && e.process->enabled()) all_up = false;
    }
    // A Pico that is coming up gets a few seconds, so trial 1 starts with its sync code.
    if (pico_ && pico_->settling()) all_up = false;
    if (!all_up && mono_ns() < ready_deadline_mono_ns_) return;
    if (!all_up) log("warning", "starting the trial before every module is ready; late modules join it");
    waiting_to_record_ = false;
    start_trial(options_.trial_label, [this](const CommandResult& r) {
        if (!r.ok) {
            log("error", "cannot start the trial: " + r.message);
            return;
        }
        if (options_.duration_s > 0 && trial_) {
            int64_t stop_at = trial_->start_at_mono_ns + static_cast<int64_t>(options_.duration_s * 1e9);
            planned_stop_at_ = stop_at;
            int64_t fire_in_ms = (stop_at - mono_ns()) / 1'000'000 - config_.supervisor.trial_start_delay_ms;
            duration_timer_.start(static_cast<uint64_t>(std::max<int64_t>(0, fire_in_ms)), 0,
                                  [this] { shutdown("duration reached"); });
        }
    });
}

void Supervisor::shutdown(const std::string& why) {
    if (shutting_down_) return;
    shutting_down_ = true;
    waiting_to_record_ = false;
    duration_timer_.stop();
    log("info", "shutting down: " + why);
    record_event("shutdown", "", why);

    // Order: the trial ends, modules close their session files, the module processes exit (their
    // last log lines and exits still land in the session), then the session's own files close.
    auto stop_modules = [this](std::function<void()> then) {
        auto remaining = std::make_shared<size_t>(modules_.size() + 1);
        auto one_done = [remaining, then] {
            if (--*remaining == 0) then();
        };
        for (auto& e : modules_) e.process->stop(one_done);
        one_done();
    };
    if (!session_ || session_closing_) {
        stop_modules([this] { finish_shutdown(); });
        return;
    }
    auto leave = [this, stop_modules] {
        leave_session([this, stop_modules](const CommandResult& left) {
            stop_modules([this, left] {
                if (!session_) return finish_shutdown();
                close_session_files(left.result, [this](const CommandResult&) { finish_shutdown(); });
            });
        });
    };
    if (trial_) {
        stop_trial([leave](const CommandResult&) { leave(); }, planned_stop_at_);
    } else {
        leave();
    }
}

void Supervisor::finish_shutdown() {
    if (finished_) return;
    finished_ = true;
    tick_timer_.stop();
    disk_timer_.stop();
    duration_timer_.stop();
    sigint_.close();
    sigterm_.close();
    sighup_.close();
    if (control_) control_->close();
    if (pico_) pico_->stop();
    log("info", "supervisor stopped");
}

// ---- module lifecycle: drive each module to the desired state ----

int Supervisor::want_session() const { return session_ && !session_closing_ ? session_generation_ : 0; }

int Supervisor::want_trial() const { return want_session() != 0 && trial_ ? trial_->number : 0; }

int64_t Supervisor::stop_at_for(int trial) const {
    for (const auto& t : trials_) {
        if (t.number == trial && t.stop_at_mono_ns != 0) return std::max(t.stop_at_mono_ns, mono_ns());
    }
    return mono_ns();
}

Supervisor::Entry* Supervisor::find(const std::string& name) {
    for (auto& e : modules_) {
        if (e.process->name() == name) return &e;
    }
    return nullptr;
}

Supervisor::Entry* Supervisor::entry_of(ModuleProcess& module) { return find(module.name()); }

Supervisor::Entry* Supervisor::notes_module() {
    for (auto& e : modules_) {
        if (e.process->config().has_capability("note") && e.process->enabled()) return &e;
    }
    return nullptr;
}

void Supervisor::unblock_all() {
    for (auto& e : modules_) e.phase.blocked = false;
}

void Supervisor::converge(Entry& entry, const CommandResult& result) {
    auto waiters = std::move(entry.phase.waiters);
    entry.phase.waiters.clear();
    for (auto& w : waiters) w(result);
}

void Supervisor::step_done(Entry& entry, const CommandResult& result, const std::function<void()>& on_ok) {
    Phase& p = entry.phase;
    p.step_in_flight = false;
    if (result.ok) {
        on_ok();
        sync(entry);
        return;
    }
    // A module that did not answer a lifecycle step no longer knows what state it is in:
    // restart it, and it rejoins the session and trial (in a part file) with its next hello.
    if (result.code == errc::kTimeout && !shutting_down_) {
        entry.process->set_error(result.message);
        entry.process->recover(result.message);
    }
    // A dead process gets a fresh phase with its next hello; anything else waits for a change.
    if (result.code != errc::kUnavailable && result.code != errc::kTimeout) {
        p.blocked = true;
        p.last_failure = result;
        entry.process->set_error(result.message);
        record_event("module_error", entry.process->name(), result.message);
        log("error", entry.process->name() + ": " + result.message);
        if (entry.process->state() != ModuleProcess::State::Recording) entry.process->set_state(ModuleProcess::State::Error);
    }
    converge(entry, result);
}

void Supervisor::sync(Entry& entry) {
    ModuleProcess& m = *entry.process;
    Phase& p = entry.phase;
    if (p.step_in_flight) return;
    if (!m.connected()) {
        if (!m.enabled()) {
            converge(entry, ok_result(json{{"skipped", "disabled"}}));
        } else {
            converge(entry, CommandResult::failure("not_ready", m.name() + " is " + to_string(m.state()) +
                                                                    "; it joins when it is up"));
        }
        return;
    }
    if (p.blocked) {
        converge(entry, p.last_failure);
        return;
    }
    if (m.unresponsive()) {
        converge(entry, CommandResult::failure(errc::kTimeout, m.name() + " is not answering commands"));
        return;
    }
    auto run_step = [&](const std::string& cmd, const json& args, int64_t timeout_ms, std::function<void()> on_ok) {
        p.step_in_flight = true;
        std::string name = m.name();
        m.send(cmd, args,
               [this, name, on_ok = std::move(on_ok)](const CommandResult& r) {
                   if (Entry* e = find(name)) step_done(*e, r, on_ok);
               },
               timeout_ms);
    };
    const int session = want_session();
    const int trial = want_trial();

    if (!p.configured) {
        run_step("configure", json{{"settings", m.config().settings}, {"name", m.name()}, {"stats_interval_ms", 500}},
                 std::max<int64_t>(config_.supervisor.ack_timeout_ms, kSetupTimeoutMs), [&p] { p.configured = true; });
        return;
    }
    if (p.trial != 0 && (p.session_generation != session || p.trial != trial)) {
        int64_t stop_at = stop_at_for(p.trial);
        int64_t timeout = config_.supervisor.ack_timeout_ms + (stop_at - mono_ns()) / 1'000'000 + kStopGraceMs;
        run_step("stop_recording", json{{"stop_at_mono_ns", stop_at}}, timeout, [&p, &m] {
            p.trial = 0;
            m.set_state(ModuleProcess::State::Ready);
        });
        return;
    }
    if (p.session_generation != session) {
        if (p.session_generation != 0) {
            run_step("stop_session", json::object(), config_.supervisor.ack_timeout_ms + kStopGraceMs,
                     [&p] { p.session_generation = 0; });
        } else {
            run_step("start_session",
                     json{{"session_dir", session_->dir()},
                          {"session_name", session_->name()},
                          {"session_start_mono_ns", session_->start_mono_ns()}},
                     std::max<int64_t>(config_.supervisor.ack_timeout_ms, kSetupTimeoutMs),
                     [&p, session] { p.session_generation = session; });
        }
        return;
    }
    if (p.trial != trial) {
        int part = p.last_trial_started == trial ? p.part + 1 : 1;
        // Counted when sent: a module may have created its files before failing to answer.
        p.last_trial_started = trial;
        p.part = part;
        int64_t start_at = std::max(trial_->start_at_mono_ns, mono_ns());
        run_step("start_recording",
                 json{{"trial", trial}, {"part", part}, {"label", trial_->label}, {"start_at_mono_ns", start_at}}, 0,
                 [this, &p, &m, trial, part] {
                     p.trial = trial;
                     m.set_state(ModuleProcess::State::Recording);
                     if (part > 1) record_event("module_part", m.name(), "continues trial in part " + std::to_string(part));
                 });
        return;
    }
    m.set_state(p.trial != 0 ? ModuleProcess::State::Recording : ModuleProcess::State::Ready);
    if (&entry == notes_module()) deliver_notes();
    converge(entry, ok_result(json{{"state", to_string(m.state())}}));
}

void Supervisor::sync_all(std::function<void(json results, bool all_ok)> done) {
    auto results = std::make_shared<json>(json::object());
    auto all_ok = std::make_shared<bool>(true);
    auto remaining = std::make_shared<size_t>(modules_.size() + 1);
    auto one_done = [results, all_ok, remaining, done = std::move(done)] {
        if (--*remaining == 0) done(*results, *all_ok);
    };
    for (auto& e : modules_) {
        std::string name = e.process->name();
        e.phase.waiters.push_back([results, all_ok, one_done, name](const CommandResult& r) {
            (*results)[name] = r.to_json();
            if (!r.ok) *all_ok = false;
            one_done();
        });
    }
    // Index loop: a sync can call back into code that looks modules up, never into adding any.
    for (size_t i = 0; i < modules_.size(); ++i) sync(modules_[i]);
    one_done();
}

// ---- operations ----

void Supervisor::start_session(const std::string& label, ResultCallback done) {
    if (shutting_down_) return done(CommandResult::failure(errc::kBadState, "the supervisor is shutting down"));
    if (session_ || session_starting_) {
        return done(CommandResult::failure(errc::kBadState,
                                           "a session is already open" + (session_ ? ": " + session_->dir() : "")));
    }
    session_starting_ = true;
    Session::create(
        loop_, config_.data_dir, label, config_.supervisor.clock_anchor_interval_ms,
        [this](const std::string& message) { log("error", message); },
        [this, done = std::move(done)](std::unique_ptr<Session> s, const std::string& error) {
            session_starting_ = false;
            if (!error.empty()) {
                log("error", error);
                start_modules();
                if (pico_) pico_->start();
                done(CommandResult::failure(errc::kIoError, error));
                return;
            }
            session_ = std::move(s);
            session_closing_ = false;
            ++session_generation_;
            trials_.clear();
            next_note_id_ = 1;
            notes_dropped_ = 0;
            session_dirs_.push_back(session_->dir());
            clock_anchors_ = json{{"start", clock_anchor()}};
            log("info", "session " + session_->dir());
            record_event("session_start", "", session_->label().empty() ? "" : "label=" + session_->label(),
                         session_->start_mono_ns());
            rewrite_session_json();
            broadcast("session", json{{"active", true}, {"dir", session_->dir()}, {"name", session_->name()}});
            start_modules();
            if (pico_) {
                pico_->open_session(session_->dir());
                pico_->start();
            }
            unblock_all();
            sync_all([this, done](json results, bool) {
                if (!session_) return done(CommandResult::failure(errc::kBadState, "the session closed meanwhile"));
                done(ok_result(json{{"session_dir", session_->dir()}, {"name", session_->name()}, {"modules", results}}));
            });
        });
}

void Supervisor::stop_session(ResultCallback done) {
    leave_session([this, done](const CommandResult& left) {
        if (!left.ok) return done(left);
        close_session_files(left.result, done);
    });
}

void Supervisor::leave_session(ResultCallback done) {
    if (!session_) return done(CommandResult::failure(errc::kBadState, "no session is open"));
    if (session_closing_) return done(CommandResult::failure(errc::kBadState, "the session is already closing"));
    if (trial_) {
        stop_trial([this, done = std::move(done)](const CommandResult&) { leave_session(done); });
        return;
    }
    session_closing_ = true;
    unblock_all();
    sync_all([done = std::move(done)](json results, bool) { done(ok_result(results)); });
}

void Supervisor::close_session_files(const json& module_results, ResultCallback done) {
    // Notes that never reached the notes module are kept in events.csv rather than lost.
    const Entry* notes = notes_module();
    const std::string notes_name = notes != nullptr ? notes->process->name() : "";
    for (auto& pending : queued_notes_) {
        note_bytes_waiting_ -= std::min(note_bytes_waiting_, note_text_bytes(pending.args));
        record_event("note_undelivered", notes_name, pending.args.dump());
        if (pending.done) pending.done(CommandResult::failure(errc::kUnavailable, "the notes module never came back"));
    }
    queued_notes_.clear();
    record_event("session_stop", "", "");
    clock_anchors_["stop"] = clock_anchor();
    rewrite_session_json();
    std::string dir = session_->dir();
    log("info", "session closed: " + dir);
    broadcast("session", json{{"active", false}, {"dir", dir}});
    auto close_files = [this, dir, module_results, done] {
        session_->close([this, dir, module_results, done] {
            session_.reset();
            session_closing_ = false;
            done(ok_result(json{{"session_dir", dir}, {"modules", module_results}}));
        });
    };
    if (pico_) return pico_->close_session(close_files);
    close_files();
}

void Supervisor::start_trial(const std::string& label, ResultCallback done) {
    if (shutting_down_) return done(CommandResult::failure(errc::kBadState, "the supervisor is shutting down"));
    if (!session_ || session_closing_) {
        return done(CommandResult::failure(errc::kBadState, "no session is open; start one with 'pilogger session start'"));
    }
    if (trial_) return done(CommandResult::failure(errc::kBadState, "trial " + std::to_string(trial_->number) + " is already recording"));
    if (std::string why = disk_too_full(); !why.empty()) return done(CommandResult::failure(errc::kIoError, why));
    Trial t;
    t.number = static_cast<int>(trials_.size()) + 1;
    t.label = label;
    t.start_at_mono_ns = mono_ns() + config_.supervisor.trial_start_delay_ms * 1'000'000;
    trial_ = t;
    log("info", "trial " + std::to_string(t.number) + " starts" + (label.empty() ? "" : " (" + label + ")"));
    record_event("trial_start", "", label.empty() ? "" : "label=" + label, t.start_at_mono_ns);
    if (pico_) pico_->trial_started(t.number, t.start_at_mono_ns);
    rewrite_session_json();
    broadcast("trial", json{{"active", true}, {"trial", t.number}, {"label", label}, {"start_at_mono_ns", t.start_at_mono_ns}});
    unblock_all();
    sync_all([t, done = std::move(done)](json results, bool) {
        done(ok_result(json{{"trial", t.number}, {"start_at_mono_ns", t.start_at_mono_ns}, {"modules", results}}));
    });
}

void Supervisor::stop_trial(ResultCallback done, std::optional<int64_t> stop_at_mono_ns) {
    if (!trial_) return done(CommandResult::failure(errc::kBadState, "no trial is recording"));
    Trial t = *trial_;
    int64_t now = mono_ns();
    t.stop_at_mono_ns = stop_at_mono_ns.value_or(now + config_.supervisor.trial_start_delay_ms * 1'000'000);
    t.stop_at_mono_ns = std::max({t.stop_at_mono_ns, t.start_at_mono_ns + 1, now});
    record_event("trial_stop", "", "", t.stop_at_mono_ns);
    if (pico_) pico_->trial_stopped(t.number, t.stop_at_mono_ns);
    trials_.push_back(t);
    trial_.reset();
    planned_stop_at_.reset();
    log("info", "trial " + std::to_string(t.number) + " stops");
    rewrite_session_json();
    broadcast("trial", json{{"active", false}, {"trial", t.number}, {"stop_at_mono_ns", t.stop_at_mono_ns}});
    unblock_all();
    sync_all([this, t, done = std::move(done)](json results, bool) {
        auto finished = [t, done, results] {
            done(ok_result(json{{"trial", t.number}, {"stop_at_mono_ns", t.stop_at_mono_ns}, {"modules", results}}));
        };
        // The trial ends at its stop instant, not when the quickest module has answered.
        wait_until(t.stop_at_mono_ns, finished);
    });
}

void Supervisor::wait_until(int64_t at_mono_ns, std::function<void()> then) {
    int64_t left_ns = at_mono_ns - mono_ns();
    if (left_ns <= 0) return then();
    // libuv timers count whole milliseconds on a cached clock: round up, and check again.
    uint64_t wait_ms = static_cast<uint64_t>(left_ns / 1'000'000 + 1);
    // Each wait owns its timer, so overlapping waits never cancel each other.
    waits_.push_back(std::make_unique<uv::Timer>(loop_));
    uv::Timer* timer = waits_.back().get();
    timer->start(wait_ms, 0, [this, timer, at_mono_ns, then = std::move(then)] {
        auto self = std::find_if(waits_.begin(), waits_.end(), [timer](const auto& w) { return w.get() == timer; });
        std::unique_ptr<uv::Timer> owned = std::move(*self);  // keeps the running callback's timer alive
        waits_.erase(self);
        wait_until(at_mono_ns, then);
    });
}

std::vector<std::string> Supervisor::recording_modules() const {
    std::vector<std::string> names;
    for (const auto& e : modules_) {
        if (!e.process->config().has_capability("note") && e.process->state() == ModuleProcess::State::Recording) {
            names.push_back(e.process->name());
        }
    }
    return names;
}

void Supervisor::add_note(const std::string& text, std::optional<int64_t> client_mono_ns, ResultCallback done) {
    if (!session_ || session_closing_) {
        return done(CommandResult::failure(errc::kBadState, "no session is open; notes are kept in a session's folder"));
    }
    Entry* notes = notes_module();
    if (notes == nullptr) {
        return done(CommandResult::failure(errc::kUnavailable, "no notes module is enabled (no enabled module in " +
                                                                   config_.source_file + " has the capability 'note')"));
    }
    if (queued_notes_.size() >= kMaxQueuedNotes || note_bytes_waiting_ + text.size() > kMaxNoteBytesWaiting) {
        ++notes_dropped_;
        std::string why = "too many notes waiting for the notes module (" + std::to_string(queued_notes_.size()) +
                          " queued, " + std::to_string(note_bytes_waiting_ / 1024) + " KiB; limits " +
                          std::to_string(kMaxQueuedNotes) + " and " + std::to_string(kMaxNoteBytesWaiting / 1024) +
                          " KiB); try again";
        if (refusal_limit_.allow(mono_ns())) record_event("note_refused", notes->process->name(), why);
        return done(CommandResult::failure(errc::kUnavailable, why));
    }
    note_bytes_waiting_ += text.size();
    int64_t now = mono_ns();
    // A client on this host may stamp the moment the note was typed; trust it within reason.
    int64_t at = client_mono_ns && std::llabs(*client_mono_ns - now) < 10'000'000'000LL ? *client_mono_ns : now;
    int64_t note_id = next_note_id_++;
    // Before the trial's start instant nothing records yet, even if every module has acknowledged.
    bool in_trial = trial_ && at >= trial_->start_at_mono_ns;
    json args{{"note_id", note_id},
              {"mono_ns", at},
              {"wall_time_utc", format_utc(realtime_ns() - (now - at))},
              {"session_elapsed_s", static_cast<double>(at - session_->start_mono_ns()) / 1e9},
              {"trial", in_trial ? trial_->number : 0},
              {"recording_modules", in_trial ? recording_modules() : std::vector<std::string>{}},
              {"text", text}};
    broadcast("note", args);
    bool deliverable = notes->process->connected() && notes->phase.session_generation == session_generation_;
    if (!deliverable) {
        log("warning", "note " + std::to_string(note_id) + " queued until the notes module is back");
        done(ok_result(json{{"note_id", note_id}, {"queued", true}}));
        queued_notes_.push_back(PendingNote{std::move(args), nullptr});
        return;
    }
    queued_notes_.push_back(PendingNote{std::move(args), std::move(done)});
    deliver_notes();
}

void Supervisor::deliver_notes() {
    Entry* notes = notes_module();
    if (notes == nullptr || !notes->process->connected() || notes->phase.session_generation != session_generation_ ||
        session_generation_ == 0 || session_closing_) {
        return;
    }
    while (!queued_notes_.empty()) {
        PendingNote note = std::move(queued_notes_.front());
        queued_notes_.pop_front();
        json args = note.args;
        notes->process->send("note", args, [this, args, done = std::move(note.done)](const CommandResult& r) {
            if (!r.ok && (r.code == errc::kUnavailable || r.code == errc::kTimeout)) {
                // The module went away with the note: send it again to the next process.
                queued_notes_.push_front(PendingNote{args, nullptr});
                if (done) done(ok_result(json{{"note_id", args["note_id"]}, {"queued", true}}));
                return;
            }
            note_bytes_waiting_ -= std::min(note_bytes_waiting_, note_text_bytes(args));
            if (!r.ok) log("error", "note " + args["note_id"].dump() + ": " + r.message);
            if (done) done(r);
        });
    }
}

void Supervisor::module_action(const std::string& action, const std::string& name, ResultCallback done) {
    Entry* e = find(name);
    if (e == nullptr) {
        std::string names;
        for (const auto& m : modules_) names += (names.empty() ? "" : ", ") + m.process->name();
        return done(CommandResult::failure(errc::kBadRequest, "no module named '" + name + "' (modules: " + names + ")"));
    }
    record_event("module_" + action, name, "requested");
    if (action == "enable") {
        e->process->enable();
        done(ok_result(json{{"module", name}, {"state", to_string(e->process->state())}}));
    } else if (action == "disable") {
        e->process->disable([done, name] { done(ok_result(json{{"module", name}, {"state", "disabled"}})); });
    } else {
        e->process->restart("requested");
        done(ok_result(json{{"module", name}, {"state", to_string(e->process->state())}}));
    }
}

void Supervisor::module_command(const std::string& name, const std::string& cmd, const json& args,
                                ResultCallback done) {
    // The commands only the supervisor sends were refused with the request (read_control_request).
    std::vector<Entry*> targets;
    if (name == "*") {
        for (auto& e : modules_) {
            if (e.process->connected()) targets.push_back(&e);
        }
    } else if (Entry* e = find(name)) {
        targets.push_back(e);
    } else {
        return done(CommandResult::failure(errc::kBadRequest, "no module named '" + name + "'"));
    }
    auto send = [this, &cmd, &args](Entry* e, ResultCallback then) {
        size_t unread = e->process->unread_input_bytes();
        if (unread > kMaxModuleCommandBacklog) {
            ++module_commands_refused_;
            std::string why = e->process->name() + " has not read " + std::to_string(unread / 1024) +
                              " KiB of earlier commands yet (limit " + std::to_string(kMaxModuleCommandBacklog / 1024) +
                              " KiB); try again";
            if (refusal_limit_.allow(mono_ns())) record_event("module_command_refused", e->process->name(), why);
            return then(CommandResult::failure(errc::kUnavailable, why));
        }
        e->process->send(cmd, args, std::move(then));
    };
    if (name != "*") return send(targets[0], [done](const CommandResult& r) { done(r); });
    auto results = std::make_shared<json>(json::object());
    auto remaining = std::make_shared<size_t>(targets.size() + 1);
    auto one_done = [results, remaining, done] {
        if (--*remaining == 0) done(ok_result(json{{"modules", *results}}));
    };
    for (Entry* e : targets) {
        std::string module = e->process->name();
        send(e, [results, one_done, module](const CommandResult& r) {
            (*results)[module] = r.to_json();
            one_done();
        });
    }
    one_done();
}

// ---- module callbacks ----

void Supervisor::module_hello(ModuleProcess& module) {
    Entry* e = entry_of(module);
    // A new process knows nothing yet; keep only which trial part it last recorded.
    Phase& p = e->phase;
    p.configured = false;
    p.session_generation = 0;
    p.trial = 0;
    p.step_in_flight = false;
    p.blocked = false;
    record_event("module_hello", module.name(), "version " + (module.hello().version.empty() ? "?" : module.hello().version));
    sync(*e);
}

void Supervisor::module_state_changed(ModuleProcess& module) {
    broadcast("module_state", module_status(module));
    rewrite_session_json();
    // The planned trial of run --record starts from tick(), never from inside a state change.
}

void Supervisor::module_event(ModuleProcess& module, const ModuleEvent& event) {
    const std::string& name = event.name;
    if (name == "warning" || name == "error") {
        log(name, module.name() + ": " + event.message);
        record_event("module_" + name, module.name(), event.message);
    }
    // Only the module protocol's own event names come this far (ModuleLine), so a module can
    // never speak as the supervisor ("session", "trial", "note", ...).
    json body = event.body;
    body["module"] = module.name();
    broadcast(name, std::move(body));
}

void Supervisor::module_stderr(ModuleProcess& module, std::string_view line) {
    if (session_) {
        session_->log_line(module.name(), line);
    } else {
        log("info", module.name() + ": " + std::string(line));
    }
}

void Supervisor::module_incident(ModuleProcess& module, std::string_view event, const std::string& detail) {
    bool bad = event == "module_crash" || event == "module_hung" || event == "ack_timeout" ||
               event == "module_error" || event == "module_protocol_error" || event == "module_stop_escalation" ||
               event == "module_flood";
    log(bad ? "warning" : "info", module.name() + ": " + std::string(event) + ": " + detail);
    record_event(event, module.name(), detail);
}

// ---- periodic work ----

void Supervisor::tick() {
    int64_t now = mono_ns();
    // A loop that stood still (swapped out, a stopped process, our own bug) must not blame the
    // modules whose heartbeats waited in the pipes meanwhile.
    int64_t gap = last_tick_mono_ns_ == 0 ? 0 : now - last_tick_mono_ns_;
    last_tick_mono_ns_ = now;
    if (gap > kStallNs) {
        int64_t excess = gap - kTickMs * 1'000'000;
        log("warning", "the supervisor's loop stood still for " + std::to_string(gap / 1'000'000) +
                           " ms; module heartbeats are not judged for that time");
        record_event("supervisor_stall", "", std::to_string(gap / 1'000'000) + " ms between ticks");
        for (auto& e : modules_) e.process->excuse_stall(excess);
    }
    for (size_t i = 0; i < modules_.size(); ++i) modules_[i].process->tick(now);
    // What the rate limit kept out of events.csv is still said, once a second at most.
    if (now - control_flood_reported_ns_ >= 1'000'000'000) {
        control_flood_reported_ns_ = now;
        uint64_t problems = control_problem_limit_.take_suppressed();
        uint64_t refusals = refusal_limit_.take_suppressed();
        if (problems + refusals > 0) {
            record_event("control_flood", "",
                         std::to_string(problems) + " control-client problems and " + std::to_string(refusals) +
                             " refused notes or module commands over the rate limits (2 a second each) not "
                             "recorded; status counts them");
        }
    }
    maybe_start_planned_trial();
}

void Supervisor::check_disk() {
    if (disk_check_in_flight_) return;
    disk_check_in_flight_ = true;
    std::string path = session_ ? session_->dir() : config_.data_dir;
    auto free_bytes = std::make_shared<int64_t>(-1);
    uv::queue_work(
        loop_,
        [path, free_bytes]() -> std::string {
            // The data folder may not exist yet: measure the nearest folder that does.
            std::string p = path;
            struct statvfs st {};
            while (!p.empty() && statvfs(p.c_str(), &st) != 0) {
                size_t slash = p.find_last_of('/');
                p = slash == std::string::npos || slash == 0 ? (slash == 0 ? "/" : ".") : p.substr(0, slash);
                if (p == "/" || p == ".") {
                    if (statvfs(p.c_str(), &st) != 0) return "statvfs failed";
                    break;
                }
            }
            *free_bytes = static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
            return {};
        },
        [this, free_bytes](const std::string&) {
            disk_check_in_flight_ = false;
            const int64_t now = mono_ns();
            const int64_t previous = disk_free_bytes_;
            disk_free_bytes_ = *free_bytes;
            // Measured while a trial records; between trials the last trial's rate stands, so
            // a new one is not started into space it would fill before it could stop.
            if (trial_ && previous >= 0 && disk_free_bytes_ >= 0 && disk_sampled_mono_ns_ != 0) {
                double dt = static_cast<double>(now - disk_sampled_mono_ns_) / 1e9;
                double rate = dt > 0 ? std::max(0.0, static_cast<double>(previous - disk_free_bytes_) / dt) : 0;
                // The recent peak, forgotten over about 5 s: a burst is planned for, not averaged away.
                disk_write_rate_ = std::max(rate, disk_write_rate_ * std::exp(-dt / 5.0));
            }
            disk_sampled_mono_ns_ = now;
            if (!trial_) return;
            std::string why = disk_too_full();
            if (why.empty()) return;
            log("error", "stopping the trial: " + why);
            record_event("disk_low", "", why);
            stop_trial([](const CommandResult&) {});
        });
}

std::string Supervisor::disk_too_full() const {
    if (disk_free_bytes_ < 0) return {};
    // Room is what is left above the reserve once a trial stopped now has closed its files.
    const int64_t reserve = config_.disk_reserve_mb * 1024 * 1024;
    const double stop_takes_s =
        static_cast<double>(config_.supervisor.disk_check_interval_ms + config_.supervisor.trial_start_delay_ms) / 1000 +
        kFileCloseAllowanceS;
    const int64_t threshold = reserve + static_cast<int64_t>(disk_write_rate_ * stop_takes_s);
    if (disk_free_bytes_ >= threshold) return {};
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.1f", disk_write_rate_ / (1024 * 1024));
    return "only " + std::to_string(disk_free_bytes_ / (1024 * 1024)) + " MiB free in " +
           (session_ ? session_->dir() : config_.data_dir) + "; at the " + rate + " MiB/s being written, the reserve of " +
           std::to_string(config_.disk_reserve_mb) + " MiB (disk_reserve_mb) would be reached before the files are closed";
}

// ---- status and control ----

json Supervisor::status() const {
    int64_t now = mono_ns();
    json modules = json::array();
    for (const auto& e : modules_) modules.push_back(module_status(*e.process));
    json out{{"supervisor",
              {{"pid", static_cast<int64_t>(getpid())},
               {"version", PILOGGER_VERSION},
               {"uptime_s", static_cast<double>(now - started_mono_ns_) / 1e9},
               {"config_file", config_.source_file},
               {"data_dir", config_.data_dir},
               {"shutting_down", shutting_down_},
               {"mono_ns", now},
               // Log and status text a stalled terminal (or log reader) never took.
               {"output_dropped_bytes", stderr_queue().dropped_bytes()}}},
             {"session", nullptr},
             {"trial", nullptr},
             {"modules", modules},
             {"notes", {{"next_id", next_note_id_}, {"queued", queued_notes_.size()}, {"dropped", notes_dropped_},
                        {"waiting_bytes", note_bytes_waiting_}}},
             {"module_commands_refused", module_commands_refused_},
             {"disk",
              {{"free_bytes", disk_free_bytes_},
               {"reserve_bytes", config_.disk_reserve_mb * 1024 * 1024},
               {"write_rate_bytes_per_s", static_cast<int64_t>(disk_write_rate_)}}},
             {"control", control_ ? control_->stats() : json(nullptr)}};
    if (session_) {
        out["session"] = {{"name", session_->name()},
                          {"dir", session_->dir()},
                          {"label", session_->label()},
                          {"closing", session_closing_},
                          {"start_mono_ns", session_->start_mono_ns()},
                          {"elapsed_s", static_cast<double>(now - session_->start_mono_ns()) / 1e9},
                          {"trials", trials_.size() + (trial_ ? 1 : 0)}};
    }
    if (trial_) {
        out["trial"] = {{"number", trial_->number},
                        {"label", trial_->label},
                        {"start_at_mono_ns", trial_->start_at_mono_ns},
                        {"elapsed_s", std::max(0.0, static_cast<double>(now - trial_->start_at_mono_ns) / 1e9)}};
    }
    out["pico"] = pico_ ? pico_->status() : json(nullptr);
    return out;
}

void Supervisor::handle_control(ControlServer::ClientId client, const Message& message) {
    const ControlRequest request = read_control_request(message);
    const int64_t id = request.id;
    auto answer = [this, client, id](const CommandResult& r) {
        if (control_) control_->reply(client, r.ok ? make_ok(id, r.result) : make_error(id, r.code, r.message));
    };
    if (!request.ok()) return answer(CommandResult::failure(request.error_code, request.problem));
    const std::string& cmd = request.cmd;

    if (cmd == "status") return answer(ok_result(status()));
    if (cmd == "subscribe") {
        control_->set_subscribed(client, true);
        return answer(ok_result(status()));
    }
    if (cmd == "shutdown") {
        answer(ok_result(json{{"shutting_down", true}}));
        shutdown("shutdown requested over the control socket");
        return;
    }
    if (cmd == "session_start") return start_session(request.label, answer);
    if (cmd == "trial_start") return start_trial(request.label, answer);
    if (cmd == "session_stop") return stop_session(answer);
    if (cmd == "trial_stop") return stop_trial(answer);
    if (cmd == "note") return add_note(request.text, request.mono_ns, answer);
    if (cmd == "module_command") return module_command(request.name, request.module_cmd, request.module_args, answer);
    // module_enable, module_disable, module_restart
    module_action(cmd.substr(7), request.name, answer);
}

}  // namespace pilogger

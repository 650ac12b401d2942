// The supervisor's core: construction, logging and records, session.json, starting and shutting
// down, the modules' callbacks and the periodic tick. The other parts: supervisor_lifecycle.cpp
// (the reconciliation loop), supervisor_session.cpp (sessions and trials), supervisor_notes.cpp,
// supervisor_control.cpp (control requests and status), supervisor_disk.cpp.
#include "supervisor.hpp"
#include "supervisor_detail.hpp"

#include "clock.hpp"
#include "output_queue.hpp"
#include "pico_emulator.hpp"
#include "pico_link.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>

namespace pilogger {

using supervisor_detail::module_status;

json supervisor_detail::module_status(const ModuleProcess& module) {
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

namespace {
constexpr int64_t kTickMs = 250;
// Ticks this far apart mean the loop itself stalled.
constexpr int64_t kStallNs = 1'000'000'000;
// run --record waits this long for the modules to come up before starting the trial anyway.
constexpr int64_t kReadyWaitMs = 15000;

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
      sighup_(loop),
      requests_(loop) {}

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
        pico_ = std::make_unique<PicoLink>(loop_, *config_.pico, callbacks);
        if (config_.pico->device == "emulator") {
            // The simulated twin runs beside the link, which opens its pseudo-terminal like a port.
            pico_emulator_ = std::make_unique<PicoEmulator>(
                loop_, config_.pico->emulator, socket.substr(0, socket.find_last_of('/')) + "/pico-emulator.tty",
                PicoReporter(callbacks),
                PicoEmulator::Callbacks{[this] { pico_->device_appeared(); },
                                        [this](const std::string& why) { pico_->device_failed(why); }});
            pico_->use_device_source([this](std::string* why) {
                if (pico_emulator_->announced()) return pico_emulator_->link_path();
                *why = "the emulator has not opened its pseudo-terminal yet";
                return std::string();
            });
        }
        // With a session, the link starts once its folder exists, so the first events land in it.
        if (!options_.start_session) start_pico();
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

void Supervisor::start_pico() {
    if (!pico_) return;
    if (pico_emulator_) pico_emulator_->start();
    pico_->start();
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
    if (pico_emulator_) pico_emulator_->stop();
    log("info", "supervisor stopped");
}

// ---- module callbacks ----

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

}  // namespace pilogger

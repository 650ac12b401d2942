#include "module_runtime.hpp"

#include "module_catalog.hpp"  // program_catalog(): standalone mode

#include "clock.hpp"
#include "config.hpp"
#include "output_queue.hpp"
#include "paths.hpp"

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <algorithm>
#include <iostream>

namespace pilogger {

namespace {
// Beyond this much unsent output the supervisor is not reading: shed stats and log events.
constexpr size_t kMaxStdoutBacklog = 4 * 1024 * 1024;
// The last lines out before the process ends, unless a stalled reader holds them.
void flush_output() {
    stdout_queue().flush(std::chrono::milliseconds(500));
    stderr_queue().flush(std::chrono::milliseconds(500));
}

// A module whose supervisor died gets this long to close its files.
constexpr unsigned kOrphanDeadlineS = 1;

// Reads a typed argument or throws a message naming it.
template <typename T>
T arg(const json& args, const char* key, T fallback) {
    auto it = args.find(key);
    if (it == args.end() || it->is_null()) return fallback;
    try {
        return it->get<T>();
    } catch (const json::exception&) {
        throw std::invalid_argument(std::string("argument \"") + key + "\" has the wrong type");
    }
}
}  // namespace

std::string trial_file_stem(int trial, int part) {
    char buf[32];
    if (part <= 1) {
        snprintf(buf, sizeof buf, "trial_%03d", trial);
    } else {
        snprintf(buf, sizeof buf, "trial_%03d_p%d", trial, part);
    }
    return buf;
}

const char* to_string(ModuleRuntime::State state) {
    switch (state) {
        case ModuleRuntime::State::Idle: return "idle";
        case ModuleRuntime::State::Configured: return "ready";
        case ModuleRuntime::State::InSession: return "ready";
        case ModuleRuntime::State::Recording: return "recording";
        case ModuleRuntime::State::Finishing: return "stopping";
    }
    return "unknown";
}

// ---- Reply ----

Reply::Reply(ModuleRuntime* runtime, int64_t id, std::string command, AnswerHook hook)
    : runtime_(runtime), id_(id), command_(std::move(command)), hook_(std::move(hook)) {}

Reply::Reply(Reply&& other) noexcept
    : runtime_(std::exchange(other.runtime_, nullptr)),
      id_(other.id_),
      command_(std::move(other.command_)),
      hook_(std::move(other.hook_)) {}

Reply& Reply::operator=(Reply&& other) noexcept {
    if (this != &other) {
        if (runtime_ != nullptr) error(errc::kInternal, "the command was abandoned without an answer");
        runtime_ = std::exchange(other.runtime_, nullptr);
        id_ = other.id_;
        command_ = std::move(other.command_);
        hook_ = std::move(other.hook_);
    }
    return *this;
}

Reply::~Reply() {
    if (runtime_ != nullptr) error(errc::kInternal, "the command was abandoned without an answer");
}

void Reply::answer(bool ok, const json& body, std::string_view code, std::string_view message) {
    ModuleRuntime* runtime = std::exchange(runtime_, nullptr);
    if (runtime == nullptr) return;
    runtime->send_reply(id_, command_, ok, body, code, message);
    if (auto hook = std::move(hook_)) hook(ok, body);
}

void Reply::ok(const json& result) { answer(true, result, {}, {}); }

void Reply::error(std::string_view code, std::string_view message) {
    answer(false, json{{"code", code}, {"message", message}}, code, message);
}

// ---- ModuleRuntime ----

ModuleRuntime::ModuleRuntime(std::string type, std::string name, bool supervised,
                             std::vector<std::string> kind_capabilities, std::optional<SimulatorHook> simulator)
    : type_(std::move(type)), name_(std::move(name)), kind_capabilities_(std::move(kind_capabilities)),
      simulator_hook_(std::move(simulator)), supervised_(supervised) {
    started_mono_ns_ = mono_ns();
}

ModuleRuntime::~ModuleRuntime() { close_handles(); }

void ModuleRuntime::send_line(std::string line, bool essential) {
    line.push_back('\n');
    if (stdout_) {
        if (!essential && stdout_->write_queue_bytes() > kMaxStdoutBacklog) {
            ++events_dropped_;
            return;
        }
        stdout_->write(std::move(line));
        return;
    }
    // Standalone on a terminal or file: a person reads it, and may have paused the terminal.
    if (!stdout_queue().write(line)) ++events_dropped_;
}

void ModuleRuntime::emit(std::string_view event, json fields) {
    if (!fields.is_object()) fields = json{{"data", fields}};
    fields["module"] = name_;
    fields["mono_ns"] = mono_ns();
    send_line(make_event(event, std::move(fields)), event != "stats" && event != "log");
}

void ModuleRuntime::log(std::string_view level, const std::string& message) {
    std::string line = wall_time_utc_now() + " " + std::string(level) + " " + name_ + ": " + message + "\n";
    // stderr is a pipe the supervisor reads at its own pace (or a terminal standalone): never
    // wait for it on the loop thread.
    if (!stderr_queue().write(line)) ++log_lines_dropped_;
    if (level == "warning" || level == "error") {
        emit(level, json{{"message", message}});
    }
}

void ModuleRuntime::send_reply(int64_t id, const std::string& command, bool ok, const json& result,
                               std::string_view code, std::string_view message) {
    if (id < 0) {
        // Standalone: nobody waits for an answer; failures still reach the person running it.
        if (!ok) log("error", command + " failed: " + std::string(message));
        return;
    }
    send_line(ok ? make_ok(id, result) : make_error(id, code, message), true);
}

void ModuleRuntime::set_state(State s) {
    if (s == state_) return;
    state_ = s;
    emit("state", json{{"state", to_string(s)}});
}

void ModuleRuntime::send_stats() {
    json s = module_ ? module_->stats() : json::object();
    if (!s.is_object()) s = json::object();
    s["state"] = to_string(state_);
    s["uptime_s"] = static_cast<double>(mono_ns() - started_mono_ns_) / 1e9;
    s["events_dropped"] = events_dropped_;
    s["log_lines_dropped"] = log_lines_dropped_;
    s["bad_lines"] = bad_lines_;
    emit("stats", std::move(s));
}

void ModuleRuntime::on_stdin(std::string_view chunk) {
    framer_.feed(
        chunk, [this](std::string_view line) { on_line(line); },
        [this](size_t dropped) {
            ++bad_lines_;
            send_line(make_error(std::nullopt, errc::kLineTooLong,
                                 "dropped a line of " + std::to_string(dropped) +
                                     " bytes (limit " + std::to_string(kDefaultMaxLineBytes) + ")"),
                      true);
        });
}

void ModuleRuntime::on_line(std::string_view line) {
    Message m = parse_message(line);
    if (m.kind == Message::Kind::Command) {
        dispatch(m);
        return;
    }
    if (!supervised_ && m.kind == Message::Kind::Invalid && module_ != nullptr && !finishing_) {
        module_->standalone_input(std::string(line));
        return;
    }
    if (m.kind == Message::Kind::Invalid) {
        ++bad_lines_;
        send_line(make_error(m.id, m.id ? errc::kBadRequest : errc::kParseError, m.problem), true);
    }
    // Replies and events are not expected from the supervisor: ignore them.
}

Reply ModuleRuntime::make_reply(const Message& m, Reply::AnswerHook hook) {
    return Reply(this, *m.id, m.name, std::move(hook));
}

void ModuleRuntime::dispatch(const Message& m) {
    const json args = m.body.value("args", json::object());
    const std::string& cmd = m.name;
    auto reject = [&](std::string_view code, const std::string& message) {
        send_line(make_error(m.id, code, message), true);
    };
    if (finishing_) {
        reject(errc::kBadState, "the module is shutting down");
        return;
    }
    try {
        if (cmd == "configure") {
            if (state_ != State::Idle && state_ != State::Configured) {
                reject(errc::kBadState, "configure is only allowed outside a session");
                return;
            }
            stats_interval_ms_ = arg<int64_t>(args, "stats_interval_ms", stats_interval_ms_);
            if (stats_interval_ms_ < 10 || stats_interval_ms_ > 1000) {
                reject(errc::kBadRequest, "stats_interval_ms must be 10..1000");
                return;
            }
            stats_timer_->start(static_cast<uint64_t>(stats_interval_ms_),
                                static_cast<uint64_t>(stats_interval_ms_), [this] { send_stats(); });
            json settings = args.value("settings", json::object());
            configure_module(std::move(settings), make_reply(m, [this](bool ok, const json&) {
                                 if (ok) set_state(State::Configured);
                             }));
        } else if (cmd == "start_session") {
            if (state_ != State::Configured) {
                reject(errc::kBadState, state_ == State::Idle ? "configure first" : "a session is already open");
                return;
            }
            SessionInfo info;
            info.session_dir = arg<std::string>(args, "session_dir", "");
            info.session_name = arg<std::string>(args, "session_name", "");
            info.session_start_mono_ns = arg<int64_t>(args, "session_start_mono_ns", mono_ns());
            if (info.session_dir.empty()) {
                reject(errc::kBadRequest, "start_session needs \"session_dir\"");
                return;
            }
            session_start_mono_ns_ = info.session_start_mono_ns;
            module_->start_session(info, make_reply(m, [this](bool ok, const json&) {
                                       if (ok) set_state(State::InSession);
                                   }));
        } else if (cmd == "start_recording") {
            if (state_ != State::InSession) {
                reject(errc::kBadState, state_ == State::Recording ? "already recording" : "no session is open");
                return;
            }
            RecordingInfo info;
            info.trial = arg<int>(args, "trial", 0);
            info.part = arg<int>(args, "part", 1);
            info.label = arg<std::string>(args, "label", "");
            info.start_at_mono_ns = arg<int64_t>(args, "start_at_mono_ns", mono_ns());
            if (info.trial < 1 || info.trial > 999999 || info.part < 1) {
                reject(errc::kBadRequest, "start_recording needs \"trial\" >= 1 and \"part\" >= 1");
                return;
            }
            module_->start_recording(info, make_reply(m, [this](bool ok, const json&) {
                                         if (ok) set_state(State::Recording);
                                     }));
        } else if (cmd == "stop_recording") {
            if (state_ != State::Recording) {
                reject(errc::kBadState, "not recording");
                return;
            }
            int64_t stop_at = arg<int64_t>(args, "stop_at_mono_ns", mono_ns());
            module_->stop_recording(stop_at, make_reply(m, [this](bool ok, const json&) {
                                        if (ok) set_state(State::InSession);
                                    }));
        } else if (cmd == "stop_session") {
            if (state_ == State::Recording) {
                reject(errc::kBadState, "stop the recording first");
                return;
            }
            if (state_ != State::InSession) {
                reject(errc::kBadState, "no session is open");
                return;
            }
            module_->stop_session(make_reply(m, [this](bool ok, const json&) {
                if (ok) set_state(State::Configured);
            }));
        } else if (cmd == "status") {
            json s = module_->stats();
            s["state"] = to_string(state_);
            s["type"] = type_;
            s["name"] = name_;
            send_line(make_ok(m.id, s), true);
        } else if (cmd == "shutdown") {
            shutdown_reply_ = std::make_unique<Reply>(make_reply(m));
            request_finish("shutdown command");
        } else {
            Reply reply = make_reply(m);
            if (!module_->command(cmd, args, reply)) {
                // Answer directly: the Reply must not report "abandoned" for an unknown command.
                reply.error(errc::kUnknownCommand, "unknown command \"" + cmd + "\"");
            }
        }
    } catch (const std::exception& e) {
        reject(errc::kBadRequest, cmd + ": " + e.what());
    }
}

void ModuleRuntime::request_finish(const std::string& why) {
    if (supervised_ && getppid() != supervisor_pid_ && !orphaned_) {
        // Nobody is left to escalate a stop: close what we can, and SIGALRM ends the process
        // even if the loop hangs, so no module of a dead supervisor outlives it by a second.
        orphaned_ = true;
        alarm(kOrphanDeadlineS);
    }
    if (finishing_) return;
    finishing_ = true;
    log("info", "finishing: " + why);
    set_state(State::Finishing);
    if (stdin_) stdin_->stop_read();
    module_->finish([this] {
        if (shutdown_reply_) {
            shutdown_reply_->ok();
            shutdown_reply_.reset();
        }
        emit("state", json{{"state", "exited"}});
        // The simulator goes after the module, which may still have talked to it while finishing.
        if (simulator_) return simulator_->stop([this] { close_handles(); });
        close_handles();
    });
}

void ModuleRuntime::configure_module(json settings, Reply reply) {
    if (!simulator_hook_ || !SimulatorLaunch::selected(*simulator_hook_, settings)) {
        module_->configure(settings, std::move(reply));
        return;
    }
    if (!simulator_) {
        simulator_ = std::make_unique<SimulatorLaunch>(
            loop_, *simulator_hook_, [this](std::string_view level, const std::string& message) { log(level, message); });
    }
    auto pending = std::make_shared<Reply>(std::move(reply));
    simulator_->start(std::move(settings), [this, pending](json ready_settings, std::string error) {
        if (finishing_) return;  // the pending reply answers "shutting down" by itself
        if (!error.empty()) return pending->error(errc::kUnavailable, error);
        module_->configure(ready_settings, std::move(*pending));
    });
}

void ModuleRuntime::close_handles() {
    stats_timer_.reset();
    duration_timer_.reset();
    sigint_.reset();
    sigterm_.reset();
    stdin_.reset();
    if (stdout_) {
        // Let queued replies and events go out before the handle closes.
        auto* out = stdout_.release();
        out->shutdown([out] { delete out; });
    }
}

void ModuleRuntime::start_standalone(const json& settings, const std::string& output, double duration_s) {
    auto fail = [this](bool ok) {
        if (!ok) {
            exit_status_ = 1;
            request_finish("standalone start failed");
        }
        return ok;
    };
    configure_module(settings, Reply(this, -1, "configure", [=, this](bool ok, const json&) {
        if (!fail(ok)) return;
        state_ = State::Configured;
        SessionInfo session{output, "standalone", mono_ns()};
        session_start_mono_ns_ = session.session_start_mono_ns;
        module_->start_session(session, Reply(this, -1, "start_session", [=, this](bool ok2, const json&) {
            if (!fail(ok2)) return;
            state_ = State::InSession;
            RecordingInfo rec{1, 1, "", mono_ns()};
            module_->start_recording(rec, Reply(this, -1, "start_recording", [=, this](bool ok3, const json&) {
                if (!fail(ok3)) return;
                set_state(State::Recording);
                log("info", "recording into " + output + (duration_s > 0 ? " for " + std::to_string(duration_s) + " s" : " until Ctrl-C"));
                if (duration_s > 0) {
                    duration_timer_ = std::make_unique<uv::Timer>(loop_);
                    duration_timer_->start(static_cast<uint64_t>(duration_s * 1000), 0,
                                           [this] { request_finish("duration reached"); });
                }
            }));
        }));
    }));
}

int ModuleRuntime::run(Module& module, const json* standalone_settings,
                       const std::string& standalone_output, double standalone_duration_s) {
    module_ = &module;
    std::signal(SIGPIPE, SIG_IGN);
    // The supervisor starts modules with a parent-death SIGTERM (pilogger-spawn); stdin EOF says
    // the same. Either way a module never outlives it.
    if (supervised_) supervisor_pid_ = getppid();
    // A bug of ours in a callback is reported to the supervisor (an error event, so events.csv
    // has it) and the module goes on recording.
    uv::set_fault_handler([this](std::string_view where, std::string_view what) {
        log("error", "internal error in a " + std::string(where) + " callback: " + std::string(what));
    });
    sigint_ = std::make_unique<uv::Signal>(loop_);
    sigterm_ = std::make_unique<uv::Signal>(loop_);
    sigint_->start(SIGINT, [this](int) { request_finish("SIGINT"); });
    sigterm_->start(SIGTERM, [this](int) { request_finish("SIGTERM"); });
    stats_timer_ = std::make_unique<uv::Timer>(loop_);

    if (uv_guess_handle(STDOUT_FILENO) == UV_NAMED_PIPE) {
        stdout_ = std::make_unique<uv::Stream>(loop_);
        stdout_->open_fd(STDOUT_FILENO);
    }
    // Standalone on a terminal: stdin is left alone (no protocol, Ctrl-C ends the run).
    if (uv_guess_handle(STDIN_FILENO) == UV_NAMED_PIPE) {
        stdin_ = std::make_unique<uv::Stream>(loop_);
        stdin_->open_fd(STDIN_FILENO);
        stdin_->start_read([this](std::string_view chunk) { on_stdin(chunk); },
                           [this](int) { request_finish("stdin closed"); });
    } else if (supervised_) {
        log("error", "--supervised needs stdin to be a pipe from the supervisor");
        return 2;
    }

    std::vector<std::string> capabilities = kind_capabilities_;
    for (const std::string& extra : module.capabilities()) {
        if (std::find(capabilities.begin(), capabilities.end(), extra) == capabilities.end()) capabilities.push_back(extra);
    }
    emit("hello", json{{"protocol", kProtocolVersion},
                       {"type", type_},
                       {"version", PILOGGER_VERSION},
                       {"pid", static_cast<int64_t>(getpid())},
                       {"capabilities", capabilities}});

    if (standalone_settings != nullptr) {
        stats_timer_->start(static_cast<uint64_t>(stats_interval_ms_) * 2,
                            static_cast<uint64_t>(stats_interval_ms_) * 2, [this] { send_stats(); });
        start_standalone(*standalone_settings, standalone_output, standalone_duration_s);
    }
    loop_.run();
    uv::set_fault_handler(nullptr);
    module_ = nullptr;
    return exit_status_;
}

int run_module(int argc, char** argv, const ModuleKind& kind, const std::string& description,
               const ModuleFactory& factory) {
    const std::string& type = kind.kind;
    CLI::App app{description, "pilogger-" + type};
    bool supervised = false;
    bool describe = false;
    std::string name;
    std::string config_file;
    std::string output;
    double duration_s = 0;
    app.add_flag("--supervised", supervised, "Speak the module protocol on stdin/stdout (used by the supervisor)");
    app.add_option("--name", name, "Module name in the config (default: the first module of type " + type + ")");
    app.add_option("--config", config_file, "Standalone: YAML config to take this module's settings from");
    app.add_option("--output", output, "Standalone: folder to record into (created if missing)");
    app.add_option("--duration", duration_s, "Standalone: stop after this many seconds")->check(CLI::NonNegativeNumber);
    app.add_flag("--describe", describe,
                 "Print this kind of module's settings and capabilities as JSON (what the supervisor and "
                 "`pilogger config check` validate a config by; pilogger-module-sdk: answers --describe)");
    app.set_version_flag("--version", PILOGGER_VERSION);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    if (describe) {
        std::cout << kind.to_json().dump(2) << "\n";
        return std::cout.good() ? 0 : 1;
    }
    json settings;
    if (!supervised) {
        if (config_file.empty() || output.empty()) {
            std::cerr << "pilogger-" << type << ": standalone use needs --config FILE and --output DIR "
                      << "(the supervisor runs it with --supervised)\n";
            return 2;
        }
        try {
            program_catalog().remember(kind);  // the other modules' kinds come from their programs
            Config config = load_config_file(config_file);
            const ModuleConfig* found = nullptr;
            for (const auto& m : config.modules) {
                if (m.type == type && (name.empty() || m.name == name)) {
                    found = &m;
                    break;
                }
            }
            if (found == nullptr) {
                std::cerr << config_file << ": no module "
                          << (name.empty() ? "of type " + type : "named " + name) << " under modules:\n";
                return 2;
            }
            name = found->name;
            settings = found->settings;
        } catch (const ConfigError& e) {
            std::cerr << e.what() << "\n";
            return 2;
        }
        if (std::string error = create_directories(output); !error.empty()) {
            std::cerr << error << "\n";
            return 2;
        }
    }
    if (name.empty()) name = type;

    try {
        ModuleRuntime runtime(type, name, supervised, kind.capabilities, kind.simulator);
        std::unique_ptr<Module> module = factory(runtime);
        int status = runtime.run(*module, supervised ? nullptr : &settings, output, duration_s);
        module.reset();
        flush_output();
        return status;
    } catch (const std::exception& e) {
        flush_output();
        std::cerr << "pilogger-" << type << " (" << name << "): " << e.what() << "\n";
        return 1;
    }
}

}  // namespace pilogger

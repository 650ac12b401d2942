// The runtime every module executable links: its own libuv loop, the NDJSON protocol on
// stdin/stdout, the lifecycle, the stats heartbeat, signals and the standalone mode.
//
// A module implements the Module interface; main() is one call to run_module().
#pragma once

#include "ndjson.hpp"
#include "settings_schema.hpp"
#include "simulator_launch.hpp"
#include "uv.hpp"

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pilogger {

class ModuleRuntime;

// Answers one command exactly once. Dropping an unanswered Reply answers with an internal error,
// so a forgotten path can never leave the supervisor waiting.
class Reply {
public:
    // Runs after the answer went out: ok, and the result or the error object.
    using AnswerHook = std::function<void(bool ok, const json& body)>;

    Reply() = default;
    Reply(ModuleRuntime* runtime, int64_t id, std::string command, AnswerHook hook = {});
    Reply(Reply&& other) noexcept;
    Reply& operator=(Reply&& other) noexcept;
    Reply(const Reply&) = delete;
    Reply& operator=(const Reply&) = delete;
    ~Reply();

    void ok(const json& result = json::object());
    void error(std::string_view code, std::string_view message);
    bool answered() const { return runtime_ == nullptr; }

private:
    void answer(bool ok, const json& body, std::string_view code, std::string_view message);
    ModuleRuntime* runtime_ = nullptr;
    int64_t id_ = 0;
    std::string command_;
    AnswerHook hook_;
};

struct SessionInfo {
    std::string session_dir;   // the session folder (standalone: --output)
    std::string session_name;
    int64_t session_start_mono_ns = 0;
};

struct RecordingInfo {
    int trial = 0;
    int part = 1;              // > 1 after a restart in the middle of a trial
    std::string label;
    int64_t start_at_mono_ns = 0;
};

// "trial_001" or "trial_001_p2"
std::string trial_file_stem(int trial, int part);

class Module {
public:
    virtual ~Module() = default;
    // What this instance can do beyond its kind's capabilities (ModuleKind), if anything.
    virtual std::vector<std::string> capabilities() const { return {}; }

    // Each hook answers through its Reply, now or later.
    virtual void configure(const json& settings, Reply reply) = 0;
    virtual void start_session(const SessionInfo& session, Reply reply) = 0;
    virtual void start_recording(const RecordingInfo& recording, Reply reply) = 0;
    virtual void stop_recording(int64_t stop_at_mono_ns, Reply reply) = 0;
    virtual void stop_session(Reply reply) = 0;
    // Module-specific commands (note, snapshot, ...). Return false for an unknown command.
    virtual bool command(const std::string& name, const json& args, Reply& reply) {
        (void)name, (void)args, (void)reply;
        return false;
    }
    // Fields merged into every stats heartbeat.
    virtual json stats() { return json::object(); }
    // Close every file (stop recording and session if needed), then call done exactly once.
    virtual void finish(std::function<void()> done) = 0;
    // Standalone mode only: a line typed on stdin that is not a protocol command.
    virtual void standalone_input(const std::string& line) { (void)line; }
};

class ModuleRuntime {
public:
    enum class State { Idle, Configured, InSession, Recording, Finishing };

    ModuleRuntime(std::string type, std::string name, bool supervised,
                  std::vector<std::string> kind_capabilities = {},
                  std::optional<SimulatorHook> simulator = std::nullopt);
    ~ModuleRuntime();

    uv::Loop& loop() { return loop_; }
    const std::string& type() const { return type_; }
    const std::string& name() const { return name_; }
    bool supervised() const { return supervised_; }
    State state() const { return state_; }

    // Events to the supervisor. Non-essential events are dropped (and counted) when the
    // supervisor stops reading; replies never are.
    void emit(std::string_view event, json fields = json::object());
    // Human-readable line on stderr (the module log); warnings and errors also go out as events.
    void log(std::string_view level, const std::string& message);

    // Runs until finished; returns the process exit status.
    int run(Module& module, const json* standalone_settings, const std::string& standalone_output,
            double standalone_duration_s);
    // Finish gracefully (files closed), then leave the loop.
    void request_finish(const std::string& why);

    // Internal: used by Reply.
    void send_reply(int64_t id, const std::string& command, bool ok, const json& result,
                    std::string_view code, std::string_view message);

private:
    void on_stdin(std::string_view chunk);
    void on_line(std::string_view line);
    void dispatch(const Message& message);
    void send_line(std::string line, bool essential);
    void send_stats();
    void set_state(State s);
    void start_standalone(const json& settings, const std::string& output, double duration_s);
    // The module's configure, after starting the kind's simulator when the settings choose it.
    void configure_module(json settings, Reply reply);
    void close_handles();
    Reply make_reply(const Message& m, Reply::AnswerHook hook = {});

    std::string type_;
    std::string name_;
    std::vector<std::string> kind_capabilities_;
    std::optional<SimulatorHook> simulator_hook_;
    bool supervised_;
    State state_ = State::Idle;
    Module* module_ = nullptr;
    uv::Loop loop_;
    std::unique_ptr<uv::Stream> stdin_;
    std::unique_ptr<uv::Stream> stdout_;
    std::unique_ptr<uv::Timer> stats_timer_;
    std::unique_ptr<uv::Timer> duration_timer_;
    std::unique_ptr<uv::Signal> sigint_;
    std::unique_ptr<uv::Signal> sigterm_;
    std::unique_ptr<SimulatorLaunch> simulator_;
    LineFramer framer_;
    bool finishing_ = false;
    uint64_t events_dropped_ = 0;
    uint64_t log_lines_dropped_ = 0;  // stderr not read fast enough
    uint64_t bad_lines_ = 0;
    int64_t stats_interval_ms_ = 500;
    int64_t started_mono_ns_ = 0;
    std::unique_ptr<Reply> shutdown_reply_;
    int exit_status_ = 0;
    int64_t session_start_mono_ns_ = 0;
    pid_t supervisor_pid_ = 0;  // supervised: our parent at start; another parent means it died
    bool orphaned_ = false;
};

const char* to_string(ModuleRuntime::State state);

using ModuleFactory = std::function<std::unique_ptr<Module>(ModuleRuntime&)>;

// The whole main() of a module executable:
//   supervised:  pilogger-<kind> --supervised --name NAME
//   standalone:  pilogger-<kind> --config FILE [--name NAME] --output DIR [--duration S]
//   described:   pilogger-<kind> --describe   (the kind's settings and capabilities as JSON)
int run_module(int argc, char** argv, const ModuleKind& kind, const std::string& description,
               const ModuleFactory& factory);

}  // namespace pilogger

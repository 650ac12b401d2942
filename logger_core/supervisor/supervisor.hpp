// The supervisor: owns the session, spawns one process per module, drives every module towards
// the desired session and trial state, watches heartbeats, restarts what crashes, and serves
// the control socket. Everything runs on one libuv loop. Its parts are in supervisor*.cpp, one
// responsibility each (supervisor.cpp says which).
#pragma once

#include "config.hpp"
#include "control_server.hpp"
#include "module_process.hpp"
#include "paths.hpp"
#include "rate_limit.hpp"
#include "session.hpp"
#include "uv.hpp"

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pilogger {

class PicoEmulator;
class PicoLink;

struct SupervisorOptions {
    Config config;
    std::string config_text;     // the YAML as read, kept in session.json
    std::string socket_path;     // empty: control_socket_path()
    bool start_session = true;
    std::string session_label;   // empty: the config's session_label
    bool record = false;         // start trial 1 at once
    std::string trial_label;
    double duration_s = 0;       // > 0: stop the trial and the session after this long, then exit
};

class Supervisor : public ModuleHost {
public:
    using LogSink = std::function<void(std::string_view level, const std::string& message)>;

    Supervisor(uv::Loop& loop, SupervisorOptions options, LogSink log_sink);
    ~Supervisor() override;

    // Takes the instance lock and the control socket (throws AlreadyRunning or uv::Error), then
    // starts the modules and, if asked, the session and trial. The caller runs the loop.
    void start();
    void shutdown(const std::string& why);
    bool shutting_down() const { return shutting_down_; }
    bool finished() const { return finished_; }
    int exit_code() const { return exit_code_; }

    json status() const;
    // Every session folder this supervisor created, oldest first.
    const std::vector<std::string>& session_dirs() const { return session_dirs_; }

    void start_session(const std::string& label, ResultCallback done);
    void stop_session(ResultCallback done);
    void start_trial(const std::string& label, ResultCallback done);
    void stop_trial(ResultCallback done, std::optional<int64_t> stop_at_mono_ns = std::nullopt);
    void add_note(const std::string& text, std::optional<int64_t> client_mono_ns, ResultCallback done);
    void module_action(const std::string& action, const std::string& name, ResultCallback done);
    // Forwards a module-specific command (snapshot, ...) to one module, or to every running
    // module with name "*"; the answer carries each module's own answer.
    void module_command(const std::string& name, const std::string& cmd, const json& args, ResultCallback done);

    // ModuleHost
    void module_hello(ModuleProcess& module) override;
    void module_state_changed(ModuleProcess& module) override;
    void module_event(ModuleProcess& module, const ModuleEvent& event) override;
    void module_stderr(ModuleProcess& module, std::string_view line) override;
    void module_incident(ModuleProcess& module, std::string_view event, const std::string& detail) override;

private:
    struct Trial {
        int number = 0;
        std::string label;
        int64_t start_at_mono_ns = 0;
        int64_t stop_at_mono_ns = 0;  // 0 while recording
    };
    // What a module process has acknowledged so far, and what it is being driven to.
    struct Phase {
        bool configured = false;
        int session_generation = 0;  // 0: no session open in the module
        int trial = 0;               // 0: not recording
        int last_trial_started = 0;
        int part = 0;
        bool step_in_flight = false;
        bool blocked = false;        // a step failed; wait for the desired state to change
        std::vector<ResultCallback> waiters;
        CommandResult last_failure;
    };
    struct Entry {
        std::unique_ptr<ModuleProcess> process;
        Phase phase;
    };
    struct PendingNote {
        json args;
        ResultCallback done;
    };

    // supervisor.cpp
    void log(std::string_view level, const std::string& message);
    void record_event(std::string_view event, std::string_view module, const std::string& detail,
                      std::optional<int64_t> at_mono_ns = std::nullopt);
    void broadcast(std::string_view event, json fields);
    void rewrite_session_json();
    json session_json() const;
    void finish_shutdown();
    void start_modules();
    // The Pico W link, and its emulator first when it has one.
    void start_pico();
    void maybe_start_planned_trial();
    void tick();

    // supervisor_lifecycle.cpp
    Entry* find(const std::string& name);
    Entry* entry_of(ModuleProcess& module);
    // Issues the next lifecycle step for one module, or reports convergence to its waiters.
    void sync(Entry& entry);
    void converge(Entry& entry, const CommandResult& result);
    void step_done(Entry& entry, const CommandResult& result, const std::function<void()>& on_ok);
    // Drives every module towards the desired state; done gets {module: result} when all settle.
    void sync_all(std::function<void(json results, bool all_ok)> done);
    void unblock_all();
    int want_session() const;
    int want_trial() const;
    int64_t stop_at_for(int trial) const;

    // supervisor_session.cpp
    // Stopping a session in two halves, so shutdown can stop the processes in between.
    void leave_session(ResultCallback done);
    void close_session_files(const json& module_results, ResultCallback done);
    // Runs then once CLOCK_MONOTONIC has reached at_mono_ns (never early).
    void wait_until(int64_t at_mono_ns, std::function<void()> then);

    // supervisor_notes.cpp
    // The enabled module with the capability "note", or nullptr.
    Entry* notes_module();
    // The modules recording now, but for the notes module itself.
    std::vector<std::string> recording_modules() const;
    void deliver_notes();
    // At the session's close: each note still queued becomes a note_undelivered row in events.csv.
    void record_undelivered_notes();

    // supervisor_control.cpp
    void handle_control(ControlServer::ClientId client, const Message& request);

    // supervisor_disk.cpp
    void check_disk();
    // Why a trial must not record now for lack of space; "" when there is room.
    std::string disk_too_full() const;

    uv::Loop& loop_;
    SupervisorOptions options_;
    LogSink log_sink_;
    const Config& config_;
    std::unique_ptr<InstanceLock> lock_;
    std::unique_ptr<ControlServer> control_;
    std::vector<Entry> modules_;

    std::unique_ptr<Session> session_;
    int session_generation_ = 0;
    bool session_starting_ = false;
    std::optional<Trial> trial_;
    std::vector<Trial> trials_;
    int64_t next_note_id_ = 1;
    std::deque<PendingNote> queued_notes_;
    uint64_t notes_dropped_ = 0;
    size_t note_bytes_waiting_ = 0;  // text of the notes queued or sent to the notes module, not answered yet
    uint64_t module_commands_refused_ = 0;  // a module had not read clients' earlier commands yet
    int64_t disk_free_bytes_ = -1;
    bool disk_check_in_flight_ = false;
    int64_t disk_sampled_mono_ns_ = 0;
    double disk_write_rate_ = 0;  // bytes/s, the recent peak of the measured fall in free space

    uv::Timer tick_timer_;
    uv::Timer disk_timer_;
    uv::Timer duration_timer_;
    std::vector<std::unique_ptr<uv::Timer>> waits_;  // pending wait_until() timers
    uv::Signal sigint_;
    uv::Signal sigterm_;
    uv::Signal sighup_;
    uv::Requests requests_;  // thread-pool work: session folders, the disk check
    int signals_seen_ = 0;
    bool shutting_down_ = false;
    bool finished_ = false;
    bool session_closing_ = false;
    bool waiting_to_record_ = false;   // run --record: start the trial once modules are up
    int64_t ready_deadline_mono_ns_ = 0;
    std::optional<int64_t> planned_stop_at_;
    int exit_code_ = 0;
    int64_t started_mono_ns_ = 0;
    int64_t last_tick_mono_ns_ = 0;
    RateLimit control_problem_limit_{2, 10};  // control-client problems written to events.csv
    // Notes and module commands refused for load: their own budget, so a storm of them never
    // crowds out why a client was disconnected.
    RateLimit refusal_limit_{2, 10};
    int64_t control_flood_reported_ns_ = 0;   // the last summary of those it held back
    std::vector<std::string> session_dirs_;
    json host_ = json::object();  // hostname, kernel, machine, os
    json clock_anchors_ = json::object();  // session start and stop readings of the three clocks
    std::unique_ptr<PicoLink> pico_;       // the Pico W sync link, when pico: is configured
    std::unique_ptr<PicoEmulator> pico_emulator_;  // its simulated twin, for device: emulator
};

}  // namespace pilogger

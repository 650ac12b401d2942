// The supervisor's handle on one module process: spawn, protocol, ACKs with timeouts,
// heartbeat watch, restart with exponential back-off, graceful stop.
#pragma once

#include "child_process.hpp"
#include "config.hpp"
#include "module_message.hpp"
#include "ndjson.hpp"
#include "rate_limit.hpp"
#include "uv.hpp"

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace pilogger {

struct CommandResult {
    bool ok = false;
    json result;         // ok: the module's result
    std::string code;    // !ok: error code and message
    std::string message;

    static CommandResult failure(std::string code, std::string message) {
        return CommandResult{false, json::object(), std::move(code), std::move(message)};
    }
    json to_json() const;
};
using ResultCallback = std::function<void(const CommandResult&)>;

class ModuleProcess;

// What a module process reports to its owner (the supervisor).
class ModuleHost {
public:
    virtual ~ModuleHost() = default;
    // The module said hello: configure it and bring it up to the current session and trial.
    virtual void module_hello(ModuleProcess& module) = 0;
    virtual void module_state_changed(ModuleProcess& module) = 0;
    virtual void module_event(ModuleProcess& module, const ModuleEvent& event) = 0;
    virtual void module_stderr(ModuleProcess& module, std::string_view line) = 0;
    // Something the supervisor records in events.csv: crash, hang, restart, ack timeout...
    virtual void module_incident(ModuleProcess& module, std::string_view event, const std::string& detail) = 0;
};

class ModuleProcess {
public:
    enum class State { Disabled, Starting, Configuring, Ready, Recording, Stopping, Restarting, Error, Exited };

    ModuleProcess(uv::Loop& loop, ModuleHost& host, ModuleConfig config, const SupervisorSettings& settings);
    ~ModuleProcess();

    const std::string& name() const { return config_.name; }
    const std::string& type() const { return config_.type; }
    const ModuleConfig& config() const { return config_; }
    State state() const { return state_; }
    bool enabled() const { return enabled_; }
    int pid() const { return child_ ? child_->pid() : 0; }
    int restarts() const { return restarts_; }
    const std::string& last_error() const { return last_error_; }
    const json& last_stats() const { return last_stats_; }
    // Valid once the module said hello (said_hello()).
    const ModuleHello& hello() const { return hello_; }
    bool said_hello() const { return said_hello_; }
    bool has_capability(const std::string& capability) const;
    // Running and past its hello: commands can be sent.
    bool connected() const;
    // Commands written to its stdin that it has not read yet (bytes).
    size_t unread_input_bytes() const { return child_ ? child_->unread_input_bytes() : 0; }

    void start();
    // Sends a command; cb runs exactly once (answer, timeout, or the process going away).
    void send(const std::string& cmd, const json& args, ResultCallback cb, int64_t timeout_ms = 0);
    // The supervisor moves the state along as the lifecycle commands are acknowledged.
    void set_state(State s);
    void set_error(const std::string& message);

    // A command went unanswered and no answer has come since.
    bool unresponsive() const { return consecutive_ack_timeouts_ > 0; }
    // SIGKILL and restart: for a module that is out of step with the supervisor.
    void recover(const std::string& why) { kill_hung(why); }

    // Graceful: shutdown command, wait, SIGTERM, wait, SIGKILL. No restart afterwards.
    void stop(std::function<void()> done);
    void enable();
    void disable(std::function<void()> done);
    // Graceful stop, then a fresh process.
    void restart(const std::string& why);
    // Periodic check of ACK deadlines and the heartbeat; now in mono ns.
    void tick(int64_t now);
    // The supervisor's own loop stood still for stall_ns: the module's output waited in the pipe
    // meanwhile, so its silence and unanswered commands in that time are not its fault.
    void excuse_stall(int64_t stall_ns);
    json status() const;

private:
    void spawn();
    void on_stdout(std::string_view chunk);
    // Hands lines to on_line within the read budget; returns the bytes used (the rest waits).
    size_t feed_stdout(std::string_view chunk);
    // Stops reading stdout until the budget's next window (a timer resumes it).
    void pause_stdout();
    void resume_stdout();
    void on_stderr(std::string_view chunk);
    void on_line(std::string_view line);
    void handle_line(ModuleLine&& line);
    void handle_reply(ModuleReply&& reply);
    void handle_hello(ModuleHello&& hello);
    // A line that broke the protocol: counted, and recorded at a bounded rate.
    void protocol_error(const std::string& problem, const std::string& field = {});
    // Pauses reading stderr once its budget ran out; reading resumes when its window ends.
    void pause_stderr_if_over_budget();
    void report_suppressed();
    void on_exit(int64_t status, int signal);
    void fail_pending(const std::string& code, const std::string& message);
    void schedule_restart(const std::string& why);
    void kill_hung(const std::string& why);

    uv::Loop& loop_;
    ModuleHost& host_;
    ModuleConfig config_;
    const SupervisorSettings& settings_;
    std::string executable_;

    std::unique_ptr<ChildProcess> child_;
    LineFramer stdout_framer_;
    std::string stdout_held_;  // read past the line budget: handled when the next window opens
    uint64_t spawn_generation_ = 0;
    LineFramer stderr_framer_{64 * 1024};
    uv::Timer restart_timer_;
    uv::Timer stdout_resume_timer_;
    uv::Timer stderr_resume_timer_;
    ReadBudget stdout_budget_;
    ReadBudget stderr_budget_;
    RateLimit incident_limit_;      // protocol errors recorded in events.csv
    RateLimit message_limit_;       // warning/error/log events passed on
    RateLimit stats_limit_;         // stats events passed on
    int64_t last_suppressed_report_ns_ = 0;

    State state_ = State::Disabled;
    bool enabled_;
    bool stopping_ = false;        // an exit now is expected
    bool restart_after_stop_ = false;
    std::vector<std::function<void()>> on_stopped_;
    ModuleHello hello_;
    bool said_hello_ = false;
    json last_stats_ = json::object();
    std::string last_error_;
    int64_t spawned_mono_ns_ = 0;
    int64_t last_seen_mono_ns_ = 0;
    int64_t backoff_ms_;
    int restarts_ = 0;
    int consecutive_ack_timeouts_ = 0;
    uint64_t bad_lines_ = 0;
    uint64_t lines_suppressed_ = 0;   // well-formed events over the rate limits, not passed on

    struct Pending {
        std::string cmd;
        int64_t deadline_mono_ns;
        ResultCallback cb;
    };
    int64_t next_id_ = 1;
    std::map<int64_t, Pending> pending_;
};

const char* to_string(ModuleProcess::State state);

}  // namespace pilogger

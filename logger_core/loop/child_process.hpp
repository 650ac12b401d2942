// One child program on a libuv loop, owned from spawn to reaping: its pipes, its output as
// bounded lines (or raw chunks for an owner that frames and budgets them itself), an escalating
// stop, and its exit. The process handle stays open until the child has exited, also when the
// owner goes first (the child is then killed and reaped in the background), so no child is ever
// left a zombie or an orphan.
#pragma once

#include "line_framer.hpp"
#include "uv.hpp"

#include <csignal>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pilogger {

class ChildProcess {
public:
    struct Options {
        std::string file;               // looked up on PATH when it has no slash
        std::vector<std::string> args;  // argv, args[0] included
        std::vector<std::string> env;   // KEY=VALUE; empty means inherit
        bool with_stdin = false;        // a pipe to write to; else the child's stdin is closed
        bool detached = false;          // own session: terminal Ctrl-C reaches only us
        int parent_death_signal = SIGKILL;
    };

    // How one of the child's outputs is read. With on_chunk set, chunks come as read and the
    // owner frames them; else complete lines (without the newline) go to on_line, and a line
    // longer than max_line_bytes is dropped and counted through on_overlong.
    struct Output {
        std::function<void(std::string_view line)> on_line;
        std::function<void(size_t dropped_bytes)> on_overlong;
        size_t max_line_bytes = 4096;
        std::function<void(std::string_view chunk)> on_chunk;
        std::function<void()> on_end;  // end of file (or a read error) on this output
    };
    using ExitCallback = std::function<void(int64_t exit_status, int term_signal)>;

    explicit ChildProcess(uv::Loop& loop);
    // A child still running is sent SIGKILL and reaped once it is gone; no callback runs.
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    // A child still running from an earlier spawn is abandoned (killed, reaped, no callbacks).
    // Throws uv::Error naming the program when it cannot be started. on_exit runs once, on the
    // loop, after the exit; a line the child wrote just before may still be on its way then
    // (on_end says when an output is done).
    void spawn(const Options& options, Output out, Output err, ExitCallback on_exit);

    bool running() const { return process_ && process_->running(); }
    int pid() const { return process_ ? process_->pid() : 0; }
    // 0 or a libuv error (ESRCH when it is gone).
    int kill(int signum);

    // Copies data onto the stdin pipe; false when there is none (never opened, or closed).
    bool write(std::string data);
    size_t unread_input_bytes() const { return stdin_ ? stdin_->write_queue_bytes() : 0; }
    // End of file for the child's stdin.
    void close_stdin() { stdin_.reset(); }

    // For an owner that reads by a budget: no more chunks until resumed.
    void pause_stdout() { pause(out_); }
    void resume_stdout() { resume(out_); }
    void pause_stderr() { pause(err_); }
    void resume_stderr() { resume(err_); }

    // Escalating stop: stdin is closed (EOF is "stop" to a well-behaved child), SIGTERM after
    // term_after_ms, SIGKILL term_after_ms + kill_after_ms later. on_step names each signal
    // sent, for the owner's records. The exit callback reports the end as usual.
    void stop(uint64_t term_after_ms, uint64_t kill_after_ms, std::function<void(int signal)> on_step = {});
    bool stopping() const { return stopping_; }

private:
    // One output pipe and how it is read.
    struct Reader {
        std::unique_ptr<uv::Stream> pipe;
        Output output;
        LineFramer framer;
        bool open = false;     // until end of file
        bool reading = false;  // not paused
    };
    // Kills a running child and leaves its handle to reap it; no callback of it runs.
    void abandon();
    void start_reading(Reader& reader);
    void pause(Reader& reader);
    void resume(Reader& reader);
    void on_chunk(Reader& reader, std::string_view chunk);
    void on_end(Reader& reader);

    uv::Loop& loop_;
    std::unique_ptr<uv::Process> process_;
    std::unique_ptr<uv::Stream> stdin_;
    Reader out_;
    Reader err_;
    uv::Timer stop_timer_;
    ExitCallback on_exit_;
    bool stopping_ = false;
};

}  // namespace pilogger

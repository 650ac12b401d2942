// Runs a short helper program to its end on a libuv loop and hands back what it printed:
// avahi-browse for Neon discovery, a module's --list-devices for `pilogger devices`. The result
// comes once the program has exited and both its outputs reached end of file, so nothing it wrote
// just before exiting is lost.
#pragma once

#include "child_process.hpp"
#include "uv.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace pilogger {

class ChildOutput {
public:
    struct Result {
        std::string error;         // the program could not be started (names it); else empty
        int64_t exit_status = -1;
        int term_signal = 0;
        bool timed_out = false;    // killed (SIGKILL) after the timeout
        std::string out;           // stdout, at most max_output_bytes of it
        std::string err;           // stderr, the same
        bool truncated = false;    // it printed more than that on either
        bool ok() const { return error.empty() && !timed_out && term_signal == 0 && exit_status == 0; }
    };
    using Done = std::function<void(Result&& result)>;

    explicit ChildOutput(uv::Loop& loop, size_t max_output_bytes = 1u << 20);
    // A program still running is killed (SIGKILL) and reaped; done is not called.
    ~ChildOutput();
    ChildOutput(const ChildOutput&) = delete;
    ChildOutput& operator=(const ChildOutput&) = delete;

    // args[0] included; file is looked up on PATH when it has no slash. done runs on the loop,
    // once (also when the program cannot be started).
    void start(const std::string& file, std::vector<std::string> args, uint64_t timeout_ms, Done done);
    bool running() const { return static_cast<bool>(done_); }

private:
    void finish_if_done();
    ChildProcess::Output collect(std::string& into);

    uv::Loop& loop_;
    const size_t max_output_bytes_;
    std::unique_ptr<ChildProcess> child_;
    std::unique_ptr<uv::Timer> timer_;
    Result result_;
    bool exited_ = false;
    int outputs_open_ = 0;
    Done done_;
};

}  // namespace pilogger

// The Pico W emulator (pico: device: emulator): pilogger-pico-emulator as a child process, behind
// a pseudo-terminal it links at link_path. Restarted 2 s after it exits, until stop().
#pragma once

#include "child_process.hpp"
#include "pico_config.hpp"
#include "pico_report.hpp"
#include "uv.hpp"

#include <functional>
#include <string>
#include <vector>

namespace pilogger {

class PicoEmulator {
public:
    struct Callbacks {
        // "PTY /dev/pts/N" on its stdout: a (re)plugged pseudo-terminal is behind link_path.
        std::function<void()> announced;
        // The program could not be started (why); it is tried again in 2 s.
        std::function<void(const std::string& why)> spawn_failed;
    };

    PicoEmulator(uv::Loop& loop, PicoEmulatorConfig config, std::string link_path, PicoReporter report,
                 Callbacks callbacks);
    ~PicoEmulator() = default;  // a still running emulator is killed and reaped (ChildProcess)
    PicoEmulator(const PicoEmulator&) = delete;
    PicoEmulator& operator=(const PicoEmulator&) = delete;

    void start();
    // SIGTERM, and SIGKILL 2 s later if it is still there; no restart afterwards.
    void stop();

    // The pseudo-terminal announced last is still there (the emulator has not exited since).
    bool announced() const { return announced_; }
    const std::string& link_path() const { return link_path_; }

private:
    void spawn();
    void on_exit(int64_t status, int signal);
    std::vector<std::string> args(const std::string& executable) const;

    uv::Loop& loop_;
    PicoEmulatorConfig config_;
    std::string link_path_;
    PicoReporter report_;
    Callbacks callbacks_;
    bool stopping_ = false;
    bool announced_ = false;
    ChildProcess child_;
    uv::Timer restart_timer_;
};

}  // namespace pilogger

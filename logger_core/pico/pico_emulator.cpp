#include "pico_emulator.hpp"

#include "paths.hpp"

#include <unistd.h>

#include <csignal>

namespace pilogger {

namespace {
constexpr uint64_t kEmulatorRestartMs = 2000;
constexpr uint64_t kEmulatorKillMs = 2000;
}  // namespace

PicoEmulator::PicoEmulator(uv::Loop& loop, PicoEmulatorConfig config, std::string link_path, PicoReporter report,
                           Callbacks callbacks)
    : loop_(loop),
      config_(std::move(config)),
      link_path_(std::move(link_path)),
      report_(std::move(report)),
      callbacks_(std::move(callbacks)),
      child_(loop),
      restart_timer_(loop) {}

void PicoEmulator::start() {
    if (child_.running()) return;
    stopping_ = false;
    spawn();
}

void PicoEmulator::stop() {
    if (stopping_) return;
    stopping_ = true;
    restart_timer_.stop();
    child_.stop(0, kEmulatorKillMs);
}

std::vector<std::string> PicoEmulator::args(const std::string& executable) const {
    const PicoEmulatorConfig& e = config_;
    std::vector<std::string> args = {executable,
                                     "--link", link_path_,
                                     "--offset-us", std::to_string(e.offset_us),
                                     "--skew-ppm", fixed(e.skew_ppm, 6),
                                     "--latency-us", fixed(e.latency_us, 3),
                                     "--jitter-us", fixed(e.jitter_us, 3),
                                     "--jitter-dist", e.jitter_dist,
                                     "--loss", fixed(e.loss, 6)};
    if (e.split) args.push_back("--split");
    if (e.crlf) args.push_back("--crlf");
    if (e.seed) args.insert(args.end(), {"--seed", std::to_string(*e.seed)});
    auto seconds = [&args](const char* flag, const std::optional<double>& v) {
        if (v) args.insert(args.end(), {flag, fixed(*v, 3)});
    };
    seconds("--reboot-after", e.reboot_after_s);
    seconds("--repl-after", e.repl_after_s);
    seconds("--unplug-after", e.unplug_after_s);
    seconds("--replug-after", e.replug_after_s);
    if (!e.truth_log.empty()) args.insert(args.end(), {"--log", e.truth_log});
    return args;
}

void PicoEmulator::spawn() {
    if (stopping_) return;
    // A link left by an earlier run could point at someone else's terminal by now.
    ::unlink(link_path_.c_str());
    announced_ = false;
    std::string exe = config_.executable.empty() ? find_module_executable("pico-emulator") : config_.executable;
    ChildProcess::Options options;
    options.file = exe;
    options.args = args(exe);
    options.detached = true;  // Ctrl-C on the terminal reaches the supervisor only
    ChildProcess::Output out;
    out.on_line = [this](std::string_view line) {
        if (line.rfind("PTY ", 0) != 0) return;
        announced_ = true;
        report_.log("debug", "Pico W emulator: " + std::string(line));
        if (callbacks_.announced) callbacks_.announced();
    };
    ChildProcess::Output err;
    err.on_line = [this](std::string_view line) { report_.log("info", "Pico W emulator: " + std::string(line)); };
    try {
        child_.spawn(options, std::move(out), std::move(err), [this](int64_t status, int signal) { on_exit(status, signal); });
    } catch (const uv::Error& e) {
        if (callbacks_.spawn_failed) callbacks_.spawn_failed(e.what());
        report_.log("error", std::string("Pico W emulator: ") + e.what() + "; trying again in 2 s");
        report_.event("pico_emulator_error", e.what());
        restart_timer_.start(kEmulatorRestartMs, 0, [this] { spawn(); });
        return;
    }
    std::string command;
    for (const auto& a : options.args) command += (command.empty() ? "" : " ") + a;
    report_.log("info", "Pico W emulator started (pid " + std::to_string(child_.pid()) + "): " + command);
}

void PicoEmulator::on_exit(int64_t status, int signal) {
    announced_ = false;
    if (stopping_) return;
    std::string why = signal != 0 ? "signal " + std::to_string(signal) : "status " + std::to_string(status);
    report_.log("warning", "Pico W emulator exited (" + why + "); starting it again in 2 s");
    report_.event("pico_emulator_exit", why);
    restart_timer_.start(kEmulatorRestartMs, 0, [this] { spawn(); });
}

}  // namespace pilogger

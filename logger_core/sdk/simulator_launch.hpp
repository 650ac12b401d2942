// Runs a module kind's simulated twin (its SimulatorHook) before the module is configured, so the
// module talks to the simulator exactly as to the device and no production class starts one.
#pragma once

#include "child_process.hpp"
#include "settings_schema.hpp"
#include "uv.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <string_view>

namespace pilogger {

class SimulatorLaunch {
public:
    using Log = std::function<void(std::string_view level, const std::string& message)>;
    // The module's settings with what the simulator announced in them, or an error naming it.
    using Ready = std::function<void(nlohmann::json settings, std::string error)>;

    SimulatorLaunch(uv::Loop& loop, SimulatorHook hook, Log log);

    // True when these settings choose the simulator (hook.setting == hook.value).
    static bool selected(const SimulatorHook& hook, const nlohmann::json& settings);
    // The program's command line for these settings (the hook's options section as flags).
    std::vector<std::string> command(const nlohmann::json& settings) const;

    // Starts the program and calls ready once it announced itself (or failed, or did not
    // announce within timeout_ms). ready runs once, on the loop. Started again, it reuses what a
    // running simulator announced.
    void start(nlohmann::json settings, Ready ready, uint64_t timeout_ms = 15000);
    // SIGTERM (a simulator finishes its truth log), SIGKILL a second later; done after the exit.
    void stop(std::function<void()> done);

private:
    void on_stdout_line(std::string_view line);
    void fail(const std::string& why);

    uv::Loop& loop_;
    SimulatorHook hook_;
    Log log_;
    ChildProcess child_;
    uv::Timer timeout_;
    nlohmann::json settings_;
    nlohmann::json announced_;  // an object once it announced
    std::string last_stderr_;
    Ready ready_;
    bool stopping_ = false;
    std::function<void()> on_stopped_;
};

}  // namespace pilogger

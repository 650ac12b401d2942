#include "simulator_launch.hpp"

#include "json_read.hpp"
#include "paths.hpp"

#include <utility>

namespace pilogger {

using json = nlohmann::json;

SimulatorLaunch::SimulatorLaunch(uv::Loop& loop, SimulatorHook hook, Log log)
    : loop_(loop), hook_(std::move(hook)), log_(std::move(log)), child_(loop), timeout_(loop) {}

bool SimulatorLaunch::selected(const SimulatorHook& hook, const json& settings) {
    return read::text(settings, hook.setting, "") == hook.value;
}

std::vector<std::string> SimulatorLaunch::command(const json& settings) const {
    // Next to the module's own program first, as `pilogger config check` looked for it.
    std::vector<std::string> args{find_sibling_executable(hook_.program), "--announce"};
    const json& options = hook_.options.empty() ? json() : read::field(settings, hook_.options);
    if (!options.is_object()) return args;
    for (const auto& [key, value] : options.items()) {
        std::string flag = "--" + key;
        for (char& c : flag) c = c == '_' ? '-' : c;
        if (value.is_boolean()) {
            if (value.get<bool>()) args.push_back(flag);
            continue;
        }
        args.push_back(flag);
        args.push_back(value.is_string() ? value.get<std::string>() : value.dump());
    }
    return args;
}

void SimulatorLaunch::start(json settings, Ready ready, uint64_t timeout_ms) {
    settings_ = std::move(settings);
    if (child_.running() && announced_.is_object()) {
        for (const auto& [key, value] : announced_.items()) settings_[key] = value;
        return ready(settings_, "");
    }
    ready_ = std::move(ready);
    announced_ = json();
    ChildProcess::Options options;
    options.args = command(settings_);
    options.file = options.args.front();
    ChildProcess::Output out;
    out.on_line = [this](std::string_view line) { on_stdout_line(line); };
    ChildProcess::Output err;
    err.on_line = [this](std::string_view line) {
        last_stderr_ = line;
        log_("info", hook_.program + ": " + std::string(line));
    };
    err.max_line_bytes = 64 * 1024;
    try {
        child_.spawn(options, std::move(out), std::move(err), [this](int64_t status, int signal) {
            timeout_.stop();
            std::string why = hook_.program + " exited (status " + std::to_string(status) + ", signal " +
                              std::to_string(signal) + ")";
            if (stopping_) {
                stopping_ = false;
                auto done = std::move(on_stopped_);
                on_stopped_ = nullptr;
                if (done) done();
                return;
            }
            if (ready_) return fail(why + " before it was ready" + (last_stderr_.empty() ? "" : ": " + last_stderr_));
            log_("error", why);
        });
    } catch (const uv::Error& e) {
        // Answered from the loop, like every other outcome.
        timeout_.start(0, 0, [this, why = std::string(e.what())] { fail(why); });
        return;
    }
    log_("info", hook_.program + " started (pid " + std::to_string(child_.pid()) + ")");
    timeout_.start(timeout_ms, 0, [this, timeout_ms] {
        fail(hook_.program + " did not announce itself within " + std::to_string(timeout_ms / 1000) + " s");
        child_.kill(SIGKILL);
    });
}

void SimulatorLaunch::on_stdout_line(std::string_view line) {
    if (!ready_ || announced_.is_object()) return log_("debug", hook_.program + ": " + std::string(line));
    json parsed = json::parse(line, nullptr, false);
    if (!parsed.is_object()) return log_("debug", hook_.program + ": " + std::string(line));
    timeout_.stop();
    announced_ = std::move(parsed);
    for (const auto& [key, value] : announced_.items()) settings_[key] = value;
    Ready ready = std::move(ready_);
    ready_ = nullptr;
    ready(settings_, "");
}

void SimulatorLaunch::fail(const std::string& why) {
    if (!ready_) return;
    Ready ready = std::move(ready_);
    ready_ = nullptr;
    ready(json(), why);
}

void SimulatorLaunch::stop(std::function<void()> done) {
    if (!child_.running()) {
        if (done) done();
        return;
    }
    stopping_ = true;
    on_stopped_ = std::move(done);
    child_.stop(0, 1000);
}

}  // namespace pilogger

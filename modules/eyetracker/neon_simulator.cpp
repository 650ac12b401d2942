// address: simulator, neon-sim as a child process the module connects to once it listens.
#include "eyetracker_module.hpp"

#include "paths.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace pilogger::neon {

// Here because neon-sim is all the destructor stops: it must not outlive the module.
EyetrackerModule::~EyetrackerModule() {
    if (simulator_) simulator_->kill(SIGTERM);
}

void EyetrackerModule::start_simulator() {
    std::string exe = executable_dir() + "/neon-sim";
    if (!std::filesystem::exists(exe)) exe = "neon-sim";
    simulator_port_file_ = runtime_dir() + "/neon-sim-" + std::to_string(getpid()) + ".json";
    std::remove(simulator_port_file_.c_str());
    uv::ProcessOptions options;
    options.file = exe;
    options.args = {exe, "--host", "127.0.0.1", "--http-port", "0", "--rtsp-port", "0", "--time-echo-port", "0",
                    "--port-file", simulator_port_file_};
    for (const auto& [key, value] : settings_.simulator) {
        std::string flag = "--" + key;
        for (char& c : flag) c = c == '_' ? '-' : c;
        if (value == "false") continue;
        options.args.push_back(flag);
        if (value != "true") options.args.push_back(value);
    }
    simulator_stderr_ = std::make_unique<uv::Stream>(runtime_.loop());
    options.stderr_pipe = simulator_stderr_.get();
    simulator_ = std::make_unique<uv::Process>(runtime_.loop());
    simulator_->spawn(options, [this](int64_t status, int signal) {
        if (finishing_) return;
        std::string why = "neon-sim exited (status " + std::to_string(status) + ", signal " + std::to_string(signal) + ")";
        last_error_ = why;
        runtime_.log("error", why);
    });
    auto pending = std::make_shared<std::string>();
    simulator_stderr_->start_read(
        [this, pending](std::string_view chunk) {
            pending->append(chunk);
            size_t newline;
            while ((newline = pending->find('\n')) != std::string::npos) {
                runtime_.log("info", "neon-sim: " + pending->substr(0, newline));
                pending->erase(0, newline + 1);
            }
            if (pending->size() > 64 * 1024) pending->clear();
        },
        [](int) {});
    // The simulator writes its ports once it listens; look for them without blocking the loop.
    simulator_wait_ = std::make_unique<uv::Timer>(runtime_.loop());
    simulator_wait_->start(100, 100, [this] {
        if (device_) return;
        auto ports = std::make_shared<int>(0);
        uv::queue_work(
            runtime_.loop(),
            [file = simulator_port_file_, ports] {
                std::ifstream in(file);
                if (!in) return std::string("not yet");
                std::stringstream text;
                text << in.rdbuf();
                json parsed = json::parse(text.str(), nullptr, false);
                if (!parsed.is_object() || !parsed.contains("http")) return std::string("not yet");
                *ports = parsed["http"].get<int>();
                return std::string();
            },
            [this, ports](const std::string& error) {
                if (!error.empty() || device_ || finishing_ || *ports <= 0) return;
                simulator_wait_->stop();
                std::remove(simulator_port_file_.c_str());
                connect_device("127.0.0.1", *ports);
            });
    });
}

}  // namespace pilogger::neon

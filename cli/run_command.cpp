#include "commands.hpp"

#include "json_read.hpp"

#include "clock.hpp"
#include "config.hpp"
#include "output_queue.hpp"
#include "supervisor.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace pilogger::cli {

namespace {

// Log lines scroll above one live status line when stderr is a terminal; plain lines otherwise.
class Console {
public:
    Console() : tty_(isatty(STDERR_FILENO) != 0) {}
    bool tty() const { return tty_; }

    void log(std::string_view level, const std::string& message) {
        clear();
        std::string prefix = level == "error" ? "error: " : level == "warning" ? "warning: " : "";
        std::string line = tty_ ? prefix + message : wall_time_utc_now() + " " + std::string(level) + " " + message;
        write_line(line + "\n");
        draw();
    }
    void status(const std::string& line) {
        if (!tty_) return;
        status_ = line;
        draw();
    }
    void clear() {
        if (tty_ && shown_) write_line("\r\033[K");
        shown_ = false;
    }

private:
    void draw() {
        if (!tty_ || status_.empty()) return;
        // Keep to one terminal row so \r can redraw it.
        std::string line = status_.size() > 200 ? status_.substr(0, 200) : status_;
        write_line("\r\033[K" + line);
        shown_ = true;
    }
    // The terminal may be paused (Ctrl-S), frozen (ssh) or gone: the loop thread never waits
    // for it. Status lines and log lines beyond the queue are dropped, and counted.
    static void write_line(const std::string& s) { stderr_queue().write(s); }
    bool tty_;
    bool shown_ = false;
    std::string status_;
};

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

void print_session_contents(const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::vector<std::pair<std::string, uintmax_t>> files;
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file(ec)) files.emplace_back(fs::relative(it->path(), dir, ec).string(), it->file_size(ec));
    }
    std::sort(files.begin(), files.end());
    for (const auto& [name, size] : files) std::cout << "  " << name << "  (" << size << " bytes)\n";
}

}  // namespace

int run(const RunArgs& args) {
    SupervisorOptions options;
    try {
        options.config = load_config_file(args.config_file);
    } catch (const ConfigError& e) {
        std::cerr << e.what() << "\n";
        return 2;
    }
    options.config_text = read_text(args.config_file);
    if (!args.data_dir.empty()) options.config.data_dir = expand_home(args.data_dir);
    options.session_label = args.label;
    options.record = args.record;
    options.trial_label = args.trial_label;
    options.duration_s = args.duration_s;
    // Relative data folders are taken from where pilogger was started.
    if (!options.config.data_dir.empty() && options.config.data_dir.front() != '/') {
        options.config.data_dir = (std::filesystem::current_path() / options.config.data_dir).lexically_normal().string();
    }

    Console console;
    int exit_code = 0;
    std::vector<std::string> session_dirs;
    json final_status;
    {
        uv::Loop loop;
        Supervisor supervisor(loop, std::move(options),
                              [&console](std::string_view level, const std::string& message) { console.log(level, message); });
        try {
            supervisor.start();
        } catch (const AlreadyRunning& e) {
            std::cerr << "pilogger: " << e.what() << "\n";
            return 3;
        } catch (const std::exception& e) {
            std::cerr << "pilogger: cannot start: " << e.what() << "\n";
            return 1;
        }
        uv::Timer status_timer(loop);
        status_timer.start(250, 500, [&] { console.status(status_line(supervisor.status())); });
        status_timer.unref();  // the status line never keeps the supervisor alive
        loop.run();
        console.clear();
        stderr_queue().flush(std::chrono::milliseconds(1000));
        exit_code = supervisor.exit_code();
        session_dirs = supervisor.session_dirs();
        final_status = supervisor.status();
    }

    for (const auto& dir : session_dirs) {
        std::cout << "Session: " << dir << "\n";
        print_session_contents(dir);
    }
    std::cout << "Modules:\n";
    for (const auto& m : read::field(final_status, "modules")) std::cout << "  " << module_summary(m) << "\n";
    return exit_code;
}

}  // namespace pilogger::cli

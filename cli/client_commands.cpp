#include "commands.hpp"

#include "json_read.hpp"

#include "config.hpp"
#include "control_client.hpp"
#include "paths.hpp"

#include <iostream>
#include <stdexcept>
#include <thread>

namespace pilogger::cli {

namespace {
// Runs fn against the supervisor; turns the failures into a message and an exit code.
template <typename Fn>
int with_client(Fn fn) {
    try {
        ControlClient client(control_socket_path());
        return fn(client);
    } catch (const NotRunning& e) {
        std::cerr << e.what() << "\n";
        return 3;
    } catch (const CommandFailed& e) {
        std::cerr << "pilogger: " << e.what() << " (" << e.code() << ")\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "pilogger: " << e.what() << "\n";
        return 1;
    }
}

void print_module_results(const json& result) {
    const json modules = read::field(result, "modules");
    for (const auto& [name, r] : modules.items()) {
        if (read::flag(r, "ok", false)) continue;
        std::cerr << "  " << name << ": " << read::text(read::field(r, "error"), "message", "failed") << "\n";
    }
}
}  // namespace

int client_command(const std::string& cmd, const json& args, bool print_json) {
    return with_client([&](ControlClient& client) {
        json result = client.request(cmd, args);
        if (print_json) {
            std::cout << result.dump(2) << "\n";
            return 0;
        }
        if (cmd == "session_start") {
            std::cout << "session started: " << read::text(result, "session_dir", "") << "\n";
        } else if (cmd == "session_stop") {
            std::cout << "session stopped: " << read::text(result, "session_dir", "") << "\n";
        } else if (cmd == "trial_start") {
            std::cout << "trial " << read::integer(result, "trial", 0) << " recording\n";
        } else if (cmd == "trial_stop") {
            std::cout << "trial " << read::integer(result, "trial", 0) << " stopped\n";
        } else if (cmd == "note") {
            std::cout << "note " << read::integer(result, "note_id", 0)
                      << (read::flag(result, "queued", false) ? " queued (the notes module is restarting)" : " saved") << "\n";
        } else if (result.contains("module") && result.contains("state")) {
            std::cout << read::text(result, "module", "") << ": " << read::text(result, "state", "") << "\n";
        } else {
            std::cout << cmd << ": " << result.dump() << "\n";
        }
        print_module_results(result);
        return 0;
    });
}

int snapshot(const std::vector<std::string>& cameras, bool print_json) {
    return with_client([&](ControlClient& client) {
        std::vector<std::string> names = cameras;
        if (names.empty()) {
            const json status = client.request("status");
            for (const json& m : read::field(status, "modules")) {
                if (has_capability(m, "snapshot") && read::flag(m, "enabled", false)) names.push_back(read::text(m, "name", ""));
            }
            if (names.empty()) throw std::runtime_error("no enabled module takes snapshots (none has the capability 'snapshot')");
        }
        json saved = json::object();
        int failed = 0;
        for (const std::string& name : names) {
            try {
                json r = client.request("module_command", json{{"name", name}, {"cmd", "snapshot"}, {"args", json::object()}});
                saved[name] = r;
                if (!print_json) std::cout << name << ": " << read::text(r, "path", "") << "\n";
            } catch (const CommandFailed& e) {
                // One camera without a frame must not hide the others' stills.
                ++failed;
                saved[name] = json{{"error", e.what()}};
                std::cerr << name << ": " << e.what() << "\n";
            }
        }
        if (print_json) std::cout << saved.dump(2) << "\n";
        return failed == 0 ? 0 : 1;
    });
}

int status(bool print_json) {
    return with_client([&](ControlClient& client) {
        json s = client.request("status");
        std::cout << (print_json ? s.dump(2) + "\n" : status_report(s));
        return 0;
    });
}

int shutdown(bool wait) {
    return with_client([&](ControlClient& client) {
        client.request("shutdown");
        if (!wait) {
            std::cout << "shutdown requested\n";
            return 0;
        }
        // The supervisor closes the connection when it is done; files are closed by then.
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
        while (std::chrono::steady_clock::now() < deadline) {
            try {
                client.next_event(std::chrono::milliseconds(500));
            } catch (const std::runtime_error&) {
                std::cout << "pilogger stopped\n";
                return 0;
            }
        }
        std::cerr << "pilogger: the supervisor is still shutting down after 120 s\n";
        return 1;
    });
}

int config_check(const std::string& file) {
    try {
        Config config = load_config_file(file);
        std::cout << file << ": OK\n  data_dir: " << config.data_dir << "\n  modules:";
        for (const auto& m : config.modules) {
            std::cout << " " << m.name << (m.type != m.name ? " (" + m.type + ")" : "") << (m.enabled ? "" : " [disabled]");
        }
        std::cout << "\n  pico: ";
        if (config.pico) {
            json pico = config.to_json()["pico"];
            std::cout << "device " << read::text(pico, "device", "?") << ", LED on GPIO " << read::field(pico, "led_pin").dump();
        } else {
            std::cout << "none";
        }
        std::cout << "\n";
        return 0;
    } catch (const ConfigError& e) {
        std::cerr << e.what() << "\n";
        return 2;
    }
}

}  // namespace pilogger::cli

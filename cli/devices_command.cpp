// `pilogger devices`: what this computer can record from. The cameras come from
// `pilogger-camera --list-devices` (so pilogger itself never links libcamera), the Neons from
// `pilogger-eyetracker --list-devices` (mDNS), both run side by side; the Pico W is the USB serial
// device `pico: device: auto` would open.
#include "child_output.hpp"
#include "commands.hpp"
#include "paths.hpp"
#include "pico_link.hpp"
#include "uv.hpp"

#include <unistd.h>

#include <array>
#include <climits>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace pilogger::cli {

namespace {

// A listing takes a second or two; libcamera probing a stuck camera may take longer.
constexpr uint64_t kListTimeoutMs = 30000;

struct Lister {
    const char* module;   // the module type whose executable lists
    const char* heading;  // for people
    const char* key;      // its part of the JSON
    ChildOutput::Result result;
};

// Why a listing failed, in words; empty when it worked.
std::string failure(const Lister& l, const std::string& exe) {
    if (!l.result.error.empty()) return l.result.error + " (" + exe + " belongs next to pilogger)";
    if (l.result.timed_out) return exe + " gave no answer in " + std::to_string(kListTimeoutMs / 1000) + " s";
    if (l.result.ok()) return {};
    std::string said = l.result.err;
    while (!said.empty() && (said.back() == '\n' || said.back() == '\r')) said.pop_back();
    if (!said.empty()) return said;
    return exe + " failed (exit status " + std::to_string(l.result.exit_status) + ", signal " +
           std::to_string(l.result.term_signal) + ")";
}

std::string indented(const std::string& text) {
    std::istringstream lines(text);
    std::string out;
    for (std::string line; std::getline(lines, line);) out += "  " + line + "\n";
    return out;
}

struct SerialPort {
    std::string path;
    std::string device;  // what the by-id link points to
};

std::vector<SerialPort> pico_ports() {
    std::vector<SerialPort> ports;
    for (const std::string& path : pico_auto_devices()) {
        std::array<char, PATH_MAX> real{};
        const char* resolved = ::realpath(path.c_str(), real.data());
        ports.push_back({path, resolved != nullptr ? resolved : ""});
    }
    return ports;
}

}  // namespace

int devices(bool as_json) {
    std::array<Lister, 2> listers{{{"camera", "Cameras (libcamera)", "cameras", {}},
                                   {"eyetracker", "Neon eye trackers (mDNS)", "neons", {}}}};
    std::array<std::string, 2> executables;
    uv::Loop loop;
    {
        std::vector<std::unique_ptr<ChildOutput>> running;
        for (size_t i = 0; i < listers.size(); ++i) {
            executables[i] = find_module_executable(listers[i].module);
            std::vector<std::string> args{executables[i], "--list-devices"};
            if (as_json) args.emplace_back("--json");
            running.push_back(std::make_unique<ChildOutput>(loop));
            running.back()->start(executables[i], args, kListTimeoutMs,
                                  [&lister = listers[i]](ChildOutput::Result&& r) { lister.result = std::move(r); });
        }
        loop.run();
    }
    loop.run();  // the handles' close callbacks
    const std::vector<SerialPort> picos = pico_ports();

    if (as_json) {
        json out = json::object();
        json errors = json::object();
        for (size_t i = 0; i < listers.size(); ++i) {
            const Lister& l = listers[i];
            const std::string why = failure(l, executables[i]);
            json part = json::parse(l.result.out, nullptr, false);
            if (why.empty() && part.is_object()) {
                for (const auto& [key, value] : part.items()) out[key] = value;
            } else {
                out[l.key] = json::array();
                errors[l.key] = why.empty() ? executables[i] + " printed no JSON" : why;
            }
        }
        json ports = json::array();
        for (const SerialPort& p : picos) ports.push_back({{"path", p.path}, {"device", p.device}});
        out["picos"] = ports;
        if (!errors.empty()) out["errors"] = errors;
        std::cout << out.dump(2) << "\n";
        return 0;
    }
    for (size_t i = 0; i < listers.size(); ++i) {
        const Lister& l = listers[i];
        std::cout << l.heading << ":\n";
        const std::string why = failure(l, executables[i]);
        std::cout << indented(why.empty() ? l.result.out : "cannot list: " + why) << "\n";
    }
    std::cout << "Pico W (USB serial, as pico: device: auto finds it):\n";
    if (picos.empty()) {
        std::cout << "  None plugged in: no device matches " << kPicoAutoGlob
                  << " (a Pico W running MicroPython shows up there).\n";
    }
    for (const SerialPort& p : picos) {
        std::cout << "  " << p.path << (p.device.empty() ? "" : " -> " + p.device) << "\n";
    }
    return 0;
}

}  // namespace pilogger::cli

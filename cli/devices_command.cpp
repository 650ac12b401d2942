// `pilogger devices`: what this computer can record from. Every kind of module next to pilogger
// whose description has the capability "devices" is asked, all side by side, with
// `pilogger-<kind> --list-devices [--json]` (so pilogger itself never links libcamera or browses
// mDNS); the Pico W is the USB serial device `pico: device: auto` would open.
#include "child_output.hpp"
#include "commands.hpp"
#include "module_catalog.hpp"
#include "paths.hpp"
#include "pico_link.hpp"
#include "uv.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
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
    std::string kind;
    std::string heading;     // for people
    std::string executable;
    ChildOutput::Result result;
};

// The kinds that list devices, in the order of their names. A kind that cannot describe itself
// is said on stderr and skipped: the others still list.
std::vector<Lister> device_listers() {
    std::vector<Lister> listers;
    for (const std::string& type : kinds_next_to_pilogger()) {
        std::string why;
        std::shared_ptr<const ModuleKind> kind = program_catalog().describe(type, "", &why);
        if (!kind) {
            std::cerr << "pilogger devices: type '" << type << "': " << why << "\n";
            continue;
        }
        const auto& caps = kind->capabilities;
        if (std::find(caps.begin(), caps.end(), "devices") == caps.end()) continue;
        std::string heading = kind->devices_heading;
        if (heading.empty()) {
            heading = kind->summary;
            if (!heading.empty()) heading[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(heading[0])));
        }
        listers.push_back({type, heading, find_module_executable(type), {}});
    }
    return listers;
}

// Why a listing failed, in words; empty when it worked.
std::string failure(const Lister& l) {
    const std::string& exe = l.executable;
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
    std::vector<Lister> listers = device_listers();
    uv::Loop loop;
    {
        std::vector<std::unique_ptr<ChildOutput>> running;
        for (Lister& lister : listers) {
            std::vector<std::string> args{lister.executable, "--list-devices"};
            if (as_json) args.emplace_back("--json");
            running.push_back(std::make_unique<ChildOutput>(loop));
            running.back()->start(lister.executable, args, kListTimeoutMs,
                                  [&lister](ChildOutput::Result&& r) { lister.result = std::move(r); });
        }
        loop.run();
    }
    loop.run();  // the handles' close callbacks
    const std::vector<SerialPort> picos = pico_ports();

    if (as_json) {
        // Each kind prints one object ({"cameras": [...]}); their keys side by side.
        json out = json::object();
        json errors = json::object();
        for (const Lister& l : listers) {
            const std::string why = failure(l);
            json part = json::parse(l.result.out, nullptr, false);
            if (why.empty() && part.is_object()) {
                for (const auto& [key, value] : part.items()) out[key] = value;
            } else {
                errors[l.kind] = why.empty() ? l.executable + " printed no JSON object" : why;
            }
        }
        json ports = json::array();
        for (const SerialPort& p : picos) ports.push_back({{"path", p.path}, {"device", p.device}});
        out["picos"] = ports;
        if (!errors.empty()) out["errors"] = errors;
        std::cout << out.dump(2) << "\n";
        return 0;
    }
    for (const Lister& l : listers) {
        std::cout << l.heading << ":\n";
        const std::string why = failure(l);
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

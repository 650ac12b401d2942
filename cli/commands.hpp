// The pilogger subcommands. Exit codes: 0 done, 1 the supervisor refused or failed,
// 2 bad usage or config, 3 no supervisor running (or, for run, one already running).
#pragma once

#include "ndjson.hpp"

#include <string>
#include <vector>

namespace pilogger::cli {

struct RunArgs {
    std::string config_file;
    std::string data_dir;
    std::string label;
    bool record = false;
    std::string trial_label;
    double duration_s = 0;
};

int run(const RunArgs& args);
// One request over the control socket; prints the answer for a person (or as JSON).
int client_command(const std::string& cmd, const json& args, bool print_json);
int status(bool print_json);
// A full-resolution still from each named camera (when none is named, every enabled module with
// the capability "snapshot"), saved in the session's camera folder; prints each file.
int snapshot(const std::vector<std::string>& cameras, bool print_json);
int shutdown(bool wait);
int config_check(const std::string& file);
// Lists what each kind of module with the capability "devices" finds (its --list-devices), and
// the Pico W.
int devices(bool as_json);

// Formatting shared by run's status line and `pilogger status`.
std::string format_duration(double seconds);
std::string status_line(const json& status);
std::string status_report(const json& status);
std::string module_summary(const json& module);
// Whether a module in the status declares the capability ("snapshot", ...); clients pick modules
// by capability, never by type.
bool has_capability(const json& module, const std::string& capability);

}  // namespace pilogger::cli

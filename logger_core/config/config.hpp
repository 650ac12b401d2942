// YAML configuration: loading, validation and the typed result.
//
// Every error names the file, line and column, the full key and what was expected. Unknown keys
// are errors so typos never pass silently.
#pragma once

#include "module_catalog.hpp"
#include "pico_config.hpp"
#include "yaml_map.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pilogger {


struct SupervisorSettings {
    int64_t ack_timeout_ms = 2000;
    int64_t heartbeat_timeout_ms = 3000;
    int64_t trial_start_delay_ms = 200;
    int64_t shutdown_timeout_ms = 5000;
    int64_t terminate_timeout_ms = 2000;
    int64_t restart_backoff_initial_ms = 500;
    int64_t restart_backoff_max_ms = 30000;
    int64_t restart_healthy_reset_s = 60;
    int64_t clock_anchor_interval_ms = 1000;
    int64_t disk_check_interval_ms = 250;
};

struct ModuleConfig {
    std::string name;        // instance name, the key under modules:
    std::string type;        // notes, test, ...
    bool enabled = true;
    std::string executable;  // override; empty: pilogger-<type> next to pilogger
    nlohmann::json settings = nlohmann::json::object();  // type-specific, validated
    double disk_bytes_per_s = 0;  // at most, as its kind's description says
    // Its kind's capabilities ("note", "snapshot", "preview", "devices"): the supervisor and the
    // clients pick modules by these, never by type, and know them before the module's hello.
    std::vector<std::string> capabilities;

    bool has_capability(const std::string& capability) const;
};

struct Config {
    std::string source_file;
    std::string data_dir;
    std::string session_label;
    std::string log_level = "info";
    int64_t disk_reserve_mb = 1024;
    SupervisorSettings supervisor;
    std::vector<ModuleConfig> modules;
    std::optional<PicoConfig> pico;  // no pico: section, no Pico

    const ModuleConfig* find_module(const std::string& name) const;
    nlohmann::json to_json() const;
};

// Throws ConfigError. A file is also checked against this machine, as `pilogger run` would use it:
// every module's program (executable:, or pilogger-<type> next to pilogger or on PATH), the
// programs and folders its settings name and its simulator's program (as its kind describes
// them), the Pico emulator, and that data_dir can take sessions.
// Module kinds are described by catalog (default: program_catalog(), the modules' --describe).
Config load_config_file(const std::string& path, ModuleCatalog* catalog = nullptr);
// The text alone; check_host adds the checks above.
Config load_config_text(const std::string& text, const std::string& source_name, bool check_host = false,
                        ModuleCatalog* catalog = nullptr);



}  // namespace pilogger

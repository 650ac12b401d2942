// YAML configuration: loading, validation and the typed result.
//
// Every error names the file, line and column, the full key and what was expected. Unknown keys
// are errors so typos never pass silently.
#pragma once

#include "pico_config.hpp"

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace pilogger {

class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

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
// every module's program (executable:, or pilogger-<type> next to pilogger or on PATH), ffmpeg
// and neon-sim for the eye tracker, the Pico emulator, and that data_dir can take sessions.
Config load_config_file(const std::string& path);
// The text alone; check_host adds the checks above.
Config load_config_text(const std::string& text, const std::string& source_name, bool check_host = false);

// Why an eye tracker address (auto, simulator, an IPv4 address, an IPv6 address or a host name,
// each but IPv6 optionally with :port) cannot be used, or "" when it can.
std::string neon_address_problem(const std::string& address);

// "~/x" -> "$HOME/x"; other paths unchanged.
std::string expand_home(const std::string& path);

// Reads one YAML mapping, remembering which keys were used so leftovers are reported.
class YamlMap {
public:
    YamlMap(const YAML::Node& node, std::string key_path, std::string file);

    bool has(const std::string& key) const;
    std::string string(const std::string& key, const std::string& fallback);
    std::string required_string(const std::string& key);
    std::string choice(const std::string& key, const std::string& fallback,
                       std::initializer_list<const char*> allowed);
    int64_t integer(const std::string& key, int64_t fallback, int64_t min, int64_t max);
    double number(const std::string& key, double fallback, double min, double max);
    bool boolean(const std::string& key, bool fallback);
    // A nested mapping (may be absent: then has() is false and the map is empty).
    YamlMap map(const std::string& key);
    // Keys of this mapping in file order.
    std::vector<std::string> keys() const;
    YAML::Node node(const std::string& key);
    // Throws on the first key that no getter asked for.
    void finish() const;

    [[noreturn]] void fail(const YAML::Node& at, const std::string& key, const std::string& what) const;
    std::string full_key(const std::string& key) const;
    const std::string& file() const { return file_; }

private:
    YAML::Node lookup(const std::string& key);
    // lookup(), refusing an explicit YAML tag on the value.
    YAML::Node value(const std::string& key);
    YAML::Node node_;
    std::string key_path_;
    std::string file_;
    std::set<std::string> used_;
};

}  // namespace pilogger

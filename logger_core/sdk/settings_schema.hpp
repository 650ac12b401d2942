// A module kind described once: its settings (names, types, defaults, ranges, allowed values,
// one-line docs), its capabilities, its simulator hook and what it can write per second.
//
// The module executable prints this description for `--describe`; the supervisor and `pilogger
// config check` validate the YAML against it (with file, line and column), the module validates
// its `configure` settings against the same description, and docs/configuration.md's tables are
// generated from it (scripts/settings_docs.py). Nothing in the core knows a module kind by name.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pilogger {

enum class SettingType { Text, Integer, Number, Boolean, Choice, Section };

// Checks on a text setting that a type and a range cannot say.
enum class TextFormat {
    Plain,
    Address,     // one of the special words, or host[:port], IPv4[:port], IPv6 (address_problem)
    Size,        // WIDTHxHEIGHT, even numbers from 16 to 8192
    Program,     // a program to run: ~ expanded; on this machine it must run (when needed_if_any)
    OutputFile,  // a file to write: ~ expanded; on this machine its folder must exist
};

struct Setting {
    std::string key;
    SettingType type = SettingType::Text;
    nlohmann::json fallback;   // the default; null: absent unless written (optional knobs)
    std::optional<double> min, max;
    std::vector<std::string> choices;
    std::string doc;           // one line, Markdown
    std::string default_doc;   // how the docs show the default when the value alone would mislead
    bool even = false;
    std::string even_why;      // "YUV 4:2:0 video"
    TextFormat format = TextFormat::Plain;
    std::vector<std::string> special_words;  // Address: words accepted as they are (auto, ...)
    std::string hint;          // appended to an error: what would be accepted, or how to fix it
    std::vector<std::string> needed_if_any;  // Program: checked only when one of these is true
    std::vector<Setting> children;           // Section: its own keys

    // Builder steps for the declarations in each module.
    Setting& must_be_even(std::string why);
    Setting& with_hint(std::string text);
    Setting& shown_default(std::string text);
    Setting& needed_when_any(std::vector<std::string> flags);
    // Absent from the settings unless written (a knob whose default belongs to someone else,
    // such as a simulator); the docs still show the declared default.
    Setting& only_if_written();
};

// How many bytes a second a module can write at most, for the disk reserve check: a sum of terms,
// each a product of numbers and settings, optionally only when a boolean setting is true and
// capped by a bit-rate setting (twice it, for rate control's overshoot).
struct DiskRateTerm {
    std::string what;                      // "video", "rows"
    std::vector<nlohmann::json> factors;   // numbers, or names of numeric settings
    std::string when;                      // a boolean setting, or "" for always
    std::string cap_kbps;                  // an integer setting in kbit/s; 0 there means no cap
};

// The simulated twin a kind can run instead of the device: chosen when `setting` equals `value`,
// it needs `program` next to pilogger or on PATH. The module runtime starts it before the module
// is configured (logger_core/sdk/simulator_launch.hpp): `program --announce`, plus one
// `--<key> <value>` flag per entry of the `options` section; the program prints one JSON object
// on stdout once it is ready, the settings the module then gets instead (its address, its port).
// The module itself never knows it talks to a simulator.
struct SimulatorHook {
    std::string setting;
    std::string value;
    std::string program;
    std::string options;  // a section setting whose entries become flags; "" for none
};

class SettingsSchema {
public:
    Setting& text(std::string key, std::string fallback, std::string doc);
    Setting& integer(std::string key, int64_t fallback, int64_t min, int64_t max, std::string doc);
    Setting& number(std::string key, double fallback, double min, double max, std::string doc);
    Setting& boolean(std::string key, bool fallback, std::string doc);
    Setting& choice(std::string key, std::string fallback, std::vector<std::string> allowed, std::string doc);
    // A nested mapping of its own keys (knobs: usually optional ones, absent unless written).
    Setting& section(std::string key, std::string doc, const SettingsSchema& knobs);

    const std::vector<Setting>& settings() const { return settings_; }
    std::vector<Setting>& settings() { return settings_; }
    const Setting* find(const std::string& key) const;

    // Settings as `configure` sends them, checked and with every default filled in. Throws
    // std::invalid_argument naming the owner and the key (a hand-made configure, or a supervisor
    // from another build).
    nlohmann::json apply(const nlohmann::json& settings, const std::string& owner) const;

private:
    Setting& add(Setting setting);
    std::vector<Setting> settings_;
};

class ModuleKind {
public:
    std::string kind;          // "camera": the program is pilogger-<kind>
    std::string summary;       // one line for docs and `pilogger devices`
    std::string files;         // where its files go in a session, one line
    // What clients and the supervisor pick modules by: "note" (takes the session's notes),
    // "snapshot", "preview", "devices" (`pilogger-<kind> --list-devices [--json]` lists what it
    // can record from, for `pilogger devices`), or the kind's own.
    std::vector<std::string> capabilities;
    std::string devices_heading;  // with "devices": its heading in `pilogger devices`; empty: the summary
    SettingsSchema settings;
    std::vector<DiskRateTerm> disk_rate;
    std::optional<SimulatorHook> simulator;

    nlohmann::json to_json() const;
    // A description read back (from a module's --describe): nullopt with *why on any defect.
    static std::optional<ModuleKind> from_json(const nlohmann::json& j, std::string* why);

    // The worst-case bytes per second with these (applied) settings.
    double disk_bytes_per_s(const nlohmann::json& settings) const;
};

// Why an address (a special word, an IPv4 address, an IPv6 address or a host name, each but
// IPv6 optionally with :port) cannot be used, or "" when it can.
std::string address_problem(const std::string& address, const std::vector<std::string>& special_words);
// Why WIDTHxHEIGHT cannot be used, or "".
std::string size_problem(const std::string& size);

std::string setting_type_name(SettingType type);

}  // namespace pilogger

#include "module_settings.hpp"

#include "json_read.hpp"
#include "paths.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace pilogger {

namespace {

using json = nlohmann::json;

int64_t whole(double bound) { return static_cast<int64_t>(std::llround(bound)); }

// A file the module will write: its folder must be there.
void check_file_folder(YamlMap& m, const std::string& key, const std::string& path) {
    if (path.empty()) return;
    const size_t slash = path.find_last_of('/');
    const std::string folder = slash == std::string::npos ? "." : path.substr(0, std::max<size_t>(slash, 1));
    struct stat st {};
    if (::stat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        m.fail(m.node(key), key, "'" + path + "': the folder " + folder + " does not exist");
    }
}

json read_text(const Setting& s, YamlMap& m) {
    const std::string fallback = s.fallback.is_string() ? s.fallback.get<std::string>() : std::string();
    std::string value = m.string(s.key, fallback);
    switch (s.format) {
        case TextFormat::Address:
            if (std::string problem = address_problem(value, s.special_words); !problem.empty()) {
                m.fail(m.node(s.key), s.key, "'" + value + "' " + problem + (s.hint.empty() ? "" : "; " + s.hint));
            }
            break;
        case TextFormat::Size:
            if (!size_problem(value).empty()) {
                m.fail(m.node(s.key), s.key,
                       "expected WIDTHxHEIGHT with even numbers from 16 to 8192" +
                           (s.hint.empty() ? std::string() : " (" + s.hint + ")") + ", got '" + value + "'");
            }
            break;
        case TextFormat::Program:
        case TextFormat::OutputFile:
            value = expand_home(value);
            break;
        case TextFormat::Plain:
            break;
    }
    return value;
}

json read_one(const Setting& s, YamlMap& m) {
    switch (s.type) {
        case SettingType::Text: return read_text(s, m);
        case SettingType::Choice:
            return m.choice(s.key, s.fallback.is_string() ? s.fallback.get<std::string>() : s.choices.front(), s.choices);
        case SettingType::Integer: {
            const int64_t v = m.integer(s.key, read::as_integer(s.fallback).value_or(0), whole(s.min.value_or(-9e18)),
                                        whole(s.max.value_or(9e18)));
            if (s.even && v % 2 != 0) m.fail(m.node(s.key), s.key, "must be even (" + s.even_why + ")");
            return v;
        }
        case SettingType::Number:
            return m.number(s.key, s.fallback.is_number() ? s.fallback.get<double>() : 0, s.min.value_or(-1e300),
                            s.max.value_or(1e300));
        case SettingType::Boolean: return m.boolean(s.key, s.fallback.is_boolean() && s.fallback.get<bool>());
        case SettingType::Section: break;
    }
    return nullptr;
}

json read_settings(const std::vector<Setting>& settings, YamlMap& m) {
    json out = json::object();
    for (const Setting& s : settings) {
        if (s.type == SettingType::Section) {
            YamlMap knobs = m.map(s.key);
            if (knobs.keys().empty()) continue;
            json inner = read_settings(s.children, knobs);
            knobs.finish();
            out[s.key] = inner;
            continue;
        }
        // A knob without a default is absent unless written.
        if (s.fallback.is_null() && !m.has(s.key)) {
            m.node(s.key);  // still a known key
            continue;
        }
        out[s.key] = read_one(s, m);
    }
    return out;
}

// What this machine must have for these settings: the programs and folders they name.
void check_on_host(const std::vector<Setting>& settings, const json& values, YamlMap& m) {
    for (const Setting& s : settings) {
        if (s.type == SettingType::Section) {
            if (!values.contains(s.key)) continue;
            YamlMap knobs = m.map(s.key);
            check_on_host(s.children, values[s.key], knobs);
            continue;
        }
        const std::string value = read::text(values, s.key);
        if (s.format == TextFormat::OutputFile && values.contains(s.key)) check_file_folder(m, s.key, value);
        if (s.format != TextFormat::Program) continue;
        const bool needed = s.needed_if_any.empty() ||
                            std::any_of(s.needed_if_any.begin(), s.needed_if_any.end(),
                                        [&](const std::string& flag) { return read::flag(values, flag, false); });
        if (!needed) continue;
        std::string why;
        if (resolve_executable(value, &why).empty()) {
            // Point at the program's key when written, else at what asks for it.
            std::string at = s.key;
            if (!m.has(s.key)) {
                for (const std::string& flag : s.needed_if_any) {
                    if (m.has(flag)) {
                        at = flag;
                        break;
                    }
                }
            }
            m.fail(m.node(at), s.key, "'" + value + "' " + why + (s.hint.empty() ? "" : "; " + s.hint));
        }
    }
}

}  // namespace

json module_settings_from_yaml(const ModuleKind& kind, YamlMap& m, bool check_host) {
    if (check_host && kind.simulator && m.string(kind.simulator->setting, "") == kind.simulator->value) {
        // The module starts its simulator from its own folder, else from PATH.
        const std::string& program = kind.simulator->program;
        std::string why;
        if (::access((executable_dir() + "/" + program).c_str(), X_OK) != 0 && resolve_executable(program, &why).empty()) {
            m.fail(m.node(kind.simulator->setting), kind.simulator->setting,
                   kind.simulator->value + " needs " + program + ", which is neither next to pilogger (" +
                       executable_dir() + ") nor on PATH");
        }
    }
    json values = read_settings(kind.settings.settings(), m);
    if (check_host) check_on_host(kind.settings.settings(), values, m);
    return values;
}

}  // namespace pilogger

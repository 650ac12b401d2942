#include "pico_config.hpp"

#include "config.hpp"
#include "paths.hpp"

#include <sys/stat.h>

#include <algorithm>

namespace pilogger {

namespace {

std::optional<double> optional_seconds(YamlMap& m, const std::string& key) {
    if (!m.has(key)) {
        m.node(key);  // marks the key as known for finish()
        return std::nullopt;
    }
    return m.number(key, 0, 0, 86400);
}

PicoEmulatorConfig parse_emulator(YamlMap m, bool check_host) {
    PicoEmulatorConfig e;
    e.executable = expand_home(m.string("executable", ""));
    if (check_host) {
        std::string why;
        if (!e.executable.empty() && resolve_executable(e.executable, &why).empty()) {
            m.fail(m.node("executable"), "executable", "'" + e.executable + "' " + why);
        }
        if (e.executable.empty()) {
            if (std::string problem = module_executable_problem("pico-emulator"); !problem.empty()) {
                m.fail(m.node("executable"), "executable", problem);
            }
        }
    }
    e.offset_us = m.integer("offset_us", 0, 0, INT64_C(1) << 50);
    e.skew_ppm = m.number("skew_ppm", 0, -1000, 1000);
    e.latency_us = m.number("latency_us", 0, 0, 1e6);
    e.jitter_us = m.number("jitter_us", 0, 0, 1e6);
    e.jitter_dist = m.choice("jitter_dist", "normal", {"normal", "uniform"});
    e.loss = m.number("loss", 0, 0, 1);
    e.split = m.boolean("split", false);
    e.crlf = m.boolean("crlf", false);
    if (m.has("seed")) {
        e.seed = m.integer("seed", 0, 0, INT64_MAX);
    } else {
        m.node("seed");
    }
    e.reboot_after_s = optional_seconds(m, "reboot_after_s");
    e.repl_after_s = optional_seconds(m, "repl_after_s");
    e.unplug_after_s = optional_seconds(m, "unplug_after_s");
    e.replug_after_s = optional_seconds(m, "replug_after_s");
    if (e.replug_after_s && !e.unplug_after_s) {
        m.fail(m.node("replug_after_s"), "replug_after_s", "needs unplug_after_s (the replug counts from the unplug)");
    }
    e.truth_log = expand_home(m.string("truth_log", ""));
    if (check_host && !e.truth_log.empty()) {
        const size_t slash = e.truth_log.find_last_of('/');
        const std::string folder = slash == std::string::npos ? "." : e.truth_log.substr(0, std::max<size_t>(slash, 1));
        struct stat st {};
        if (::stat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
            m.fail(m.node("truth_log"), "truth_log", "'" + e.truth_log + "': the folder " + folder + " does not exist");
        }
    }
    m.finish();
    return e;
}

}  // namespace

PicoConfig parse_pico_config(YamlMap& m, bool check_host) {
    PicoConfig c;
    c.device = expand_home(m.string("device", "auto"));
    if (c.device != "auto" && c.device != "emulator" && (c.device.empty() || c.device.front() != '/')) {
        m.fail(m.node("device"), "device",
               "expected auto, emulator or an absolute path such as /dev/ttyACM0, got '" + c.device + "'");
    }
    c.led_pin = static_cast<int>(m.integer("led_pin", c.led_pin, 0, 29));
    c.led_channel = static_cast<int>(m.integer("led_channel", c.led_channel, 0, 7));
    c.ping_interval_ms = m.integer("ping_interval_ms", c.ping_interval_ms, 200, 10000);
    c.ping_burst = static_cast<int>(m.integer("ping_burst", c.ping_burst, 1, 32));
    c.ping_spacing_ms = m.integer("ping_spacing_ms", c.ping_spacing_ms, 1, 100);
    c.fit_window_s = m.integer("fit_window_s", c.fit_window_s, 10, 3600);
    c.code_bit_ms = static_cast<int>(m.integer("code_bit_ms", c.code_bit_ms, 10, 1000));
    if (c.ping_burst * c.ping_spacing_ms + 250 > c.ping_interval_ms) {
        m.fail(m.node("ping_interval_ms"), "ping_interval_ms",
               "a burst (ping_burst x ping_spacing_ms, plus 250 ms for the last answer) must fit in it");
    }
    c.emulator = parse_emulator(m.map("emulator"), check_host && c.device == "emulator");
    m.finish();
    return c;
}

nlohmann::json pico_config_json(const PicoConfig& c) {
    const PicoEmulatorConfig& e = c.emulator;
    auto opt = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
    nlohmann::json out{{"device", c.device},
                       {"led_pin", c.led_pin},
                       {"led_channel", c.led_channel},
                       {"ping_interval_ms", c.ping_interval_ms},
                       {"ping_burst", c.ping_burst},
                       {"ping_spacing_ms", c.ping_spacing_ms},
                       {"fit_window_s", c.fit_window_s},
                       {"code_bit_ms", c.code_bit_ms}};
    if (c.device == "emulator") {
        out["emulator"] = {{"executable", e.executable},
                           {"offset_us", e.offset_us},
                           {"skew_ppm", e.skew_ppm},
                           {"latency_us", e.latency_us},
                           {"jitter_us", e.jitter_us},
                           {"jitter_dist", e.jitter_dist},
                           {"loss", e.loss},
                           {"split", e.split},
                           {"crlf", e.crlf},
                           {"seed", e.seed ? nlohmann::json(*e.seed) : nlohmann::json(nullptr)},
                           {"reboot_after_s", opt(e.reboot_after_s)},
                           {"repl_after_s", opt(e.repl_after_s)},
                           {"unplug_after_s", opt(e.unplug_after_s)},
                           {"replug_after_s", opt(e.replug_after_s)},
                           {"truth_log", e.truth_log}};
    }
    return out;
}

}  // namespace pilogger

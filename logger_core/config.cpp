#include "config.hpp"

#include "disk_budget.hpp"

#include <yaml-cpp/depthguard.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

namespace pilogger {

namespace {

std::string location(const std::string& file, const YAML::Mark& mark) {
    if (mark.is_null()) return file;
    return file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

std::string describe(const YAML::Node& node) {
    if (!node.IsDefined() || node.IsNull()) return "nothing";
    if (node.IsMap()) return "a mapping";
    if (node.IsSequence()) return "a list";
    return "'" + node.Scalar() + "'";
}

}  // namespace

// ---- YamlMap ----

YamlMap::YamlMap(const YAML::Node& node, std::string key_path, std::string file)
    : key_path_(std::move(key_path)), file_(std::move(file)) {
    // An absent key comes back as an invalid node; treat it as an empty mapping.
    if (node.IsDefined()) node_ = node;
    if (node_.IsDefined() && !node_.IsNull() && !node_.IsMap()) {
        throw ConfigError(location(file_, node_.Mark()) + ": " +
                          (key_path_.empty() ? std::string("top level") : key_path_) +
                          ": expected a mapping of keys, got " + describe(node_));
    }
}

std::string YamlMap::full_key(const std::string& key) const {
    return key_path_.empty() ? key : key_path_ + "." + key;
}

void YamlMap::fail(const YAML::Node& at, const std::string& key, const std::string& what) const {
    YAML::Mark mark = at.IsDefined() ? at.Mark() : node_.Mark();
    throw ConfigError(location(file_, mark) + ": " + full_key(key) + ": " + what);
}

YAML::Node YamlMap::lookup(const std::string& key) {
    used_.insert(key);
    if (!node_.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    const YAML::Node& const_node = node_;
    return const_node[key];
}

bool YamlMap::has(const std::string& key) const {
    if (!node_.IsMap()) return false;
    const YAML::Node& const_node = node_;
    return const_node[key].IsDefined();
}

YAML::Node YamlMap::node(const std::string& key) { return lookup(key); }

std::string YamlMap::string(const std::string& key, const std::string& fallback) {
    YAML::Node n = lookup(key);
    if (!n.IsDefined() || n.IsNull()) return fallback;
    if (!n.IsScalar()) fail(n, key, "expected text, got " + describe(n));
    return n.Scalar();
}

std::string YamlMap::required_string(const std::string& key) {
    YAML::Node n = lookup(key);
    if (!n.IsDefined() || n.IsNull()) fail(node_, key, "missing; expected text");
    return string(key, "");
}

std::string YamlMap::choice(const std::string& key, const std::string& fallback,
                            std::initializer_list<const char*> allowed) {
    std::string value = string(key, fallback);
    std::string list;
    for (const char* a : allowed) {
        if (value == a) return value;
        list += list.empty() ? a : std::string(", ") + a;
    }
    fail(lookup(key), key, "expected one of " + list + ", got '" + value + "'");
}

int64_t YamlMap::integer(const std::string& key, int64_t fallback, int64_t min, int64_t max) {
    YAML::Node n = lookup(key);
    if (!n.IsDefined() || n.IsNull()) return fallback;
    int64_t value = 0;
    bool ok = n.IsScalar();
    if (ok) {
        const std::string& s = n.Scalar();
        char* end = nullptr;
        errno = 0;
        long long parsed = std::strtoll(s.c_str(), &end, 10);
        ok = !s.empty() && end != nullptr && *end == '\0' && errno == 0;
        value = parsed;
    }
    if (!ok) fail(n, key, "expected a whole number, got " + describe(n));
    if (value < min || value > max) {
        fail(n, key, "expected a whole number from " + std::to_string(min) + " to " +
                         std::to_string(max) + ", got " + std::to_string(value));
    }
    return value;
}

double YamlMap::number(const std::string& key, double fallback, double min, double max) {
    YAML::Node n = lookup(key);
    if (!n.IsDefined() || n.IsNull()) return fallback;
    double value = 0;
    bool ok = n.IsScalar();
    if (ok) {
        const std::string& s = n.Scalar();
        char* end = nullptr;
        value = std::strtod(s.c_str(), &end);
        ok = !s.empty() && end != nullptr && *end == '\0' && std::isfinite(value);
    }
    if (!ok) fail(n, key, "expected a number, got " + describe(n));
    if (value < min || value > max) {
        std::ostringstream range;
        range << "expected a number from " << min << " to " << max << ", got " << value;
        fail(n, key, range.str());
    }
    return value;
}

bool YamlMap::boolean(const std::string& key, bool fallback) {
    YAML::Node n = lookup(key);
    if (!n.IsDefined() || n.IsNull()) return fallback;
    if (n.IsScalar()) {
        const std::string& s = n.Scalar();
        if (s == "true" || s == "yes" || s == "on") return true;
        if (s == "false" || s == "no" || s == "off") return false;
    }
    fail(n, key, "expected true or false, got " + describe(n));
}

YamlMap YamlMap::map(const std::string& key) { return YamlMap(lookup(key), full_key(key), file_); }

std::vector<std::string> YamlMap::keys() const {
    std::vector<std::string> out;
    if (!node_.IsMap()) return out;
    for (const auto& entry : node_) out.push_back(entry.first.Scalar());
    return out;
}

void YamlMap::finish() const {
    if (!node_.IsMap()) return;
    std::set<std::string> seen;
    for (const auto& entry : node_) {
        const std::string& key = entry.first.Scalar();
        if (!seen.insert(key).second) fail(entry.first, key, "appears twice");
        if (used_.count(key) == 0) {
            std::string expected;
            for (const auto& k : used_) expected += expected.empty() ? k : ", " + k;
            fail(entry.first, key, "unknown key; expected one of: " + expected);
        }
    }
}

// ---- module settings by type ----

namespace {

const std::regex kModuleName("[a-z][a-z0-9_-]{0,31}");

nlohmann::json notes_settings(YamlMap&) { return nlohmann::json::object(); }

// The test module exists for the supervisor's own tests and benchmarks; it has no settings.
nlohmann::json test_settings(YamlMap&) { return nlohmann::json::object(); }

// One camera per module instance; docs/camera.md explains every key. The module parses the same
// keys with the same defaults (modules/camera/camera_settings.cpp).
nlohmann::json camera_settings(YamlMap& m) {
    nlohmann::json s;
    s["backend"] = m.choice("backend", "libcamera", {"libcamera", "test_pattern"});
    s["camera"] = m.string("camera", "0");
    s["width"] = m.integer("width", 1456, 16, 8192);
    s["height"] = m.integer("height", 1088, 16, 8192);
    for (const char* key : {"width", "height"}) {
        if (s[key].get<int64_t>() % 2 != 0) m.fail(m.node(key), key, "must be even (YUV 4:2:0 video)");
    }
    s["fps"] = m.number("fps", 30, 1, 240);
    s["pixel_format"] = m.choice("pixel_format", "YUV420",
                                 {"YUV420", "NV12", "YUYV", "UYVY", "RGB888", "BGR888", "XRGB8888", "XBGR8888", "MJPEG"});
    s["buffer_count"] = m.integer("buffer_count", 6, 2, 32);
    s["queue_frames"] = m.integer("queue_frames", 30, 2, 600);
    s["encoder"] = m.choice("encoder", "libx264", {"libx264", "h264_v4l2m2m"});
    s["preset"] = m.choice("preset", "ultrafast",
                           {"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"});
    s["tune"] = m.choice("tune", "zerolatency",
                         {"zerolatency", "film", "animation", "grain", "stillimage", "fastdecode", "none"});
    s["crf"] = m.integer("crf", 23, 0, 51);
    s["bitrate_kbps"] = m.integer("bitrate_kbps", 0, 0, 200000);
    s["encoder_threads"] = m.integer("encoder_threads", 0, 0, 16);
    s["fragment_ms"] = m.integer("fragment_ms", 1000, 100, 1000);
    s["preview_width"] = m.integer("preview_width", 320, 16, 1920);
    s["preview_height"] = m.integer("preview_height", 240, 16, 1080);
    s["preview_fps"] = m.number("preview_fps", 10, 0, 30);
    s["preview_format"] = m.choice("preview_format", "rgb24", {"rgb24", "gray"});
    s["snapshot_format"] = m.choice("snapshot_format", "png", {"png", "jpg"});
    s["exposure_us"] = m.integer("exposure_us", 0, 0, 10'000'000);
    s["analogue_gain"] = m.number("analogue_gain", 0, 0, 64);
    s["af_mode"] = m.choice("af_mode", "default", {"default", "manual", "auto", "continuous"});
    s["lens_position"] = m.number("lens_position", 0, 0, 32);
    s["hflip"] = m.boolean("hflip", false);
    s["vflip"] = m.boolean("vflip", false);
    return s;
}

// One Neon per module instance; docs/eyetracker.md explains every key. The module parses the same
// keys with the same defaults (modules/eyetracker/eyetracker_settings.cpp).
nlohmann::json eyetracker_settings(YamlMap& m) {
    nlohmann::json s;
    std::string address = m.string("address", "auto");
    if (address.empty()) m.fail(m.node("address"), "address", "must be auto, simulator, or the Neon's host[:port]");
    // One colon splits host:port, as the module reads it (IPv6 addresses have several).
    if (size_t colon = address.rfind(':'); colon != std::string::npos && address.find(':') == colon) {
        std::string port = address.substr(colon + 1);
        bool digits = !port.empty() && port.size() <= 5 &&
                      port.find_first_not_of("0123456789") == std::string::npos;
        if (colon == 0 || !digits || std::stoi(port) < 1 || std::stoi(port) > 65535) {
            m.fail(m.node("address"), "address",
                   "expected the Neon's host or host:port with a port from 1 to 65535, got '" + address + "'");
        }
    }
    s["address"] = address;
    s["port"] = m.integer("port", 8080, 1, 65535);
    s["device_name"] = m.string("device_name", "");
    s["scene"] = m.boolean("scene", true);
    s["overlay"] = m.boolean("overlay", false);
    s["damaged_frames"] = m.choice("damaged_frames", "keep", {"keep", "drop"});
    s["neon_recording"] = m.boolean("neon_recording", false);
    s["trial_events"] = m.boolean("trial_events", true);
    s["time_echo_interval_s"] = m.integer("time_echo_interval_s", 10, 1, 3600);
    s["time_echo_count"] = m.integer("time_echo_count", 20, 1, 1000);
    s["preview"] = m.boolean("preview", true);
    s["preview_width"] = m.integer("preview_width", 320, 32, 1600);
    s["preview_fps"] = m.number("preview_fps", 5, 0.1, 30);
    s["ffmpeg"] = expand_home(m.string("ffmpeg", "ffmpeg"));
    s["overlay_preset"] = m.choice("overlay_preset", "ultrafast",
                                   {"ultrafast", "superfast", "veryfast", "faster", "fast", "medium"});
    s["overlay_crf"] = m.integer("overlay_crf", 23, 0, 51);
    YamlMap sim = m.map("simulator");
    if (!sim.keys().empty()) {
        // neon-sim's knobs (tests/tools/neon_sim.py --help); only meaningful with address: simulator.
        nlohmann::json knobs = nlohmann::json::object();
        if (sim.has("offset_s")) knobs["offset_s"] = sim.number("offset_s", 0, -1e6, 1e6);
        if (sim.has("skew_ppm")) knobs["skew_ppm"] = sim.number("skew_ppm", 0, -1000, 1000);
        if (sim.has("gaze_layout")) {
            knobs["gaze_layout"] = sim.choice("gaze_layout", "89", {"9", "17", "25", "65", "89", "105"});
        }
        if (sim.has("gaze_hz")) knobs["gaze_hz"] = sim.number("gaze_hz", 200, 1, 1000);
        if (sim.has("imu_hz")) knobs["imu_hz"] = sim.number("imu_hz", 110, 1, 1000);
        if (sim.has("scene_size")) knobs["scene_size"] = sim.string("scene_size", "1600x1200");
        if (sim.has("scene_fps")) knobs["scene_fps"] = sim.number("scene_fps", 30, 1, 60);
        if (sim.has("loss")) knobs["loss"] = sim.number("loss", 0, 0, 0.9);
        if (sim.has("reorder")) knobs["reorder"] = sim.number("reorder", 0, 0, 0.9);
        if (sim.has("rtp_ts_start")) knobs["rtp_ts_start"] = sim.integer("rtp_ts_start", 0, 0, 4294967295);
        if (sim.has("first_sr_delay_s")) knobs["first_sr_delay_s"] = sim.number("first_sr_delay_s", 0, 0, 60);
        if (sim.has("disconnect_at_s")) knobs["disconnect_at_s"] = sim.number("disconnect_at_s", 0, 0, 86400);
        if (sim.has("down_for_s")) knobs["down_for_s"] = sim.number("down_for_s", 5, 0, 3600);
        if (sim.has("device_name")) knobs["device_name"] = sim.string("device_name", "Neon Sim");
        if (sim.has("truth")) knobs["truth"] = expand_home(sim.string("truth", ""));
        sim.finish();
        s["simulator"] = knobs;
    }
    return s;
}

ModuleConfig load_module(const std::string& name, YamlMap m) {
    ModuleConfig module;
    module.name = name;
    module.type = m.choice("type", name, {"notes", "test", "camera", "eyetracker"});
    module.enabled = m.boolean("enabled", true);
    module.executable = expand_home(m.string("executable", ""));
    if (module.type == "notes") {
        module.settings = notes_settings(m);
    } else if (module.type == "camera") {
        module.settings = camera_settings(m);
    } else if (module.type == "eyetracker") {
        module.settings = eyetracker_settings(m);
    } else {
        module.settings = test_settings(m);
    }
    m.finish();
    return module;
}

}  // namespace

std::string expand_home(const std::string& path) {
    if (path == "~" || path.rfind("~/", 0) == 0) {
        const char* home = std::getenv("HOME");
        if (home != nullptr) return std::string(home) + path.substr(1);
    }
    return path;
}

const ModuleConfig* Config::find_module(const std::string& name) const {
    for (const auto& m : modules) {
        if (m.name == name) return &m;
    }
    return nullptr;
}

nlohmann::json Config::to_json() const {
    nlohmann::json mods = nlohmann::json::object();
    for (const auto& m : modules) {
        mods[m.name] = {{"type", m.type},
                        {"enabled", m.enabled},
                        {"executable", m.executable},
                        {"settings", m.settings}};
    }
    const SupervisorSettings& s = supervisor;
    return {{"source_file", source_file},
            {"data_dir", data_dir},
            {"session_label", session_label},
            {"log_level", log_level},
            {"disk_reserve_mb", disk_reserve_mb},
            {"supervisor",
             {{"ack_timeout_ms", s.ack_timeout_ms},
              {"heartbeat_timeout_ms", s.heartbeat_timeout_ms},
              {"trial_start_delay_ms", s.trial_start_delay_ms},
              {"shutdown_timeout_ms", s.shutdown_timeout_ms},
              {"terminate_timeout_ms", s.terminate_timeout_ms},
              {"restart_backoff_initial_ms", s.restart_backoff_initial_ms},
              {"restart_backoff_max_ms", s.restart_backoff_max_ms},
              {"restart_healthy_reset_s", s.restart_healthy_reset_s},
              {"clock_anchor_interval_ms", s.clock_anchor_interval_ms},
              {"disk_check_interval_ms", s.disk_check_interval_ms}}},
            {"modules", mods},
            {"pico", pico ? pico_config_json(*pico) : nlohmann::json(nullptr)}};
}

namespace {
Config parse_config(const std::string& text, const std::string& source_name) {
    YAML::Node root;
    try {
        root = YAML::Load(text);
    } catch (const YAML::DeepRecursion& e) {
        // yaml-cpp (0.7+) stops its recursive parser at a fixed depth (about 500 nested
        // collections) rather than overflow the stack; its own message only says "bad file".
        throw ConfigError(location(source_name, e.mark) +
                          ": YAML nested too deeply (over about 500 levels of lists or mappings; a pilogger "
                          "config needs fewer than 10)");
    } catch (const YAML::Exception& e) {
        throw ConfigError(location(source_name, e.mark) + ": YAML syntax error: " + e.msg);
    }
    if (!root.IsDefined() || root.IsNull()) {
        throw ConfigError(source_name + ": the file is empty; expected a mapping with data_dir and modules");
    }

    Config config;
    config.source_file = source_name;
    YamlMap top(root, "", source_name);
    config.data_dir = expand_home(top.required_string("data_dir"));
    config.session_label = top.string("session_label", "");
    config.log_level = top.choice("log_level", "info", {"debug", "info", "warning", "error"});
    config.disk_reserve_mb = top.integer("disk_reserve_mb", 1024, 0, 1'000'000);

    YamlMap sup = top.map("supervisor");
    SupervisorSettings& s = config.supervisor;
    s.ack_timeout_ms = sup.integer("ack_timeout_ms", s.ack_timeout_ms, 50, 600000);
    s.heartbeat_timeout_ms = sup.integer("heartbeat_timeout_ms", s.heartbeat_timeout_ms, 500, 600000);
    s.trial_start_delay_ms = sup.integer("trial_start_delay_ms", s.trial_start_delay_ms, 0, 10000);
    s.shutdown_timeout_ms = sup.integer("shutdown_timeout_ms", s.shutdown_timeout_ms, 100, 600000);
    s.terminate_timeout_ms = sup.integer("terminate_timeout_ms", s.terminate_timeout_ms, 100, 600000);
    s.restart_backoff_initial_ms =
        sup.integer("restart_backoff_initial_ms", s.restart_backoff_initial_ms, 10, 600000);
    s.restart_backoff_max_ms = sup.integer("restart_backoff_max_ms", s.restart_backoff_max_ms, 10, 3600000);
    s.restart_healthy_reset_s = sup.integer("restart_healthy_reset_s", s.restart_healthy_reset_s, 1, 86400);
    s.clock_anchor_interval_ms =
        sup.integer("clock_anchor_interval_ms", s.clock_anchor_interval_ms, 100, 600000);
    s.disk_check_interval_ms = sup.integer("disk_check_interval_ms", s.disk_check_interval_ms, 50, 10000);
    sup.finish();

    YAML::Node modules_node = top.node("modules");
    if (!modules_node.IsDefined() || modules_node.IsNull()) {
        top.fail(root, "modules", "missing; expected a mapping of module names to settings");
    }
    YamlMap modules(modules_node, "modules", source_name);
    for (const auto& name : modules.keys()) {
        YAML::Node module_node = modules.node(name);
        if (!std::regex_match(name, kModuleName)) {
            modules.fail(module_node, name,
                         "module names use lower-case letters, digits, '-' and '_' (at most 32)");
        }
        config.modules.push_back(load_module(name, modules.map(name)));
    }
    modules.finish();
    if (top.has("pico")) {
        YamlMap pico = top.map("pico");
        config.pico = parse_pico_config(pico);
    }
    top.finish();
    // The reserve must hold what the config can write between two free-space checks.
    DiskBudget budget = disk_budget(config);
    if (config.disk_reserve_mb * 1024 * 1024 < budget.required_reserve_bytes) {
        int64_t needed_mb = (budget.required_reserve_bytes + 1024 * 1024 - 1) / (1024 * 1024);
        top.fail(top.has("disk_reserve_mb") ? top.node("disk_reserve_mb") : root, "disk_reserve_mb",
                 std::to_string(config.disk_reserve_mb) + " MiB is less than this config can write between two free-space checks " +
                     "(" + std::to_string(config.supervisor.disk_check_interval_ms) + " ms at up to " +
                     std::to_string(budget.bytes_per_s / (1024 * 1024)) + " MiB/s: " + budget.breakdown +
                     "); set at least " + std::to_string(needed_mb) +
                     ", or check more often (supervisor: disk_check_interval_ms)");
    }
    return config;
}
}  // namespace

Config load_config_text(const std::string& text, const std::string& source_name) {
    try {
        return parse_config(text, source_name);
    } catch (const YAML::Exception& e) {
        // Anything yaml-cpp itself objects to still names the file and place.
        throw ConfigError(location(source_name, e.mark) + ": " + e.msg);
    }
}

Config load_config_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw ConfigError(path + ": cannot read the config file: " + std::strerror(errno));
    }
    std::stringstream text;
    text << in.rdbuf();
    return load_config_text(text.str(), path);
}

}  // namespace pilogger

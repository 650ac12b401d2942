#include "config.hpp"

#include "disk_budget.hpp"
#include "paths.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>

#include <cerrno>
#include <algorithm>
#include <cctype>
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

// An explicit tag (!!binary, !!str, !custom) written on a node: "" when there is none. yaml-cpp
// gives "?" for a plain node and "!" for a quoted scalar.
std::string explicit_tag(const YAML::Node& node) {
    if (!node.IsDefined()) return {};
    const std::string& tag = node.Tag();
    if (tag.empty() || tag == "?" || tag == "!") return {};
    const std::string core = "tag:yaml.org,2002:";
    if (tag.rfind(core, 0) == 0) return "!!" + tag.substr(core.size());
    return tag;
}

}  // namespace

std::string neon_address_problem(const std::string& address) {
    if (address.empty()) return "is empty";
    if (address == "auto" || address == "simulator") return {};
    std::string host = address;
    std::string port;
    const size_t colon = address.rfind(':');
    if (colon != std::string::npos && address.find(':') != colon) {
        // Colons: an IPv6 address, without a port (the port key gives it).
        in6_addr v6{};
        if (::inet_pton(AF_INET6, address.c_str(), &v6) == 1) return {};
        return "is not an IPv6 address (host:port takes one colon; give an IPv6 address alone and its port with port:)";
    }
    if (colon != std::string::npos) {
        host = address.substr(0, colon);
        port = address.substr(colon + 1);
        if (host.empty()) return "has no host before the ':'";
    }
    if (host.find_first_not_of("0123456789.") == std::string::npos) {
        // All digits and dots: it must be an IPv4 address, four numbers from 0 to 255.
        std::vector<std::string> parts;
        size_t start = 0;
        for (size_t dot; (dot = host.find('.', start)) != std::string::npos; start = dot + 1) {
            parts.push_back(host.substr(start, dot - start));
        }
        parts.push_back(host.substr(start));
        if (parts.size() != 4) return "has the host '" + host + "', not an IPv4 address (four numbers: 192.168.1.20)";
        for (const auto& part : parts) {
            if (part.empty() || part.size() > 3 || std::stoi(part) > 255) {
                return "has the host '" + host + "', not an IPv4 address: '" + part + "' is not a number from 0 to 255";
            }
        }
    } else {
        // A host name: labels of letters, digits and '-' (not at either end), 1 to 63 long.
        std::string name = host;
        if (name.back() == '.') name.pop_back();
        if (name.size() > 253) return "has a host name longer than 253 characters";
        size_t start = 0;
        while (true) {
            const size_t dot = name.find('.', start);
            const std::string label = name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
            const bool ok = !label.empty() && label.size() <= 63 && label.front() != '-' && label.back() != '-' &&
                            std::all_of(label.begin(), label.end(), [](char c) {
                                return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-';
                            });
            if (!ok) return "has the host '" + host + "', neither an IPv4 address nor a host name";
            if (dot == std::string::npos) break;
            start = dot + 1;
        }
    }
    if (colon != std::string::npos &&
        (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
         std::stol(port) < 1 || std::stol(port) > 65535)) {
        return "has the port '" + port + "', not a number from 1 to 65535";
    }
    return {};
}

// ---- YamlMap ----

YamlMap::YamlMap(const YAML::Node& node, std::string key_path, std::string file)
    : key_path_(std::move(key_path)), file_(std::move(file)) {
    // An absent key comes back as an invalid node; treat it as an empty mapping.
    if (node.IsDefined()) node_ = node;
    if (std::string tag = explicit_tag(node_); !tag.empty()) {
        throw ConfigError(location(file_, node_.Mark()) + ": " +
                          (key_path_.empty() ? std::string("top level") : key_path_) + ": the YAML tag " + tag +
                          " is not supported; write the mapping without it");
    }
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

YAML::Node YamlMap::value(const std::string& key) {
    YAML::Node n = lookup(key);
    // yaml-cpp keeps a tag's value as text without decoding it (!!binary stays base64): a tag
    // would silently mean something else than what is read.
    if (std::string tag = explicit_tag(n); !tag.empty()) {
        fail(n, key, "the YAML tag " + tag + " is not supported here; write the value plainly, without a tag");
    }
    return n;
}

bool YamlMap::has(const std::string& key) const {
    if (!node_.IsMap()) return false;
    const YAML::Node& const_node = node_;
    return const_node[key].IsDefined();
}

YAML::Node YamlMap::node(const std::string& key) { return lookup(key); }

std::string YamlMap::string(const std::string& key, const std::string& fallback) {
    YAML::Node n = value(key);
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
    YAML::Node n = value(key);
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
    YAML::Node n = value(key);
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
    YAML::Node n = value(key);
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
        if (std::string tag = explicit_tag(entry.first); !tag.empty()) {
            fail(entry.first, key, "the YAML tag " + tag + " on a key is not supported");
        }
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

// A file a simulator writes: its folder must be there.
void check_file_folder(YamlMap& m, const std::string& key, const std::string& path) {
    if (path.empty()) return;
    const size_t slash = path.find_last_of('/');
    const std::string folder = slash == std::string::npos ? "." : path.substr(0, std::max<size_t>(slash, 1));
    struct stat st {};
    if (::stat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        m.fail(m.node(key), key, "'" + path + "': the folder " + folder + " does not exist");
    }
}

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
nlohmann::json eyetracker_settings(YamlMap& m, bool check_host) {
    nlohmann::json s;
    std::string address = m.string("address", "auto");
    if (std::string problem = neon_address_problem(address); !problem.empty()) {
        m.fail(m.node("address"), "address",
               "'" + address + "' " + problem + "; expected auto, simulator, or the Neon's host[:port] (192.168.1.20:8080, neon.local)");
    }
    if (check_host && address == "simulator") {
        // The module starts neon-sim from its own folder, else from PATH.
        std::string why;
        if (::access((executable_dir() + "/neon-sim").c_str(), X_OK) != 0 && resolve_executable("neon-sim", &why).empty()) {
            m.fail(m.node("address"), "address",
                   "simulator needs neon-sim, which is neither next to pilogger (" + executable_dir() + ") nor on PATH");
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
    if (check_host && (m.boolean("scene", true) || m.boolean("preview", true))) {
        std::string why;
        const std::string ffmpeg = s["ffmpeg"].get<std::string>();
        if (resolve_executable(ffmpeg, &why).empty()) {
            m.fail(m.has("ffmpeg") ? m.node("ffmpeg") : m.node("scene"), "ffmpeg",
                   "'" + ffmpeg + "' " + why + "; the scene video needs it (apt install ffmpeg, or scene: false)");
        }
    }
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
        if (sim.has("scene_size")) {
            const std::string size = sim.string("scene_size", "1600x1200");
            static const std::regex kSize("([1-9][0-9]{0,4})x([1-9][0-9]{0,4})");
            std::smatch wh;
            if (!std::regex_match(size, wh, kSize) || std::stoi(wh[1]) % 2 != 0 || std::stoi(wh[2]) % 2 != 0 ||
                std::stoi(wh[1]) < 16 || std::stoi(wh[2]) < 16 || std::stoi(wh[1]) > 8192 || std::stoi(wh[2]) > 8192) {
                sim.fail(sim.node("scene_size"), "scene_size",
                         "expected WIDTHxHEIGHT with even numbers from 16 to 8192 (1600x1200), got '" + size + "'");
            }
            knobs["scene_size"] = size;
        }
        if (sim.has("scene_fps")) knobs["scene_fps"] = sim.number("scene_fps", 30, 1, 60);
        if (sim.has("loss")) knobs["loss"] = sim.number("loss", 0, 0, 0.9);
        if (sim.has("reorder")) knobs["reorder"] = sim.number("reorder", 0, 0, 0.9);
        if (sim.has("rtp_ts_start")) knobs["rtp_ts_start"] = sim.integer("rtp_ts_start", 0, 0, 4294967295);
        if (sim.has("first_sr_delay_s")) knobs["first_sr_delay_s"] = sim.number("first_sr_delay_s", 0, 0, 60);
        if (sim.has("disconnect_at_s")) knobs["disconnect_at_s"] = sim.number("disconnect_at_s", 0, 0, 86400);
        if (sim.has("down_for_s")) knobs["down_for_s"] = sim.number("down_for_s", 5, 0, 3600);
        if (sim.has("device_name")) knobs["device_name"] = sim.string("device_name", "Neon Sim");
        if (sim.has("truth")) {
            knobs["truth"] = expand_home(sim.string("truth", ""));
            if (check_host) check_file_folder(sim, "truth", knobs["truth"].get<std::string>());
        }
        sim.finish();
        s["simulator"] = knobs;
    }
    return s;
}

ModuleConfig load_module(const std::string& name, YamlMap m, const YAML::Node& entry, bool check_host) {
    ModuleConfig module;
    module.name = name;
    module.type = m.choice("type", name, {"notes", "test", "camera", "eyetracker"});
    module.enabled = m.boolean("enabled", true);
    module.executable = expand_home(m.string("executable", ""));
    if (check_host) {
        // Spawned as the supervisor will (module_process.cpp): a missing program would only show
        // as a module restarting again and again.
        if (!module.executable.empty()) {
            std::string why;
            if (resolve_executable(module.executable, &why).empty()) {
                m.fail(m.node("executable"), "executable", "'" + module.executable + "' " + why);
            }
        } else if (std::string problem = module_executable_problem(module.type); !problem.empty()) {
            m.fail(entry, "executable", problem);
        }
    }
    if (module.type == "notes") {
        module.settings = notes_settings(m);
    } else if (module.type == "camera") {
        module.settings = camera_settings(m);
    } else if (module.type == "eyetracker") {
        module.settings = eyetracker_settings(m, check_host);
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

// What yaml-cpp 0.7 lets through, found on its event stream (no recursion, aliases not
// expanded):
//  - a quote that is never closed runs to the end of the file (the rest of the file becomes that
//    one value, and the error would be a missing key at 1:1);
//  - an alias inside the node it names (&b {x: *b}) makes a node that contains itself: walking it
//    overflowed the stack.
class YamlTextCheck : public YAML::EventHandler {
public:
    YamlTextCheck(const std::string& text, const std::string& file) : text_(text), file_(file) {}

    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {
        path_of_next();  // a null key still moves the map on
        node_done();
    }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
        const std::string path = path_of_next();
        for (const Frame& f : open_) {
            if (f.anchor != YAML::NullAnchor && f.anchor == anchor) {
                throw ConfigError(location(file_, mark) + ": " + shown(path) +
                                  ": this alias names the mapping or list it is inside (a node cannot contain itself)");
            }
        }
        node_done();
    }
    void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t, const std::string& value) override {
        const std::string path = path_of_next(&value);
        if (tag == "!") check_quote(mark, path);  // "!": a quoted scalar
        node_done();
    }
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t anchor, YAML::EmitterStyle::value) override {
        open_.push_back(Frame{false, anchor, path_of_next()});
    }
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t anchor, YAML::EmitterStyle::value) override {
        open_.push_back(Frame{true, anchor, path_of_next()});
    }
    void OnSequenceEnd() override { close(); }
    void OnMapEnd() override { close(); }

private:
    struct Frame {
        bool map;
        YAML::anchor_t anchor;
        std::string path;
        bool at_key = true;  // a map's next node is a key
        std::string key;     // the map's current key
        size_t index = 0;    // a list's next index
    };

    static std::string shown(const std::string& path) { return path.empty() ? std::string("top level") : path; }

    // The key path of the node that begins now; key_text: the node's text when it is a scalar.
    std::string path_of_next(const std::string* key_text = nullptr) {
        if (open_.empty()) return {};
        Frame& f = open_.back();
        if (!f.map) return f.path + "[" + std::to_string(f.index) + "]";
        if (f.at_key) f.key = key_text != nullptr ? *key_text : "?";
        return f.path.empty() ? f.key : f.path + "." + f.key;
    }
    void node_done() {
        if (open_.empty()) return;
        Frame& f = open_.back();
        if (f.map) {
            f.at_key = !f.at_key;
        } else {
            ++f.index;
        }
    }
    void close() {
        if (open_.empty()) return;
        open_.pop_back();
        node_done();
    }

    void check_quote(const YAML::Mark& mark, const std::string& path) const {
        const auto pos = static_cast<size_t>(std::max(0, mark.pos));
        if (pos >= text_.size() || (text_[pos] != '"' && text_[pos] != '\'')) return;
        const char quote = text_[pos];
        for (size_t i = pos + 1; i < text_.size(); ++i) {
            if (quote == '"' && text_[i] == '\\') {
                ++i;  // an escape: the next character is taken as it is
            } else if (text_[i] == quote) {
                if (quote == '\'' && i + 1 < text_.size() && text_[i + 1] == '\'') {
                    ++i;  // '' is a quote inside single quotes
                    continue;
                }
                return;
            }
        }
        throw ConfigError(location(file_, mark) + ": " + shown(path) +
                          ": YAML syntax error: the quoted text that starts here never ends (no closing " + quote +
                          " before the end of the file)");
    }

    const std::string& text_;
    const std::string& file_;
    std::vector<Frame> open_;
};

// The line (0-based) of the document marker (---) that begins the document whose content
// starts at content_line, if there is one.
std::optional<int> document_marker_line(const std::string& text, int content_line) {
    int line = 0;
    int marker = -1;
    for (size_t at = 0; at < text.size() && line <= content_line; ++line) {
        const size_t nl = text.find('\n', at);
        const std::string row = text.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
        if (row.rfind("---", 0) == 0 && (row.size() == 3 || std::isspace(static_cast<unsigned char>(row[3])) != 0)) {
            marker = line;
        }
        if (nl == std::string::npos) break;
        at = nl + 1;
    }
    if (marker < 0) return std::nullopt;
    return marker;
}

// Where the content of a second, non-empty YAML document starts (0-based line), if there is one.
// Not YAML::LoadAll: in yaml-cpp 0.7 it loops forever, allocating, on some broken documents (it
// keeps handing back the same empty document; a fuzzer found "# x\n!y, z" in seconds).
std::optional<int> second_document_line(const std::string& text) {
    // Notes the first node of each document: the document is empty when that is a null.
    class FirstNode : public YAML::EventHandler {
    public:
        bool empty = true;
        YAML::Mark mark;
        void OnDocumentStart(const YAML::Mark&) override { seen_ = false; }
        void OnDocumentEnd() override {}
        void OnNull(const YAML::Mark& m, YAML::anchor_t) override { note(m, true); }
        void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { note(m, false); }
        void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t, const std::string&) override { note(m, false); }
        void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
            note(m, false);
        }
        void OnSequenceEnd() override {}
        void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
            note(m, false);
        }
        void OnMapEnd() override {}

    private:
        void note(const YAML::Mark& m, bool null) {
            if (seen_) return;
            seen_ = true;
            empty = null;
            mark = m;
        }
        bool seen_ = false;
    };
    std::istringstream in(text);
    YAML::Parser parser(in);
    FirstNode first;
    if (!parser.HandleNextDocument(first)) return std::nullopt;
    // Empty documents (a trailing ---) are fine; a bounded look past them ends the endless case.
    for (int document = 1; document < 64 && parser.HandleNextDocument(first); ++document) {
        if (!first.empty) return first.mark.line;
    }
    return std::nullopt;
}

Config parse_config(const std::string& text, const std::string& source_name, bool check_host) {
    YAML::Node root;
    try {
        root = YAML::Load(text);
        if (std::optional<int> line = second_document_line(text)) {
            if (std::optional<int> marker = document_marker_line(text, *line)) {
                throw ConfigError(source_name + ":" + std::to_string(*marker + 1) +
                                  ":1: a second YAML document begins here (after ---); a pilogger config is one "
                                  "document: remove this --- and what follows, or merge it into the first");
            }
            // yaml-cpp took text that does not fit the document above for the start of another.
            throw ConfigError(source_name + ":" + std::to_string(*line + 1) +
                              ":1: YAML syntax error: this line does not continue the document above it "
                              "(check its indentation and the line before)");
        }
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
    {
        std::istringstream in(text);
        YAML::Parser parser(in);
        YamlTextCheck check(text, source_name);
        parser.HandleNextDocument(check);
    }

    Config config;
    config.source_file = source_name;
    YamlMap top(root, "", source_name);
    config.data_dir = expand_home(top.required_string("data_dir"));
    if (check_host) {
        if (std::string problem = data_dir_problem(config.data_dir); !problem.empty()) {
            top.fail(top.node("data_dir"), "data_dir", problem + "; sessions could not be recorded there");
        }
    }
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
        // Where the entry's name is written (copy-constructed: assigning a YAML::Node would
        // overwrite the node it refers to).
        auto key_of = [&modules_node, &module_node](const std::string& wanted) {
            for (const auto& entry : modules_node) {
                if (entry.first.IsScalar() && entry.first.Scalar() == wanted) return YAML::Node(entry.first);
            }
            return YAML::Node(module_node);
        };
        config.modules.push_back(load_module(name, modules.map(name), key_of(name), check_host));
    }
    modules.finish();
    if (top.has("pico")) {
        YamlMap pico = top.map("pico");
        config.pico = parse_pico_config(pico, check_host);
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

Config load_config_text(const std::string& text, const std::string& source_name, bool check_host) {
    try {
        return parse_config(text, source_name, check_host);
    } catch (const YAML::Exception& e) {
        // Anything yaml-cpp itself objects to still names the file and place.
        throw ConfigError(location(source_name, e.mark) + ": " + e.msg);
    }
}

Config load_config_file(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        throw ConfigError(path + ": cannot read the config file: " + std::strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        throw ConfigError(path + ": is a folder, not a config file; expected a YAML file such as " + path +
                          (path.back() == '/' ? "" : "/") + "pilogger.yaml");
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw ConfigError(path + ": cannot read the config file: " + std::strerror(errno));
    }
    std::stringstream text;
    text << in.rdbuf();
    if (in.bad()) throw ConfigError(path + ": cannot read the config file: " + std::strerror(errno));
    return load_config_text(text.str(), path, true);
}

}  // namespace pilogger

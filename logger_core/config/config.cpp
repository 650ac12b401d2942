#include "config.hpp"

#include "disk_budget.hpp"
#include "module_settings.hpp"
#include "paths.hpp"

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


// ---- module settings by type ----

namespace {

const std::regex kModuleName("[a-z][a-z0-9_-]{0,31}");

ModuleConfig load_module(const std::string& name, YamlMap m, const YAML::Node& entry, bool check_host,
                         ModuleCatalog& catalog) {
    ModuleConfig module;
    module.name = name;
    module.type = m.string("type", name);
    if (!std::regex_match(module.type, kModuleName)) {
        m.fail(m.has("type") ? m.node("type") : entry, "type",
               "'" + module.type + "' is not a kind of module (lower-case letters, digits, '-' and '_')");
    }
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
            std::string known;
            for (const std::string& kind : kinds_next_to_pilogger()) known += (known.empty() ? "" : ", ") + kind;
            m.fail(entry, "executable", problem + " (the kinds of module next to pilogger: " + known + ")");
        }
    }
    std::string why;
    std::shared_ptr<const ModuleKind> kind = catalog.describe(module.type, module.executable, &why);
    if (!kind) m.fail(m.has("type") ? m.node("type") : entry, "type", why);
    module.settings = module_settings_from_yaml(*kind, m, check_host);
    module.disk_bytes_per_s = kind->disk_bytes_per_s(module.settings);
    module.capabilities = kind->capabilities;
    m.finish();
    return module;
}

}  // namespace

bool ModuleConfig::has_capability(const std::string& capability) const {
    return std::find(capabilities.begin(), capabilities.end(), capability) != capabilities.end();
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
                throw ConfigError(yaml_location(file_, mark) + ": " + shown(path) +
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
        throw ConfigError(yaml_location(file_, mark) + ": " + shown(path) +
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

Config parse_config(const std::string& text, const std::string& source_name, bool check_host, ModuleCatalog& catalog) {
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
        throw ConfigError(yaml_location(source_name, e.mark) +
                          ": YAML nested too deeply (over about 500 levels of lists or mappings; a pilogger "
                          "config needs fewer than 10)");
    } catch (const YAML::Exception& e) {
        throw ConfigError(yaml_location(source_name, e.mark) + ": YAML syntax error: " + e.msg);
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
        config.modules.push_back(load_module(name, modules.map(name), key_of(name), check_host, catalog));
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

Config load_config_text(const std::string& text, const std::string& source_name, bool check_host,
                        ModuleCatalog* catalog) {
    try {
        return parse_config(text, source_name, check_host, catalog != nullptr ? *catalog : program_catalog());
    } catch (const YAML::Exception& e) {
        // Anything yaml-cpp itself objects to still names the file and place.
        throw ConfigError(yaml_location(source_name, e.mark) + ": " + e.msg);
    }
}

Config load_config_file(const std::string& path, ModuleCatalog* catalog) {
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
    return load_config_text(text.str(), path, true, catalog);
}

}  // namespace pilogger

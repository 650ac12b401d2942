#include "yaml_map.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
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

std::string yaml_location(const std::string& file, const YAML::Mark& mark) { return location(file, mark); }

std::string expand_home(const std::string& path) {
    if (path == "~" || path.rfind("~/", 0) == 0) {
        const char* home = std::getenv("HOME");
        if (home != nullptr) return std::string(home) + path.substr(1);
    }
    return path;
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

std::string YamlMap::choice(const std::string& key, const std::string& fallback,
                            const std::vector<std::string>& allowed) {
    std::string value = string(key, fallback);
    std::string list;
    for (const std::string& a : allowed) {
        if (value == a) return value;
        list += list.empty() ? a : ", " + a;
    }
    fail(lookup(key), key, "expected one of " + list + ", got '" + value + "'");
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

}  // namespace pilogger

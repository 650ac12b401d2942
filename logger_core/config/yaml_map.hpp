// One YAML mapping read key by key, each error naming the file, line and column, the full key
// and what was expected; keys nobody asked for are errors so typos never pass silently.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace pilogger {

class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// "file:line:column" of a place in the file (just the file when the place is unknown).
std::string yaml_location(const std::string& file, const YAML::Mark& mark);

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
    std::string choice(const std::string& key, const std::string& fallback, const std::vector<std::string>& allowed);
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

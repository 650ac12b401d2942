// One typed value from a module's settings object (as the YAML loader made it): the fallback
// when absent or null, a clear error naming the owner and the key when of the wrong type.
#pragma once

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <string_view>

namespace pilogger {

template <typename T>
T json_setting(const nlohmann::json& settings, const char* key, T fallback, std::string_view owner) {
    auto it = settings.find(key);
    if (it == settings.end() || it->is_null()) return fallback;
    try {
        return it->get<T>();
    } catch (const nlohmann::json::exception&) {
        throw std::invalid_argument(std::string(owner) + " setting \"" + key + "\" has the wrong type");
    }
}

}  // namespace pilogger

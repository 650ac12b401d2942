// Reading fields of the supervisor's JSON without ever throwing: a field that is missing, null or
// of another type than expected reads as the fallback. (json::value throws on a type mismatch,
// and an exception in a Qt slot would end the GUI.)
#pragma once

#include "ndjson.hpp"

#include <QString>

#include <cstdint>
#include <string>

namespace pilogger::gui {

inline const json& field(const json& j, const char* key) {
    static const json null_value;
    if (!j.is_object()) return null_value;
    auto it = j.find(key);
    return it == j.end() ? null_value : *it;
}

inline std::string str(const json& j, const char* key, const std::string& fallback = {}) {
    const json& v = field(j, key);
    return v.is_string() ? v.get<std::string>() : fallback;
}

inline QString qstr(const json& j, const char* key, const QString& fallback = {}) {
    const json& v = field(j, key);
    return v.is_string() ? QString::fromStdString(v.get<std::string>()) : fallback;
}

inline int64_t integer(const json& j, const char* key, int64_t fallback = 0) {
    const json& v = field(j, key);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) return static_cast<int64_t>(v.get<double>());
    return fallback;
}

inline double real(const json& j, const char* key, double fallback = 0) {
    const json& v = field(j, key);
    return v.is_number() ? v.get<double>() : fallback;
}

inline bool flag(const json& j, const char* key, bool fallback = false) {
    const json& v = field(j, key);
    return v.is_boolean() ? v.get<bool>() : fallback;
}

}  // namespace pilogger::gui

// Reading fields of the supervisor's JSON without ever throwing: a field that is missing, null or
// of another type than expected reads as the fallback. (json::value throws on a type mismatch,
// and an exception in a Qt slot would end the GUI; module stats come from modules verbatim.)
#pragma once

#include "json_read.hpp"
#include "ndjson.hpp"

#include <QString>

#include <cstdint>
#include <string>

namespace pilogger::gui {

// The core's non-throwing readers (logger_core/protocol/json_read.hpp), under the GUI's short names.
using read::field;
using read::flag;
using read::integer;
using read::real;

inline std::string str(const json& j, const char* key, const std::string& fallback = {}) {
    return read::text(j, key, fallback);
}

inline QString qstr(const json& j, const char* key, const QString& fallback = {}) {
    const json& v = field(j, key);
    return v.is_string() ? QString::fromStdString(v.get<std::string>()) : fallback;
}

}  // namespace pilogger::gui

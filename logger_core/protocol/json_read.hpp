// Reading JSON that came from another process (a module, a client, a device) without ever
// throwing. nlohmann's typed access (get<T>, value()) throws on a type mismatch, and an
// exception inside a libuv callback or a Qt slot would end the process.
//
// Two styles:
//  - read::text / integer / real / flag: lenient, for display (a field of another type reads as
//    the fallback);
//  - FieldReader: strict, for protocol messages: each accessor gives the value or nullopt, and
//    the first field that was wrong is kept with what was expected, so the peer can be told.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace pilogger {

namespace read {

using json = nlohmann::json;

inline const json& field(const json& j, std::string_view key) {
    static const json null_value;
    if (!j.is_object()) return null_value;
    auto it = j.find(key);
    return it == j.end() ? null_value : *it;
}
// The answer refers into j: reading a field of a temporary would dangle (a range-for over a
// request's reply did), so that does not compile.
const json& field(json&& j, std::string_view key) = delete;

inline std::string text(const json& j, std::string_view key, const std::string& fallback = {}) {
    const json& v = field(j, key);
    return v.is_string() ? v.get_ref<const std::string&>() : fallback;
}

// A float is truncated and clamped into int64_t's range (a cast of 1e300 would be undefined).
inline std::optional<int64_t> as_integer(const json& v) {
    // Unsigned first: nlohmann counts unsigned numbers as integers too.
    if (v.is_number_unsigned()) {
        uint64_t u = v.get<uint64_t>();
        return u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                              : static_cast<int64_t>(u);
    }
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
        double d = v.get<double>();
        if (!(d == d)) return std::nullopt;  // NaN
        if (d >= 9.2e18) return std::numeric_limits<int64_t>::max();
        if (d <= -9.2e18) return std::numeric_limits<int64_t>::min();
        return static_cast<int64_t>(d);
    }
    return std::nullopt;
}

inline int64_t integer(const json& j, std::string_view key, int64_t fallback = 0) {
    return as_integer(field(j, key)).value_or(fallback);
}

inline double real(const json& j, std::string_view key, double fallback = 0) {
    const json& v = field(j, key);
    return v.is_number() ? v.get<double>() : fallback;
}

inline bool flag(const json& j, std::string_view key, bool fallback = false) {
    const json& v = field(j, key);
    return v.is_boolean() ? v.get<bool>() : fallback;
}

}  // namespace read

class FieldReader {
public:
    using json = nlohmann::json;
    enum class Need { Optional, Required };

    // object need not be an object: then every Required field is missing. It must outlive the
    // reader (a reference is kept).
    explicit FieldReader(const json& object) : object_(object) {}
    explicit FieldReader(json&&) = delete;

    std::optional<std::string> text(std::string_view key, Need need = Need::Optional, size_t max_bytes = 4096);
    // Only exact integers (no floats, no strings), within [min, max].
    std::optional<int64_t> integer(std::string_view key, Need need = Need::Optional,
                                   int64_t min = std::numeric_limits<int64_t>::min(),
                                   int64_t max = std::numeric_limits<int64_t>::max());
    std::optional<double> number(std::string_view key, Need need = Need::Optional);
    std::optional<bool> boolean(std::string_view key, Need need = Need::Optional);
    const json* object(std::string_view key, Need need = Need::Optional);
    const json* array(std::string_view key, Need need = Need::Optional);

    bool ok() const { return problem_.empty(); }
    // The first wrong field ("" while ok) and what was wrong with it:
    // "\"message\" must be a string, got number".
    const std::string& field() const { return field_; }
    const std::string& problem() const { return problem_; }
    // Marks a problem found by the caller (a value out of a set, say); the first one stays.
    void fail(std::string_view key, std::string problem);

private:
    // The value under key, or nullptr when absent or null (a problem if required).
    const json* find(std::string_view key, Need need);
    void wrong_type(std::string_view key, const json& value, const char* expected);

    const json& object_;
    std::string field_;
    std::string problem_;
};

}  // namespace pilogger

#include "json_read.hpp"

namespace pilogger {

void FieldReader::fail(std::string_view key, std::string problem) {
    if (!problem_.empty()) return;
    field_ = std::string(key);
    problem_ = std::move(problem);
}

void FieldReader::wrong_type(std::string_view key, const json& value, const char* expected) {
    fail(key, "\"" + std::string(key) + "\" must be " + expected + ", got " + value.type_name());
}

const FieldReader::json* FieldReader::find(std::string_view key, Need need) {
    const json* value = nullptr;
    if (object_.is_object()) {
        auto it = object_.find(key);
        if (it != object_.end() && !it->is_null()) value = &*it;
    }
    if (value == nullptr && need == Need::Required) fail(key, "\"" + std::string(key) + "\" is missing");
    return value;
}

std::optional<std::string> FieldReader::text(std::string_view key, Need need, size_t max_bytes) {
    const json* v = find(key, need);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) {
        wrong_type(key, *v, "a string");
        return std::nullopt;
    }
    const auto& s = v->get_ref<const std::string&>();
    if (s.size() > max_bytes) {
        fail(key, "\"" + std::string(key) + "\" is longer than " + std::to_string(max_bytes) + " bytes");
        return std::nullopt;
    }
    return s;
}

std::optional<int64_t> FieldReader::integer(std::string_view key, Need need, int64_t min, int64_t max) {
    const json* v = find(key, need);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number_integer() ||
        (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
        wrong_type(key, *v, "an integer");
        return std::nullopt;
    }
    int64_t n = v->get<int64_t>();
    if (n < min || n > max) {
        fail(key, "\"" + std::string(key) + "\" must be " + std::to_string(min) + ".." + std::to_string(max) +
                      ", got " + std::to_string(n));
        return std::nullopt;
    }
    return n;
}

std::optional<double> FieldReader::number(std::string_view key, Need need) {
    const json* v = find(key, need);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number()) {
        wrong_type(key, *v, "a number");
        return std::nullopt;
    }
    return v->get<double>();
}

std::optional<bool> FieldReader::boolean(std::string_view key, Need need) {
    const json* v = find(key, need);
    if (v == nullptr) return std::nullopt;
    if (!v->is_boolean()) {
        wrong_type(key, *v, "true or false");
        return std::nullopt;
    }
    return v->get<bool>();
}

const FieldReader::json* FieldReader::object(std::string_view key, Need need) {
    const json* v = find(key, need);
    if (v != nullptr && !v->is_object()) {
        wrong_type(key, *v, "an object");
        return nullptr;
    }
    return v;
}

const FieldReader::json* FieldReader::array(std::string_view key, Need need) {
    const json* v = find(key, need);
    if (v != nullptr && !v->is_array()) {
        wrong_type(key, *v, "an array");
        return nullptr;
    }
    return v;
}

}  // namespace pilogger

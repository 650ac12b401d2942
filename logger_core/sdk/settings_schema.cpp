#include "settings_schema.hpp"

#include "json_read.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace pilogger {

using json = nlohmann::json;

// ---- builder ----

Setting& Setting::must_be_even(std::string why) {
    even = true;
    even_why = std::move(why);
    return *this;
}
Setting& Setting::with_hint(std::string text) {
    hint = std::move(text);
    return *this;
}
Setting& Setting::shown_default(std::string text) {
    default_doc = std::move(text);
    return *this;
}
Setting& Setting::needed_when_any(std::vector<std::string> flags) {
    needed_if_any = std::move(flags);
    return *this;
}
Setting& Setting::only_if_written() {
    if (default_doc.empty() && !fallback.is_null()) {
        default_doc = fallback.is_string() ? fallback.get<std::string>() : fallback.dump();
    }
    fallback = nullptr;
    return *this;
}

Setting& SettingsSchema::add(Setting setting) {
    settings_.push_back(std::move(setting));
    return settings_.back();
}

Setting& SettingsSchema::text(std::string key, std::string fallback, std::string doc) {
    Setting s;
    s.key = std::move(key);
    s.type = SettingType::Text;
    s.fallback = std::move(fallback);
    s.doc = std::move(doc);
    return add(std::move(s));
}

Setting& SettingsSchema::integer(std::string key, int64_t fallback, int64_t min, int64_t max, std::string doc) {
    Setting s;
    s.key = std::move(key);
    s.type = SettingType::Integer;
    s.fallback = fallback;
    s.min = static_cast<double>(min);
    s.max = static_cast<double>(max);
    s.doc = std::move(doc);
    return add(std::move(s));
}

Setting& SettingsSchema::number(std::string key, double fallback, double min, double max, std::string doc) {
    Setting s;
    s.key = std::move(key);
    s.type = SettingType::Number;
    s.fallback = fallback;
    s.min = min;
    s.max = max;
    s.doc = std::move(doc);
    return add(std::move(s));
}

Setting& SettingsSchema::boolean(std::string key, bool fallback, std::string doc) {
    Setting s;
    s.key = std::move(key);
    s.type = SettingType::Boolean;
    s.fallback = fallback;
    s.doc = std::move(doc);
    return add(std::move(s));
}

Setting& SettingsSchema::choice(std::string key, std::string fallback, std::vector<std::string> allowed,
                                std::string doc) {
    Setting s;
    s.key = std::move(key);
    s.type = SettingType::Choice;
    s.fallback = std::move(fallback);
    s.choices = std::move(allowed);
    s.doc = std::move(doc);
    return add(std::move(s));
}

Setting& SettingsSchema::section(std::string key, std::string doc, const SettingsSchema& knobs) {
    Setting s;
    s.key = std::move(key);
    s.type = SettingType::Section;
    s.doc = std::move(doc);
    s.children = knobs.settings();
    return add(std::move(s));
}

const Setting* SettingsSchema::find(const std::string& key) const {
    for (const Setting& s : settings_) {
        if (s.key == key) return &s;
    }
    return nullptr;
}

// ---- checks ----

std::string setting_type_name(SettingType type) {
    switch (type) {
        case SettingType::Text: return "text";
        case SettingType::Integer: return "integer";
        case SettingType::Number: return "number";
        case SettingType::Boolean: return "boolean";
        case SettingType::Choice: return "choice";
        case SettingType::Section: return "section";
    }
    return "text";
}

namespace {

std::optional<SettingType> setting_type_from(const std::string& name) {
    for (SettingType t : {SettingType::Text, SettingType::Integer, SettingType::Number, SettingType::Boolean,
                          SettingType::Choice, SettingType::Section}) {
        if (setting_type_name(t) == name) return t;
    }
    return std::nullopt;
}

const char* format_name(TextFormat f) {
    switch (f) {
        case TextFormat::Plain: return "plain";
        case TextFormat::Address: return "address";
        case TextFormat::Size: return "size";
        case TextFormat::Program: return "program";
        case TextFormat::OutputFile: return "output_file";
    }
    return "plain";
}

std::optional<TextFormat> format_from(const std::string& name) {
    for (TextFormat f : {TextFormat::Plain, TextFormat::Address, TextFormat::Size, TextFormat::Program,
                         TextFormat::OutputFile}) {
        if (name == format_name(f)) return f;
    }
    return std::nullopt;
}

std::string range_text(const Setting& s) {
    std::ostringstream out;
    out << *s.min << " to " << *s.max;
    return out.str();
}

[[noreturn]] void refuse(const std::string& owner, const std::string& key, const std::string& what) {
    throw std::invalid_argument(owner + " setting \"" + key + "\" " + what);
}

json apply_one(const Setting& s, const json& value, const std::string& owner, const std::string& key) {
    switch (s.type) {
        case SettingType::Text: {
            if (!value.is_string()) refuse(owner, key, "has the wrong type (expected text)");
            const std::string& text = value.get_ref<const std::string&>();
            std::string problem;
            if (s.format == TextFormat::Address) problem = address_problem(text, s.special_words);
            if (s.format == TextFormat::Size) problem = size_problem(text);
            if (!problem.empty()) refuse(owner, key, "'" + text + "' " + problem);
            return value;
        }
        case SettingType::Choice: {
            if (!value.is_string()) refuse(owner, key, "has the wrong type (expected text)");
            const std::string& text = value.get_ref<const std::string&>();
            if (std::find(s.choices.begin(), s.choices.end(), text) == s.choices.end()) {
                refuse(owner, key, "cannot be '" + text + "'");
            }
            return value;
        }
        case SettingType::Integer: {
            // A float is not silently truncated: 29.97 frames is not 29.
            if (!value.is_number_integer()) refuse(owner, key, "has the wrong type (expected a whole number)");
            const int64_t v = read::as_integer(value).value_or(0);
            if ((s.min && static_cast<double>(v) < *s.min) || (s.max && static_cast<double>(v) > *s.max)) {
                refuse(owner, key, "is out of range (" + range_text(s) + ")");
            }
            if (s.even && v % 2 != 0) refuse(owner, key, "must be even (" + s.even_why + ")");
            return v;
        }
        case SettingType::Number: {
            if (!value.is_number()) refuse(owner, key, "has the wrong type (expected a number)");
            const double v = value.get<double>();
            if (!std::isfinite(v) || (s.min && v < *s.min) || (s.max && v > *s.max)) {
                refuse(owner, key, "is out of range (" + range_text(s) + ")");
            }
            return v;
        }
        case SettingType::Boolean:
            if (!value.is_boolean()) refuse(owner, key, "has the wrong type (expected true or false)");
            return value;
        case SettingType::Section: {
            if (!value.is_object()) refuse(owner, key, "has the wrong type (expected a mapping)");
            SettingsSchema knobs;
            knobs.settings() = s.children;
            return knobs.apply(value, owner + " " + key);
        }
    }
    return value;
}

}  // namespace

json SettingsSchema::apply(const json& settings, const std::string& owner) const {
    if (!settings.is_object()) throw std::invalid_argument(owner + " settings must be an object");
    for (const auto& [key, value] : settings.items()) {
        if (find(key) == nullptr) refuse(owner, key, "is not a setting of " + owner);
    }
    json out = json::object();
    for (const Setting& s : settings_) {
        auto it = settings.find(s.key);
        if (it == settings.end() || it->is_null()) {
            if (s.type == SettingType::Section) {
                SettingsSchema knobs;
                knobs.settings() = s.children;
                json inner = knobs.apply(json::object(), owner + " " + s.key);
                if (!inner.empty()) out[s.key] = inner;
            } else if (!s.fallback.is_null()) {
                out[s.key] = s.fallback;
            }
            continue;
        }
        out[s.key] = apply_one(s, *it, owner, s.key);
    }
    return out;
}

std::string address_problem(const std::string& address, const std::vector<std::string>& special_words) {
    if (address.empty()) return "is empty";
    if (std::find(special_words.begin(), special_words.end(), address) != special_words.end()) return {};
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

std::string size_problem(const std::string& size) {
    static const std::regex kSize("([1-9][0-9]{0,4})x([1-9][0-9]{0,4})");
    std::smatch wh;
    if (!std::regex_match(size, wh, kSize)) return "is not WIDTHxHEIGHT";
    const int w = std::stoi(wh[1]);
    const int h = std::stoi(wh[2]);
    if (w % 2 != 0 || h % 2 != 0 || w < 16 || h < 16 || w > 8192 || h > 8192) {
        return "is not WIDTHxHEIGHT with even numbers from 16 to 8192";
    }
    return {};
}

// ---- the description as JSON ----

namespace {

json setting_json(const Setting& s) {
    json j = {{"key", s.key}, {"type", setting_type_name(s.type)}, {"doc", s.doc}};
    if (!s.fallback.is_null()) j["default"] = s.fallback;
    if (!s.default_doc.empty()) j["default_doc"] = s.default_doc;
    if (s.min) j["min"] = *s.min;
    if (s.max) j["max"] = *s.max;
    if (!s.choices.empty()) j["choices"] = s.choices;
    if (s.even) j["even"] = s.even_why;
    if (s.format != TextFormat::Plain) j["format"] = format_name(s.format);
    if (!s.special_words.empty()) j["special_words"] = s.special_words;
    if (!s.hint.empty()) j["hint"] = s.hint;
    if (!s.needed_if_any.empty()) j["needed_if_any"] = s.needed_if_any;
    if (s.type == SettingType::Section) {
        json children = json::array();
        for (const Setting& c : s.children) children.push_back(setting_json(c));
        j["settings"] = children;
    }
    return j;
}

std::optional<std::vector<std::string>> strings(const json& j, const char* key) {
    std::vector<std::string> out;
    const json& v = read::field(j, key);
    if (v.is_null()) return out;
    if (!v.is_array()) return std::nullopt;
    for (const json& e : v) {
        if (!e.is_string()) return std::nullopt;
        out.push_back(e.get<std::string>());
    }
    return out;
}

bool setting_from(const json& j, Setting& s, std::string* why, int depth) {
    auto fail = [&](const std::string& what) {
        *why = "setting " + read::text(j, "key", "?") + ": " + what;
        return false;
    };
    if (!j.is_object()) return fail("not an object");
    s.key = read::text(j, "key");
    if (s.key.empty()) return fail("no key");
    std::optional<SettingType> type = setting_type_from(read::text(j, "type"));
    if (!type) return fail("unknown type '" + read::text(j, "type") + "'");
    s.type = *type;
    s.doc = read::text(j, "doc");
    s.default_doc = read::text(j, "default_doc");
    s.fallback = read::field(j, "default");
    for (const char* bound : {"min", "max"}) {
        const json& v = read::field(j, bound);
        if (v.is_null()) continue;
        if (!v.is_number()) return fail(std::string(bound) + " is not a number");
        (bound[1] == 'i' ? s.min : s.max) = v.get<double>();
    }
    auto choices = strings(j, "choices");
    auto special = strings(j, "special_words");
    auto needed = strings(j, "needed_if_any");
    if (!choices || !special || !needed) return fail("a list of words is not a list of text");
    s.choices = *choices;
    s.special_words = *special;
    s.needed_if_any = *needed;
    if (s.type == SettingType::Choice && s.choices.empty()) return fail("a choice without choices");
    if (const json& even = read::field(j, "even"); even.is_string()) {
        s.even = true;
        s.even_why = even.get<std::string>();
    }
    std::optional<TextFormat> format = format_from(read::text(j, "format", "plain"));
    if (!format) return fail("unknown format '" + read::text(j, "format") + "'");
    s.format = *format;
    s.hint = read::text(j, "hint");
    if (s.type == SettingType::Section) {
        if (depth > 0) return fail("a section inside a section");
        const json& children = read::field(j, "settings");
        if (!children.is_array()) return fail("a section without settings");
        for (const json& c : children) {
            Setting child;
            if (!setting_from(c, child, why, depth + 1)) return false;
            s.children.push_back(std::move(child));
        }
    }
    return true;
}

}  // namespace

json ModuleKind::to_json() const {
    json settings_json = json::array();
    for (const Setting& s : settings.settings()) settings_json.push_back(setting_json(s));
    json rate = json::array();
    for (const DiskRateTerm& t : disk_rate) {
        json term = {{"what", t.what}, {"factors", t.factors}};
        if (!t.when.empty()) term["when"] = t.when;
        if (!t.cap_kbps.empty()) term["cap_kbps"] = t.cap_kbps;
        rate.push_back(term);
    }
    json j = {{"describe", 1},
              {"kind", kind},
              {"summary", summary},
              {"files", files},
              {"capabilities", capabilities},
              {"settings", settings_json},
              {"disk_rate", rate}};
    if (!devices_heading.empty()) j["devices_heading"] = devices_heading;
    if (simulator) {
        j["simulator"] = {{"setting", simulator->setting},
                          {"value", simulator->value},
                          {"program", simulator->program},
                          {"options", simulator->options}};
    }
    return j;
}

std::optional<ModuleKind> ModuleKind::from_json(const json& j, std::string* why) {
    std::string ignored;
    if (why == nullptr) why = &ignored;
    if (!j.is_object() || read::integer(j, "describe", 0) != 1) {
        *why = "not a module description (no \"describe\": 1)";
        return std::nullopt;
    }
    ModuleKind kind;
    kind.kind = read::text(j, "kind");
    kind.summary = read::text(j, "summary");
    kind.files = read::text(j, "files");
    auto caps = strings(j, "capabilities");
    if (kind.kind.empty() || !caps) {
        *why = "the description has no kind or a bad capabilities list";
        return std::nullopt;
    }
    kind.capabilities = *caps;
    kind.devices_heading = read::text(j, "devices_heading");
    const json& listed = read::field(j, "settings");
    if (!listed.is_array()) {
        *why = "the description has no settings list";
        return std::nullopt;
    }
    for (const json& s : listed) {
        Setting setting;
        if (!setting_from(s, setting, why, 0)) return std::nullopt;
        kind.settings.settings().push_back(std::move(setting));
    }
    const json& rate = read::field(j, "disk_rate");
    if (rate.is_array()) {
        for (const json& t : rate) {
            DiskRateTerm term;
            term.what = read::text(t, "what");
            term.when = read::text(t, "when");
            term.cap_kbps = read::text(t, "cap_kbps");
            const json& factors = read::field(t, "factors");
            if (!factors.is_array()) {
                *why = "a disk_rate term without factors";
                return std::nullopt;
            }
            for (const json& f : factors) {
                if (!f.is_number() && !f.is_string()) {
                    *why = "a disk_rate factor is neither a number nor a setting";
                    return std::nullopt;
                }
                term.factors.push_back(f);
            }
            kind.disk_rate.push_back(std::move(term));
        }
    }
    if (const json& sim = read::field(j, "simulator"); sim.is_object()) {
        kind.simulator = SimulatorHook{read::text(sim, "setting"), read::text(sim, "value"), read::text(sim, "program"),
                                       read::text(sim, "options", "")};
    }
    return kind;
}

double ModuleKind::disk_bytes_per_s(const json& values) const {
    double total = 0;
    for (const DiskRateTerm& t : disk_rate) {
        if (!t.when.empty() && !read::flag(values, t.when, false)) continue;
        double rate = 1;
        for (const json& f : t.factors) rate *= f.is_number() ? f.get<double>() : read::real(values, f.get<std::string>(), 0);
        if (!t.cap_kbps.empty()) {
            // With a bit-rate cap the encoder stays near it; twice covers rate control's overshoot.
            const int64_t kbps = read::integer(values, t.cap_kbps, 0);
            if (kbps > 0) rate = std::min(rate, static_cast<double>(kbps) * 1000 / 8 * 2);
        }
        total += rate;
    }
    return total;
}

}  // namespace pilogger

#include "ndjson.hpp"

namespace pilogger {

bool nests_deeper_than(std::string_view text, size_t limit) {
    size_t depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit) return true;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return false;
}

Message parse_message(std::string_view line) {
    Message m;
    // nlohmann's parser takes a NUL byte for the end of the input, so whatever followed one was
    // ignored. A raw NUL is never valid JSON (in a string it must be escaped).
    if (size_t nul = line.find('\0'); nul != std::string_view::npos) {
        m.problem = "not valid JSON (a NUL byte at offset " + std::to_string(nul) + ")";
        return m;
    }
    if (nests_deeper_than(line, kMaxNestingDepth)) {
        m.problem = "nested deeper than " + std::to_string(kMaxNestingDepth) + " levels";
        return m;
    }
    json body = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) {
        m.problem = "not valid JSON";
        return m;
    }
    if (!body.is_object()) {
        m.problem = std::string("expected a JSON object, got ") + body.type_name();
        return m;
    }
    // Ids are 64-bit signed: a larger one would come back as another number.
    if (auto it = body.find("id"); it != body.end()) {
        bool fits = it->is_number_integer() &&
                    !(it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX));
        if (fits) {
            m.id = it->get<int64_t>();
        } else if (!it->is_null()) {
            m.problem = "\"id\" must be an integer";
            return m;
        }
    }
    if (auto it = body.find("cmd"); it != body.end()) {
        if (!it->is_string()) {
            m.problem = "\"cmd\" must be a string";
        } else if (!m.id) {
            m.problem = "command without an integer \"id\"";
        } else if (auto args = body.find("args"); args != body.end() && !args->is_object()) {
            m.problem = "\"args\" must be an object";
        } else {
            m.kind = Message::Kind::Command;
            m.name = it->get<std::string>();
        }
    } else if (auto ok = body.find("ok"); ok != body.end()) {
        if (!ok->is_boolean()) {
            m.problem = "\"ok\" must be true or false";
        } else {
            m.kind = Message::Kind::Reply;
        }
    } else if (auto ev = body.find("event"); ev != body.end()) {
        if (!ev->is_string()) {
            m.problem = "\"event\" must be a string";
        } else {
            m.kind = Message::Kind::Event;
            m.name = ev->get<std::string>();
        }
    } else {
        m.problem = "object has none of \"cmd\", \"ok\", \"event\"";
    }
    // Kept for Invalid too: a broken reply is still recognisably a reply.
    m.body = std::move(body);
    return m;
}

namespace {
json id_value(std::optional<int64_t> id) { return id ? json(*id) : json(nullptr); }
// Invalid UTF-8 from a module or a client must not throw while we answer it.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }
}  // namespace

std::string make_command(int64_t id, std::string_view cmd, const json& args) {
    return dump(json{{"id", id}, {"cmd", cmd}, {"args", args}});
}

std::string make_ok(std::optional<int64_t> id, const json& result) {
    return dump(json{{"id", id_value(id)}, {"ok", true}, {"result", result}});
}

std::string make_error(std::optional<int64_t> id, std::string_view code, std::string_view message) {
    return dump(json{{"id", id_value(id)},
                     {"ok", false},
                     {"error", {{"code", code}, {"message", message}}}});
}

std::string make_event(std::string_view event, json fields) {
    if (!fields.is_object()) fields = json{{"data", std::move(fields)}};
    json out = json::object();
    out["event"] = event;
    for (auto& [k, v] : fields.items()) out[k] = std::move(v);
    return dump(out);
}

}  // namespace pilogger

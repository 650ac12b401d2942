#include "ndjson.hpp"

namespace pilogger {

namespace {
constexpr size_t kKeptCapacityBytes = 4 * 1024;   // a partial line's buffer kept between lines
}  // namespace

size_t LineFramer::feed(std::string_view chunk, const LineCallback& on_line, const OverflowCallback& on_overflow,
                        size_t max_lines) {
    const size_t total = chunk.size();
    size_t delivered = 0;
    while (!chunk.empty()) {
        if (delivered >= max_lines) return total - chunk.size();
        size_t newline = chunk.find('\n');
        std::string_view piece = chunk.substr(0, newline);
        bool complete = newline != std::string_view::npos;
        chunk = complete ? chunk.substr(newline + 1) : std::string_view{};

        if (discarding_) {
            discarded_bytes_ += piece.size() + (complete ? 1 : 0);
            if (complete) {
                discarding_ = false;
                ++overflowed_lines_;
                ++delivered;
                if (on_overflow) on_overflow(discarded_bytes_);
                discarded_bytes_ = 0;
            }
            continue;
        }
        if (partial_.size() + piece.size() > max_line_bytes_) {
            discarding_ = true;
            discarded_bytes_ = partial_.size() + piece.size() + (complete ? 1 : 0);
            partial_.clear();
            partial_.shrink_to_fit();
            if (complete) {
                discarding_ = false;
                ++overflowed_lines_;
                ++delivered;
                if (on_overflow) on_overflow(discarded_bytes_);
                discarded_bytes_ = 0;
            }
            continue;
        }
        if (!complete) {
            partial_.append(piece);
            continue;
        }
        std::string_view line = piece;
        if (!partial_.empty()) {
            partial_.append(piece);
            line = partial_;
        }
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (!line.empty()) {
            ++delivered;
            on_line(line);
        }
        partial_.clear();
        // One long line must not cost its peer that much memory for as long as it stays connected.
        if (partial_.capacity() > kKeptCapacityBytes) partial_.shrink_to_fit();
    }
    return total;
}

void LineFramer::finish(const LineCallback& on_line, const OverflowCallback& on_overflow) {
    if (discarding_) {
        discarding_ = false;
        ++overflowed_lines_;
        if (on_overflow) on_overflow(discarded_bytes_);
        discarded_bytes_ = 0;
        return;
    }
    std::string line = std::move(partial_);
    partial_ = std::string();
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) on_line(line);
}

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

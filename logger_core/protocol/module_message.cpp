#include "module_message.hpp"

#include "json_read.hpp"

#include <algorithm>
#include <array>

namespace pilogger {

namespace {

using Need = FieldReader::Need;

constexpr std::array<std::string_view, 7> kModuleEvents = {"hello", "state", "stats", "warning",
                                                           "error", "log",   "device"};

ModuleLine invalid(std::string problem, std::string field = {}, std::optional<int64_t> id = std::nullopt) {
    ModuleLine out;
    out.problem = std::move(problem);
    out.field = std::move(field);
    out.id = id;
    return out;
}

ModuleLine invalid(const FieldReader& fields, std::string_view what, std::optional<int64_t> id = std::nullopt) {
    return invalid(std::string(what) + ": " + fields.problem(), fields.field(), id);
}

// Cuts text to at most max bytes without splitting a UTF-8 sequence.
std::string cut(std::string text, size_t max) {
    if (text.size() <= max) return text;
    size_t end = max;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    text.resize(end);
    return text + "...";
}

ModuleLine read_hello(const json& body) {
    FieldReader f(body);
    ModuleLine out;
    out.kind = ModuleLine::Kind::Hello;
    auto protocol = f.integer("protocol", Need::Required);
    auto version = f.text("version", Need::Optional, kMaxModuleVersionBytes);
    auto type = f.text("type", Need::Optional, kMaxCapabilityBytes);
    const json* caps = f.array("capabilities");
    if (!f.ok()) return invalid(f, "hello");
    out.hello.protocol = *protocol;
    out.hello.version = version.value_or("");
    out.hello.type = type.value_or("");
    if (caps != nullptr) {
        if (caps->size() > kMaxCapabilities) {
            return invalid("hello: more than " + std::to_string(kMaxCapabilities) + " capabilities", "capabilities");
        }
        for (const auto& c : *caps) {
            if (!c.is_string() || c.get_ref<const std::string&>().size() > kMaxCapabilityBytes) {
                return invalid("hello: every capability must be a string of at most " +
                                   std::to_string(kMaxCapabilityBytes) + " bytes",
                               "capabilities");
            }
            out.hello.capabilities.push_back(c.get<std::string>());
        }
    }
    return out;
}

ModuleLine read_reply(const json& body, int64_t id) {
    FieldReader f(body);
    ModuleLine out;
    out.kind = ModuleLine::Kind::Reply;
    out.reply.id = id;
    out.reply.ok = body["ok"].get<bool>();  // parse_message checked it is a boolean
    if (out.reply.ok) {
        const json* result = f.object("result");
        if (!f.ok()) return invalid(f, "reply", id);
        if (result != nullptr) out.reply.result = *result;
        return out;
    }
    const json* error = f.object("error");
    if (!f.ok()) return invalid(f, "reply", id);
    // FieldReader keeps a reference: both arms must be lvalues, or the ?: makes a temporary copy
    // that is gone before the fields are read.
    static const json kNoError = json::object();
    FieldReader e(error != nullptr ? *error : kNoError);
    auto code = e.text("code", Need::Optional, 64);
    auto message = e.text("message", Need::Optional, 1024 * 1024);
    if (!e.ok()) return invalid("reply: error." + e.problem(), "error." + e.field(), id);
    out.reply.code = code.value_or("error");
    out.reply.message = cut(message.value_or(""), kMaxModuleMessageBytes);
    return out;
}

// Depth of nested arrays/objects (the line's nesting is bounded, so this recursion is too).
size_t depth_of(const json& j) {
    size_t deepest = 0;
    if (j.is_structured()) {
        for (const auto& child : j) deepest = std::max(deepest, depth_of(child));
        return deepest + 1;
    }
    return 0;
}

ModuleLine read_event(const std::string& name, json body) {
    // Forwarded inside status and events, where clients parse it with the same nesting bound.
    if (depth_of(body) > kMaxModuleEventDepth) {
        return invalid(name + " event nested deeper than " + std::to_string(kMaxModuleEventDepth) + " levels");
    }
    FieldReader f(body);
    ModuleLine out;
    out.kind = ModuleLine::Kind::Event;
    out.event.name = name;
    if (name == "state") {
        auto state = f.text("state", Need::Required, 64);
        if (!f.ok()) return invalid(f, "state event");
        out.event.state = *state;
    } else if (name == "warning" || name == "error" || name == "log") {
        auto message = f.text("message", Need::Required, kDefaultMaxLineBytes);
        if (!f.ok()) return invalid(f, name + " event");
        out.event.message = cut(*message, kMaxModuleMessageBytes);
        body["message"] = out.event.message;
    } else if (name == "stats") {
        // Shown by every client and kept as the last heartbeat: bounded.
        if (body.dump(-1, ' ', false, json::error_handler_t::replace).size() > kMaxStatsBytes) {
            return invalid("stats event larger than " + std::to_string(kMaxStatsBytes) + " bytes");
        }
    }
    // "module" and "event" are the supervisor's to set when it forwards the event.
    out.event.body = std::move(body);
    return out;
}

}  // namespace

bool is_module_event_name(std::string_view name) {
    for (auto known : kModuleEvents) {
        if (known == name) return true;
    }
    return false;
}

ModuleLine read_module_line(std::string_view line) {
    Message m = parse_message(line);
    switch (m.kind) {
        case Message::Kind::Invalid:
            // {"id":N,"ok":"yes"}: a broken answer to command N, which must not wait for its timeout.
            if (m.id && m.body.is_object() && m.body.contains("ok")) return invalid("reply: " + m.problem, "ok", m.id);
            return invalid(m.problem);
        case Message::Kind::Command: return invalid("a module sends no commands");
        case Message::Kind::Reply:
            if (!m.id) return invalid("a reply without an integer \"id\"", "id");
            return read_reply(m.body, *m.id);
        case Message::Kind::Event:
            if (!is_module_event_name(m.name)) {
                return invalid("unknown event \"" + cut(m.name, 64) + "\"", "event");
            }
            if (m.name == "hello") return read_hello(m.body);
            return read_event(m.name, std::move(m.body));
    }
    return invalid("unreadable line");
}

}  // namespace pilogger

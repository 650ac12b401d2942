#include "psync.hpp"

#include <cstdio>
#include <map>
#include <vector>

namespace pilogger::psync {

// ---- LineSplitter ----

void LineSplitter::feed(std::string_view chunk, const LineCallback& on_line) {
    for (char c : chunk) {
        if (c == '\n') {
            if (!skipping_ && !partial_.empty()) on_line(partial_);
            skipping_ = false;
            partial_.clear();
        } else if (c == '\r' || skipping_) {
            continue;
        } else if (partial_.size() >= max_line_bytes_) {
            // Never buffer past the bound: drop up to the next newline. Counted now, so a line
            // that never ends is counted too.
            skipping_ = true;
            ++overlong_lines_;
            partial_.clear();
        } else {
            partial_.push_back(c);
        }
    }
}

bool LineSplitter::prompt_pending() const {
    return !skipping_ && partial_.size() >= 4 && partial_.compare(partial_.size() - 4, 4, ">>> ") == 0;
}

void LineSplitter::reset() {
    partial_.clear();
    skipping_ = false;
}

// ---- parsing ----

namespace {

bool parse_uint(std::string_view s, uint64_t max, uint64_t* out) {
    if (s.empty() || s.size() > 20) return false;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        uint64_t digit = static_cast<uint64_t>(c - '0');
        if (v > (max - digit) / 10) return false;
        v = v * 10 + digit;
    }
    *out = v;
    return true;
}

std::vector<std::string_view> split(std::string_view s) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && s[i] == ' ') ++i;
        size_t start = i;
        while (i < s.size() && s[i] != ' ') ++i;
        if (i > start) out.push_back(s.substr(start, i - start));
    }
    return out;
}

Kind kind_of(std::string_view word) {
    if (word == "HELLO") return Kind::Hello;
    if (word == "PONG") return Kind::Pong;
    if (word == "LED") return Kind::Led;
    if (word == "HB") return Kind::Heartbeat;
    if (word == "ACK") return Kind::Ack;
    if (word == "ERR") return Kind::Err;
    if (word == "LOG") return Kind::Log;
    return Kind::Unknown;
}

bool valid_word(std::string_view word) {
    for (char c : word) {
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '?')) return false;
    }
    return !word.empty() && word.front() >= 'A' && word.front() <= 'Z';
}

bool valid_id(std::string_view id) { return !id.empty() && id.size() <= kMaxIdChars; }

}  // namespace

std::optional<Line> parse_line(std::string_view text, std::string* why) {
    // Says what is wrong (for the Pico's events.csv row) and refuses the line.
    auto fail = [why](std::string problem) -> std::optional<Line> {
        if (why != nullptr) *why = std::move(problem);
        return std::nullopt;
    };
    if (text.empty()) return fail("an empty line");
    for (char c : text) {
        if (c < 32 || c > 126) {
            char buf[64];
            std::snprintf(buf, sizeof buf, "a byte outside printable ASCII (0x%02x)", static_cast<unsigned char>(c));
            return fail(buf);
        }
    }
    std::vector<std::string_view> tokens = split(text);
    if (tokens.empty()) return fail("an empty line (spaces only)");
    if (!valid_word(tokens[0])) return fail("not a PSYNC/1 message word");
    Line line;
    line.word = std::string(tokens[0]);
    line.kind = kind_of(tokens[0]);
    const std::string w = line.word + ": ";

    // Fixed fields come first; key=value tokens are options (unknown keys ignored).
    std::vector<std::string_view> pos;
    std::map<std::string_view, std::string_view> keys;
    for (size_t i = 1; i < tokens.size(); ++i) {
        size_t eq = tokens[i].find('=');
        if (line.kind != Kind::Log && eq != std::string_view::npos && eq > 0) {
            keys[tokens[i].substr(0, eq)] = tokens[i].substr(eq + 1);
        } else {
            pos.push_back(tokens[i]);
        }
    }
    auto key_uint = [&](std::string_view key, uint64_t max, uint64_t* out) {
        auto it = keys.find(key);
        return it == keys.end() || parse_uint(it->second, max, out);
    };
    auto key_text = [&](std::string_view key) {
        auto it = keys.find(key);
        return it == keys.end() ? std::string() : std::string(it->second);
    };
    auto clock = [&](size_t i, uint64_t* out) { return i < pos.size() && parse_uint(pos[i], kMaxClockUs, out); };
    const std::string bad_clock = " must be microseconds 0.." + std::to_string(kMaxClockUs);
    uint64_t v = 0;
    // Every message of PSYNC/1 starts with <seq> <t> except PONG (<seq> <nonce> ...).
    if (pos.size() >= 1 && parse_uint(pos[0], kSeqMax, &v)) {
        line.seq = static_cast<uint32_t>(v);
        line.has_seq = line.kind != Kind::Hello;
    } else if (line.kind != Kind::Unknown) {
        return fail(w + "<seq> must be a number 0..4294967295");
    }
    auto need = [&](size_t n) { return pos.size() >= n; };
    const std::string missing = w + "fields missing";

    switch (line.kind) {
        case Kind::Hello: {
            if (!clock(1, &line.t_us)) return fail(w + "<t>" + bad_clock);
            uint64_t proto = 0;
            if (!key_uint("proto", 1000000, &proto)) return fail(w + "proto= must be a number");
            line.proto = static_cast<int>(proto);
            line.fw = key_text("fw");
            line.board = key_text("board");
            line.boot = key_text("boot");
            line.uid = key_text("uid");
            // The boot id is what tells one boot (one clock) from the next.
            if (line.proto < 1) return fail(w + "proto= missing or 0");
            if (line.boot.empty()) return fail(w + "boot= missing or empty");
            break;
        }
        case Kind::Pong:
            if (!need(4)) return fail(missing);
            if (!valid_id(pos[1])) return fail(w + "<nonce> must be 1..16 characters");
            if (!clock(2, &line.t_rx_us)) return fail(w + "<t_rx>" + bad_clock);
            if (!clock(3, &line.t_tx_us)) return fail(w + "<t_tx>" + bad_clock);
            // The Pico reads the PING before it answers, and answers within seconds.
            if (line.t_tx_us < line.t_rx_us) return fail(w + "<t_tx> before <t_rx>");
            if (line.t_tx_us - line.t_rx_us > kMaxPongHoldUs) return fail(w + "<t_tx> more than 10 s after <t_rx>");
            line.nonce = std::string(pos[1]);
            break;
        case Kind::Led: {
            uint64_t ch = 0;
            uint64_t level = 0;
            if (!need(4)) return fail(missing);
            if (!clock(1, &line.t_us)) return fail(w + "<t>" + bad_clock);
            if (!parse_uint(pos[2], 255, &ch)) return fail(w + "<ch> must be 0..255");
            if (!parse_uint(pos[3], 65535, &level)) return fail(w + "<level> must be 0..65535");
            line.channel = static_cast<int>(ch);
            line.level = static_cast<int>(level);
            line.cmd_id = key_text("id");
            break;
        }
        case Kind::Heartbeat: {
            uint64_t up = 0;
            uint64_t mask = 0;
            uint64_t drop = 0;
            if (!need(2)) return fail(missing);
            if (!clock(1, &line.t_us)) return fail(w + "<t>" + bad_clock);
            if (!key_uint("up", INT64_MAX, &up)) return fail(w + "up= must be whole seconds");
            if (!key_uint("led", UINT32_MAX, &mask)) return fail(w + "led= must be a 32-bit mask");
            if (!key_uint("drop", INT64_MAX, &drop)) return fail(w + "drop= must be a count");
            line.up_s = static_cast<int64_t>(up);
            line.led_mask = static_cast<uint32_t>(mask);
            line.drop = static_cast<int64_t>(drop);
            break;
        }
        case Kind::Ack:
            if (!need(3)) return fail(missing);
            if (!clock(1, &line.t_us)) return fail(w + "<t>" + bad_clock);
            line.cmd_id = std::string(pos[2]);
            break;
        case Kind::Err: {
            uint64_t code = 0;
            if (!need(5)) return fail(missing);
            if (!clock(1, &line.t_us)) return fail(w + "<t>" + bad_clock);
            if (!parse_uint(pos[3], 1000, &code)) return fail(w + "<code> must be 0..1000");
            line.cmd_id = std::string(pos[2]);
            line.code = static_cast<int>(code);
            line.err_word = std::string(pos[4]);
            break;
        }
        case Kind::Log: {
            if (!need(3)) return fail(missing);
            if (!clock(1, &line.t_us)) return fail(w + "<t>" + bad_clock);
            line.log_level = std::string(pos[2]);
            // The text is the rest of the line after "LOG <seq> <t> <level> ", spaces and all
            // (tokens are views into text, so the level's position is known).
            size_t text_start = static_cast<size_t>(pos[2].data() - text.data()) + pos[2].size() + 1;
            if (text_start < text.size()) line.text = std::string(text.substr(text_start));
            break;
        }
        case Kind::Unknown:
            if (need(2)) parse_uint(pos[1], kMaxClockUs, &line.t_us);
            break;
    }
    return line;
}

// ---- SeqTracker ----

SeqTracker::Result SeqTracker::add(uint32_t seq, uint64_t* lost) {
    if (lost != nullptr) *lost = 0;
    if (!last_) {
        last_ = seq;
        return Result::First;
    }
    uint32_t prev = *last_;
    // After kSeqMax the counter goes on at 1 (0 belongs to HELLO).
    uint32_t expected = prev == kSeqMax ? 1 : prev + 1;
    if (seq == expected) {
        last_ = seq;
        return Result::InOrder;
    }
    if (seq > prev) {
        if (lost != nullptr) *lost = seq - prev - 1;
        last_ = seq;
        return Result::Gap;
    }
    // A smaller number is either a wrap with lines lost around it, or a line out of place. A
    // wrap can only come after the counter got close to the top.
    constexpr uint32_t kWrapSlack = 1u << 20;
    // (0 is never a line's number after a wrap: it belongs to HELLO.)
    if (prev > kSeqMax - kWrapSlack && seq >= 1 && seq < kWrapSlack) {
        if (lost != nullptr) *lost = static_cast<uint64_t>(kSeqMax - prev) + seq - 1;
        last_ = seq;
        return Result::Gap;
    }
    return Result::Back;
}

// ---- commands ----

std::string hello_query() { return "HELLO?\n"; }

std::string ping(std::string_view nonce) { return "PING " + std::string(nonce) + "\n"; }

std::string led(std::string_view cmd_id, int channel, int level) {
    return "LED " + std::string(cmd_id) + " " + std::to_string(channel) + " " + std::to_string(level) + "\n";
}

std::string code(std::string_view cmd_id, int channel, std::string_view hexbits, int bit_ms,
                 std::optional<uint64_t> at_pico_us) {
    std::string out = "CODE " + std::string(cmd_id) + " " + std::to_string(channel) + " " + std::string(hexbits) +
                      " " + std::to_string(bit_ms);
    if (at_pico_us) out += " at=" + std::to_string(*at_pico_us);
    return out + "\n";
}

std::string stop(std::string_view cmd_id, int channel) {
    return "STOP " + std::string(cmd_id) + " " + std::to_string(channel) + "\n";
}

std::string trial_code_hex(int trial) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "E%04XA", static_cast<unsigned>(trial) & 0xFFFFu);
    return buf;
}

}  // namespace pilogger::psync

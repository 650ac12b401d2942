// SDP (RFC 4566) subset for RTSP DESCRIBE answers, plus base64 for sprop-parameter-sets (RFC 6184).
#include "sdp.hpp"

#include <array>
#include <charconv>

namespace pilogger::neon {
namespace {

std::string_view trim(std::string_view s) {
    const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

// Splits off the text up to the first `separator` (all of it when absent) and returns it.
std::string_view take_until(std::string_view& rest, char separator) {
    const size_t at = rest.find(separator);
    std::string_view head = rest.substr(0, at);
    rest = at == std::string_view::npos ? std::string_view{} : rest.substr(at + 1);
    return head;
}

template <typename T>
bool parse_number(std::string_view text, T& value) {
    text = trim(text);
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    return ec == std::errc{} && end == text.data() + text.size();
}

std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

// "m=video 0 RTP/AVP 96": media type, port, protocol, formats.
SdpMedia parse_media_line(std::string_view value) {
    SdpMedia m;
    m.media = std::string(take_until(value, ' '));
    take_until(value, ' ');  // port
    take_until(value, ' ');  // protocol
    int pt = -1;
    // RTP payload types are 7 bits (RFC 3550 5.1); anything else matches no packet.
    if (parse_number(take_until(value, ' '), pt) && pt >= 0 && pt <= 127) m.payload_type = pt;
    return m;
}

// "96 H264/90000[/channels]", only for the media's own payload type.
void parse_rtpmap(std::string_view value, SdpMedia& m) {
    int pt = -1;
    if (m.payload_type < 0 || !parse_number(take_until(value, ' '), pt) || pt != m.payload_type) return;
    value = trim(value);
    m.encoding = std::string(take_until(value, '/'));
    uint32_t rate = 0;
    if (parse_number(take_until(value, '/'), rate)) m.clock_rate = rate;
}

// "96 packetization-mode=1; sprop-parameter-sets=Z0Lg,aM4=": keys lowercased (media type
// parameters are case-insensitive), values kept as sent (base64 padding contains '=').
void parse_fmtp(std::string_view value, SdpMedia& m) {
    int pt = -1;
    if (m.payload_type < 0 || !parse_number(take_until(value, ' '), pt) || pt != m.payload_type) return;
    while (!value.empty()) {
        std::string_view param = trim(take_until(value, ';'));
        if (param.empty()) continue;
        std::string_view key = trim(take_until(param, '='));
        m.fmtp[lowercase(key)] = std::string(trim(param));
    }
}

constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> make_base64_values() {
    std::array<int8_t, 256> values{};
    for (auto& v : values) v = -1;
    for (size_t i = 0; i < kBase64Alphabet.size(); ++i)
        values[static_cast<uint8_t>(kBase64Alphabet[i])] = static_cast<int8_t>(i);
    return values;
}
constexpr auto kBase64Values = make_base64_values();

}  // namespace

Sdp parse_sdp(std::string_view text) {
    Sdp sdp;
    SdpMedia* current = nullptr;
    while (!text.empty()) {
        std::string_view line = take_until(text, '\n');
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.size() < 2 || line[1] != '=') continue;
        const char type = line[0];
        std::string_view value = line.substr(2);
        if (type == 'm') {
            sdp.media.push_back(parse_media_line(value));
            current = &sdp.media.back();
            continue;
        }
        if (type != 'a') continue;
        std::string_view name = take_until(value, ':');
        if (name == "control") {
            (current ? current->control : sdp.session_control) = std::string(trim(value));
        } else if (current && name == "rtpmap") {
            parse_rtpmap(value, *current);
        } else if (current && name == "fmtp") {
            parse_fmtp(value, *current);
        }
    }
    return sdp;
}

std::string resolve_control_url(const std::string& base_url, const std::string& control) {
    if (control.empty() || control == "*") return base_url;
    if (control.find("://") != std::string::npos) return control;  // absolute (rtsp://, rtsps://)
    std::string_view base = base_url;
    std::string_view relative = control;
    while (!base.empty() && base.back() == '/') base.remove_suffix(1);
    while (!relative.empty() && relative.front() == '/') relative.remove_prefix(1);
    std::string url(base);
    url += '/';
    url += relative;
    return url;
}

std::string base64_decode(std::string_view text) {
    std::string out;
    uint32_t bits = 0;
    int bit_count = 0;
    size_t symbols = 0;
    size_t padding = 0;
    for (char c : text) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        if (c == '=') {
            ++padding;
            continue;
        }
        const int8_t value = kBase64Values[static_cast<uint8_t>(c)];
        if (value < 0 || padding > 0) return {};  // not base64, or data after the padding
        bits = (bits << 6) | static_cast<uint32_t>(value);
        bit_count += 6;
        ++symbols;
        if (bit_count >= 8) {
            bit_count -= 8;
            out.push_back(static_cast<char>((bits >> bit_count) & 0xFF));
        }
    }
    // A lone symbol in the last quantum carries no whole byte; padding must complete the quantum.
    const size_t tail = symbols % 4;
    if (tail == 1) return {};
    if (padding > 0 && (padding > 2 || (tail + padding) % 4 != 0)) return {};
    return out;
}

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        const uint32_t group = (uint32_t{static_cast<uint8_t>(bytes[i])} << 16) |
                               (uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8) |
                               static_cast<uint8_t>(bytes[i + 2]);
        for (int shift = 18; shift >= 0; shift -= 6) out.push_back(kBase64Alphabet[(group >> shift) & 63]);
    }
    const size_t left = bytes.size() - i;
    if (left > 0) {
        uint32_t group = uint32_t{static_cast<uint8_t>(bytes[i])} << 16;
        if (left == 2) group |= uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8;
        out.push_back(kBase64Alphabet[(group >> 18) & 63]);
        out.push_back(kBase64Alphabet[(group >> 12) & 63]);
        out.push_back(left == 2 ? kBase64Alphabet[(group >> 6) & 63] : '=');
        out.push_back('=');
    }
    return out;
}

std::string sprop_parameter_sets_annexb(const std::map<std::string, std::string>& fmtp) {
    const auto it = fmtp.find("sprop-parameter-sets");
    if (it == fmtp.end()) return {};
    std::string out;
    std::string_view rest = it->second;
    while (!rest.empty()) {
        std::string_view encoded = trim(take_until(rest, ','));
        if (encoded.empty()) continue;
        const std::string nal = base64_decode(encoded);
        if (nal.empty()) return {};  // one bad set makes the whole list untrustworthy
        out.append("\x00\x00\x00\x01", 4);
        out += nal;
    }
    return out;
}

}  // namespace pilogger::neon

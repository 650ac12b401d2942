#include "http_message.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace pilogger::neon {

namespace {
constexpr size_t kMaxHeadBytes = 64 * 1024;

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

template <typename T>
bool parse_number(std::string_view text, T& out, int base = 10) {
    text = trim(text);
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base);
    return ec == std::errc() && end == text.data() + text.size();
}
}  // namespace

bool CaseInsensitiveLess::operator()(const std::string& a, const std::string& b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
        return std::tolower(static_cast<unsigned char>(x)) < std::tolower(static_cast<unsigned char>(y));
    });
}

std::string Response::header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
}

bool ResponseParser::parse_head(std::string_view head, Response& out) {
    size_t line_end = head.find('\n');
    std::string_view status_line = trim(head.substr(0, line_end));
    size_t first_space = status_line.find(' ');
    if (first_space == std::string_view::npos) return false;
    out.protocol = std::string(status_line.substr(0, first_space));
    if (out.protocol.rfind("HTTP/", 0) != 0 && out.protocol.rfind("RTSP/", 0) != 0) return false;
    std::string_view rest = status_line.substr(first_space + 1);
    size_t second_space = rest.find(' ');
    if (!parse_number(rest.substr(0, second_space), out.status) || out.status < 100 || out.status > 999) {
        return false;
    }
    out.reason = second_space == std::string_view::npos ? "" : std::string(trim(rest.substr(second_space + 1)));
    while (line_end != std::string_view::npos) {
        size_t start = line_end + 1;
        line_end = head.find('\n', start);
        std::string_view line = trim(head.substr(start, line_end == std::string_view::npos ? head.npos : line_end - start));
        if (line.empty()) continue;
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) return false;
        // A header needs a name; "\r: x" trims to none.
        std::string_view name = trim(line.substr(0, colon));
        if (name.empty()) return false;
        out.headers[std::string(name)] = std::string(trim(line.substr(colon + 1)));
    }
    return true;
}

void ResponseParser::feed(std::string_view bytes) {
    if (!error_.empty()) return;
    buffer_.append(bytes);
}

std::optional<Response> ResponseParser::next() {
    if (!error_.empty()) return std::nullopt;
    if (!head_) {
        size_t end = buffer_.find("\r\n\r\n");
        size_t separator = 4;
        if (end == std::string::npos) {
            end = buffer_.find("\n\n");
            separator = 2;
        }
        if (end == std::string::npos) {
            if (buffer_.size() > kMaxHeadBytes) error_ = "response headers longer than 64 KiB";
            return std::nullopt;
        }
        Response response;
        if (!parse_head(std::string_view(buffer_).substr(0, end), response)) {
            error_ = "malformed response head: " + buffer_.substr(0, std::min<size_t>(end, 80));
            return std::nullopt;
        }
        buffer_.erase(0, end + separator);
        chunked_ = lower(response.header("Transfer-Encoding")).find("chunked") != std::string::npos;
        body_length_ = 0;
        until_close_ = false;
        std::string length = response.header("Content-Length");
        if (!length.empty() && !parse_number(length, body_length_)) {
            error_ = "bad Content-Length: " + length;
            return std::nullopt;
        }
        // An HTTP response without length or chunking runs until the server closes; RTSP and
        // 1xx/204/304 replies have no body then.
        bool no_body = response.status < 200 || response.status == 204 || response.status == 304 ||
                       response.protocol.rfind("RTSP/", 0) == 0;
        if (length.empty() && !chunked_ && !no_body) until_close_ = true;
        if (body_length_ > max_body_) {
            error_ = "response body of " + length + " bytes is over the limit";
            return std::nullopt;
        }
        head_ = std::move(response);
    }
    if (until_close_) {
        if (buffer_.size() > max_body_) error_ = "response body over the limit";
        return std::nullopt;
    }
    if (chunked_) {
        // Decode as far as complete chunks go; keep the raw rest.
        std::string body;
        size_t pos = 0;
        while (true) {
            size_t line_end = buffer_.find("\r\n", pos);
            if (line_end == std::string::npos) return std::nullopt;
            std::string_view size_text = std::string_view(buffer_).substr(pos, line_end - pos);
            size_text = size_text.substr(0, size_text.find(';'));
            size_t chunk = 0;
            if (!parse_number(size_text, chunk, 16)) {
                error_ = "bad chunk size";
                return std::nullopt;
            }
            if (body.size() + chunk > max_body_) {
                error_ = "chunked body over the limit";
                return std::nullopt;
            }
            size_t data_start = line_end + 2;
            if (chunk == 0) {
                size_t trailer_end = buffer_.find("\r\n", data_start);
                if (trailer_end == std::string::npos) return std::nullopt;
                buffer_.erase(0, trailer_end + 2);
                break;
            }
            if (buffer_.size() < data_start + chunk + 2) return std::nullopt;
            body.append(buffer_, data_start, chunk);
            pos = data_start + chunk + 2;
        }
        Response done = std::move(*head_);
        head_.reset();
        done.body = std::move(body);
        return done;
    }
    if (buffer_.size() < body_length_) return std::nullopt;
    Response done = std::move(*head_);
    head_.reset();
    done.body = buffer_.substr(0, body_length_);
    buffer_.erase(0, body_length_);
    return done;
}

std::optional<Response> ResponseParser::finish_at_eof() {
    if (!head_ || !until_close_) return std::nullopt;
    Response done = std::move(*head_);
    head_.reset();
    done.body = std::move(buffer_);
    buffer_.clear();
    return done;
}

std::string ResponseParser::take_rest() {
    std::string rest = std::move(buffer_);
    buffer_.clear();
    return rest;
}

std::string format_request(std::string_view method, std::string_view target, std::string_view protocol,
                           const std::map<std::string, std::string>& headers, std::string_view body) {
    std::string out;
    out.append(method).append(" ").append(target).append(" ").append(protocol).append("\r\n");
    for (const auto& [name, value] : headers) out.append(name).append(": ").append(value).append("\r\n");
    if (!body.empty()) out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    out.append("\r\n").append(body);
    return out;
}

std::optional<Url> parse_url(std::string_view url) {
    size_t scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) return std::nullopt;
    Url out;
    out.scheme = lower(url.substr(0, scheme_end));
    std::string_view rest = url.substr(scheme_end + 3);
    size_t target_start = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, target_start);
    out.target = target_start == std::string_view::npos ? "/" : std::string(rest.substr(target_start));
    if (!out.target.empty() && out.target.front() == '?') out.target.insert(0, "/");
    if (authority.empty()) return std::nullopt;
    size_t colon = authority.rfind(':');
    bool bracketed = authority.front() == '[';
    if (colon != std::string_view::npos && (!bracketed || authority[colon - 1] == ']')) {
        if (!parse_number(authority.substr(colon + 1), out.port) || out.port <= 0 || out.port > 65535) {
            return std::nullopt;
        }
        authority = authority.substr(0, colon);
    } else {
        out.port = out.scheme == "rtsp" ? 554 : out.scheme == "https" ? 443 : 80;
    }
    if (bracketed) {
        if (authority.size() < 2 || authority.back() != ']') return std::nullopt;
        authority = authority.substr(1, authority.size() - 2);
    }
    out.host = std::string(authority);
    return out.host.empty() ? std::nullopt : std::optional<Url>(out);
}

}  // namespace pilogger::neon

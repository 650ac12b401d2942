// HTTP/1.1 and RTSP/1.0 share one message syntax (status line, headers, Content-Length body).
// This incremental parser reads responses of either from a byte stream; the REST client, the
// WebSocket handshake and the RTSP client use it. Bounded: a header block over 64 KiB or a body
// over max_body_bytes is an error, never an unbounded buffer.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pilogger::neon {

struct CaseInsensitiveLess {
    bool operator()(const std::string& a, const std::string& b) const;
};

struct Response {
    std::string protocol;          // "HTTP/1.1", "RTSP/1.0"
    int status = 0;
    std::string reason;
    std::map<std::string, std::string, CaseInsensitiveLess> headers;
    std::string body;

    std::string header(const std::string& name) const;  // "" when absent
};

class ResponseParser {
public:
    explicit ResponseParser(size_t max_body_bytes = 16u << 20) : max_body_(max_body_bytes) {}

    // Appends bytes. Complete responses are taken with next(); error() is set on malformed input.
    void feed(std::string_view bytes);
    std::optional<Response> next();
    const std::string& error() const { return error_; }
    // Bytes after the last complete response (a WebSocket's first frames after the 101 reply).
    std::string take_rest();
    // For a body without Content-Length that lasts until the connection closes (HTTP/1.0 style).
    std::optional<Response> finish_at_eof();

private:
    bool parse_head(std::string_view head, Response& out);
    size_t max_body_;
    std::string buffer_;
    std::string error_;
    std::optional<Response> head_;   // headers parsed, body pending
    size_t body_length_ = 0;
    bool chunked_ = false;
    bool until_close_ = false;
};

// "METHOD target PROTOCOL\r\nHeader: value\r\n...\r\n\r\nbody" with Content-Length when there is a body.
std::string format_request(std::string_view method, std::string_view target, std::string_view protocol,
                           const std::map<std::string, std::string>& headers, std::string_view body = {});

// Splits "http://host:port/path" / "rtsp://host:port/?q" into parts; nullopt when malformed.
struct Url {
    std::string scheme, host;
    int port = 0;
    std::string target;  // path and query, at least "/"
};
std::optional<Url> parse_url(std::string_view url);

}  // namespace pilogger::neon

// The Neon's TCP services on libuv, each non-blocking and bounded:
//   HttpClient      REST calls (GET /api/status, POST /api/event, recording start/stop)
//   WebSocketClient the status push channel (ws://<ip>:<port>/api/status)
//   TimeEchoClient  bursts of Time Echo round trips that measure the phone clock against ours
// Addresses are numeric (resolve names with uv::resolve first).
#pragma once

#include "http_message.hpp"
#include "uv.hpp"
#include "websocket.hpp"

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pilogger::neon {

class HttpClient {
public:
    // error is empty on success (any HTTP status); otherwise it says what failed and where.
    using Done = std::function<void(const Response& response, const std::string& error)>;

    HttpClient(uv::Loop& loop, std::string address, int port);
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // One connection per request (Connection: close): requests are rare and independent.
    void request(const std::string& method, const std::string& path, const std::string& json_body,
                 int timeout_ms, Done done);
    // Drops every request in flight without calling their callbacks.
    void cancel_all();

private:
    struct Pending;
    void finish(Pending* pending, const Response& response, const std::string& error);

    uv::Loop& loop_;
    std::string address_;
    int port_;
    std::list<std::unique_ptr<Pending>> pending_;
};

class WebSocketClient {
public:
    struct Callbacks {
        std::function<void()> opened;
        std::function<void(const std::string& text)> message;
        std::function<void(const std::string& why)> closed;  // once, after opened or a failed open
    };
    WebSocketClient(uv::Loop& loop, Callbacks callbacks, size_t max_message_bytes = 1u << 20);
    ~WebSocketClient();
    WebSocketClient(const WebSocketClient&) = delete;
    WebSocketClient& operator=(const WebSocketClient&) = delete;

    void open(const std::string& address, int port, const std::string& path, int timeout_ms);
    void close();  // no callback
    bool is_open() const { return state_ == State::Open; }

private:
    enum class State { Idle, Connecting, Handshake, Open, Closed };
    void on_bytes(std::string_view bytes);
    void send_frame(uint8_t opcode, std::string_view payload);
    void fail(const std::string& why);

    uv::Loop& loop_;
    Callbacks callbacks_;
    size_t max_message_;
    State state_ = State::Idle;
    std::string endpoint_;
    std::unique_ptr<uv::Tcp> tcp_;
    std::unique_ptr<uv::Timer> timeout_;
    WsReader reader_;
};

struct TimeEchoSample {
    int64_t host_unix_ms = 0;      // t1 as sent
    int64_t phone_unix_ms = 0;     // the phone's clock when it answered
    int64_t send_mono_ns = 0;
    int64_t receive_mono_ns = 0;
    int64_t rtt_ns() const { return receive_mono_ns - send_mono_ns; }
    // The phone's unix ns minus our CLOCK_MONOTONIC ns at the same instant. The phone's ms is
    // taken as truncated, so its middle is +0.5 ms.
    int64_t device_minus_mono_ns() const {
        return phone_unix_ms * 1'000'000 + 500'000 - (send_mono_ns + receive_mono_ns) / 2;
    }
    // The classic offset of the Python client: host ms minus phone ms.
    int64_t offset_ms() const;
};

// One Time Echo reply: 16 bytes, our t1 echoed (u64 big-endian ms) then the phone's unix ms. The
// phone's ms; nullopt when fewer than 16 bytes, the echo does not match sent_host_ms, or the
// phone's time is no time (before 1970 or after 2200).
std::optional<int64_t> time_echo_phone_ms(std::string_view reply, int64_t sent_host_ms);

// The estimate of a burst: the median over the quickest half of the round trips (queueing on
// the phone or the Wi-Fi only ever adds delay).
std::optional<int64_t> estimate_device_minus_mono_ns(std::vector<TimeEchoSample> samples);

class TimeEchoClient {
public:
    using Done = std::function<void(const std::vector<TimeEchoSample>& samples, const std::string& error)>;
    explicit TimeEchoClient(uv::Loop& loop);
    ~TimeEchoClient();
    TimeEchoClient(const TimeEchoClient&) = delete;
    TimeEchoClient& operator=(const TimeEchoClient&) = delete;

    // `count` round trips one after another on one connection; done with what was measured.
    void burst(const std::string& address, int port, int count, int timeout_ms, Done done);
    bool busy() const { return tcp_ != nullptr; }
    void cancel();

private:
    void send_next();
    void finish(const std::string& error);

    uv::Loop& loop_;
    std::unique_ptr<uv::Tcp> tcp_;
    std::unique_ptr<uv::Timer> timeout_;
    std::vector<TimeEchoSample> samples_;
    std::string received_;
    int remaining_ = 0;
    std::string endpoint_;
    Done done_;
};

}  // namespace pilogger::neon

#include "net_clients.hpp"

#include "clock.hpp"
#include "sdp.hpp"  // base64_encode

#include <algorithm>
#include <array>
#include <random>

namespace pilogger::neon {

namespace {
void put_u64_be(std::string& out, uint64_t value) {
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((value >> shift) & 0xff));
}

uint64_t get_u64_be(std::string_view bytes) {
    uint64_t value = 0;
    for (size_t i = 0; i < 8; ++i) value = (value << 8) | static_cast<uint8_t>(bytes[i]);
    return value;
}

std::string endpoint_text(const std::string& address, int port) {
    return (address.find(':') != std::string::npos ? "[" + address + "]" : address) + ":" + std::to_string(port);
}
}  // namespace

// ---- HttpClient ----
struct HttpClient::Pending {
    std::unique_ptr<uv::Tcp> tcp;
    std::unique_ptr<uv::Timer> timer;
    ResponseParser parser;
    std::string what;  // "GET /api/status at 127.0.0.1:8080"
    Done done;
};

HttpClient::HttpClient(uv::Loop& loop, std::string address, int port)
    : loop_(loop), address_(std::move(address)), port_(port) {}

HttpClient::~HttpClient() = default;

void HttpClient::cancel_all() { pending_.clear(); }

void HttpClient::finish(Pending* pending, const Response& response, const std::string& error) {
    auto it = std::find_if(pending_.begin(), pending_.end(), [pending](const auto& p) { return p.get() == pending; });
    if (it == pending_.end()) return;
    std::unique_ptr<Pending> owned = std::move(*it);
    pending_.erase(it);
    Done done = std::move(owned->done);
    owned.reset();  // closes the connection and the timer
    done(response, error);
}

void HttpClient::request(const std::string& method, const std::string& path, const std::string& json_body,
                         int timeout_ms, Done done) {
    auto pending = std::make_unique<Pending>();
    Pending* p = pending.get();
    p->what = method + " " + path + " at " + endpoint_text(address_, port_);
    p->done = std::move(done);
    p->tcp = std::make_unique<uv::Tcp>(loop_);
    p->timer = std::make_unique<uv::Timer>(loop_);
    pending_.push_back(std::move(pending));

    p->timer->start(static_cast<uint64_t>(timeout_ms), 0, [this, p, timeout_ms] {
        finish(p, {}, p->what + ": no answer within " + std::to_string(timeout_ms) + " ms");
    });
    std::map<std::string, std::string> headers{{"Host", endpoint_text(address_, port_)},
                                               {"Connection", "close"},
                                               {"Accept", "application/json"}};
    if (!json_body.empty()) headers["Content-Type"] = "application/json";
    std::string wire = format_request(method, path, "HTTP/1.1", headers, json_body);
    p->tcp->connect(address_, port_, [this, p, wire = std::move(wire)](int status) mutable {
        if (status < 0) {
            finish(p, {}, p->what + ": " + uv::error_text(status));
            return;
        }
        p->tcp->set_nodelay(true);
        p->tcp->start_read(
            [this, p](std::string_view chunk) {
                p->parser.feed(chunk);
                if (auto response = p->parser.next()) {
                    finish(p, *response, "");
                } else if (!p->parser.error().empty()) {
                    finish(p, {}, p->what + ": " + p->parser.error());
                }
            },
            [this, p](int end_status) {
                if (auto response = p->parser.finish_at_eof()) {
                    finish(p, *response, "");
                } else {
                    finish(p, {}, p->what + ": connection closed before a whole answer (" +
                                      uv::error_text(end_status) + ")");
                }
            });
        p->tcp->write(std::move(wire));
    });
}

// ---- WebSocketClient ----
WebSocketClient::WebSocketClient(uv::Loop& loop, Callbacks callbacks, size_t max_message_bytes)
    : loop_(loop), callbacks_(std::move(callbacks)), max_message_(max_message_bytes) {}

WebSocketClient::~WebSocketClient() = default;

void WebSocketClient::close() {
    if (state_ == State::Open && tcp_) send_frame(0x8, {});
    state_ = State::Closed;
    tcp_.reset();
    timeout_.reset();
}

void WebSocketClient::fail(const std::string& why) {
    if (state_ == State::Closed || state_ == State::Idle) return;
    state_ = State::Closed;
    tcp_.reset();
    timeout_.reset();
    if (callbacks_.closed) callbacks_.closed("websocket " + endpoint_ + ": " + why);
}

void WebSocketClient::open(const std::string& address, int port, const std::string& path, int timeout_ms) {
    close();
    state_ = State::Connecting;
    endpoint_ = endpoint_text(address, port) + path;
    reader_ = WsReader(max_message_);
    tcp_ = std::make_unique<uv::Tcp>(loop_);
    timeout_ = std::make_unique<uv::Timer>(loop_);
    timeout_->start(static_cast<uint64_t>(timeout_ms), 0, [this] { fail("no handshake answer"); });

    std::random_device random;
    std::string key_bytes;
    for (int i = 0; i < 16; ++i) key_bytes.push_back(static_cast<char>(random() & 0xff));
    std::map<std::string, std::string> headers{{"Host", endpoint_text(address, port)},
                                               {"Upgrade", "websocket"},
                                               {"Connection", "Upgrade"},
                                               {"Sec-WebSocket-Key", base64_encode(key_bytes)},
                                               {"Sec-WebSocket-Version", "13"}};
    std::string wire = format_request("GET", path, "HTTP/1.1", headers);
    tcp_->connect(address, port, [this, wire = std::move(wire)](int status) mutable {
        if (status < 0) {
            fail(uv::error_text(status));
            return;
        }
        state_ = State::Handshake;
        tcp_->start_read([this](std::string_view chunk) { on_bytes(chunk); },
                         [this](int end) { fail("connection closed (" + uv::error_text(end) + ")"); });
        tcp_->write(std::move(wire));
    });
}

void WebSocketClient::on_bytes(std::string_view bytes) {
    if (state_ != State::Handshake && state_ != State::Open) return;
    reader_.feed(bytes);
    while (state_ == State::Handshake || state_ == State::Open) {
        std::optional<WsEvent> event = reader_.next();
        if (!event) return;
        switch (event->kind) {
            case WsEvent::Kind::Open:
                state_ = State::Open;
                timeout_->stop();
                if (callbacks_.opened) callbacks_.opened();
                break;
            case WsEvent::Kind::Text:
                if (callbacks_.message) callbacks_.message(event->data);
                break;
            case WsEvent::Kind::Binary: break;
            case WsEvent::Kind::Ping: send_frame(0xA, event->data); break;
            case WsEvent::Kind::Close: fail("closed by the device"); return;
            case WsEvent::Kind::Error: fail(event->data); return;
        }
    }
}

void WebSocketClient::send_frame(uint8_t opcode, std::string_view payload) {
    if (!tcp_) return;
    // Client frames are always masked (RFC 6455 5.3).
    std::random_device random;
    std::array<uint8_t, 4> mask{};
    for (uint8_t& m : mask) m = static_cast<uint8_t>(random() & 0xff);
    tcp_->write(ws_client_frame(opcode, payload, mask));
}

// ---- Time Echo ----
std::optional<int64_t> time_echo_phone_ms(std::string_view reply, int64_t sent_host_ms) {
    if (reply.size() < 16 || static_cast<int64_t>(get_u64_be(reply)) != sent_host_ms) return std::nullopt;
    // A phone's unix time is after 1970 and before 2200; beyond, it is no time (and its ns would
    // not fit in int64).
    constexpr uint64_t kYear2200Ms = 7'258'118'400'000;
    const uint64_t phone_ms = get_u64_be(reply.substr(8));
    if (phone_ms > kYear2200Ms) return std::nullopt;
    return static_cast<int64_t>(phone_ms);
}

int64_t TimeEchoSample::offset_ms() const {
    int64_t receive_unix_ms = host_unix_ms + (rtt_ns() + 500'000) / 1'000'000;
    return (host_unix_ms + receive_unix_ms + 1) / 2 - phone_unix_ms;
}

std::optional<int64_t> estimate_device_minus_mono_ns(std::vector<TimeEchoSample> samples) {
    if (samples.empty()) return std::nullopt;
    std::sort(samples.begin(), samples.end(), [](const auto& a, const auto& b) { return a.rtt_ns() < b.rtt_ns(); });
    samples.resize((samples.size() + 1) / 2);
    std::vector<int64_t> values;
    for (const auto& s : samples) values.push_back(s.device_minus_mono_ns());
    std::sort(values.begin(), values.end());
    size_t mid = values.size() / 2;
    // The middle of two sorted values without their sum, which need not fit (the phone says any time).
    return values.size() % 2 == 1 ? values[mid] : values[mid - 1] + (values[mid] - values[mid - 1]) / 2;
}

TimeEchoClient::TimeEchoClient(uv::Loop& loop) : loop_(loop) {}
TimeEchoClient::~TimeEchoClient() = default;

void TimeEchoClient::cancel() {
    tcp_.reset();
    timeout_.reset();
    done_ = nullptr;
}

void TimeEchoClient::finish(const std::string& error) {
    tcp_.reset();
    timeout_.reset();
    Done done = std::move(done_);
    done_ = nullptr;
    if (done) done(samples_, error.empty() ? error : "time echo " + endpoint_ + ": " + error);
}

void TimeEchoClient::burst(const std::string& address, int port, int count, int timeout_ms, Done done) {
    cancel();
    done_ = std::move(done);
    endpoint_ = endpoint_text(address, port);
    samples_.clear();
    received_.clear();
    remaining_ = count;
    tcp_ = std::make_unique<uv::Tcp>(loop_);
    timeout_ = std::make_unique<uv::Timer>(loop_);
    timeout_->start(static_cast<uint64_t>(timeout_ms), 0, [this] { finish("no answer in time"); });
    tcp_->connect(address, port, [this](int status) {
        if (status < 0) {
            finish(uv::error_text(status));
            return;
        }
        tcp_->set_nodelay(true);
        tcp_->start_read(
            [this](std::string_view chunk) {
                int64_t now = mono_ns();
                received_.append(chunk);
                while (received_.size() >= 16 && !samples_.empty() && samples_.back().receive_mono_ns == 0) {
                    TimeEchoSample& sample = samples_.back();
                    std::optional<int64_t> phone_ms = time_echo_phone_ms(received_, sample.host_unix_ms);
                    if (!phone_ms) {
                        finish("the echo does not match what was sent");
                        return;
                    }
                    sample.receive_mono_ns = now;
                    sample.phone_unix_ms = *phone_ms;
                    received_.erase(0, 16);
                    if (--remaining_ <= 0) {
                        finish("");
                        return;
                    }
                    send_next();
                }
            },
            [this](int end) {
                if (!samples_.empty() && samples_.back().receive_mono_ns == 0) samples_.pop_back();
                finish("connection closed (" + uv::error_text(end) + ")");
            });
        send_next();
    });
}

void TimeEchoClient::send_next() {
    TimeEchoSample sample;
    sample.host_unix_ms = realtime_ns() / 1'000'000;
    std::string wire;
    put_u64_be(wire, static_cast<uint64_t>(sample.host_unix_ms));
    sample.send_mono_ns = mono_ns();
    samples_.push_back(sample);
    tcp_->write(std::move(wire));
}

}  // namespace pilogger::neon

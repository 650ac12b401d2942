#include "net_clients.hpp"

#include "clock.hpp"
#include "sdp.hpp"  // base64_encode

#include <algorithm>
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
    handshake_ = ResponseParser(64 * 1024);
    frames_.clear();
    message_.clear();
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
    if (state_ == State::Handshake) {
        handshake_.feed(bytes);
        auto response = handshake_.next();
        if (!response) {
            if (!handshake_.error().empty()) fail(handshake_.error());
            return;
        }
        // The accept hash only guards against caching proxies, which a phone on the LAN never
        // has behind it; the status and the Upgrade header are checked.
        if (response->status != 101) {
            fail("handshake answered " + std::to_string(response->status) + " " + response->reason);
            return;
        }
        state_ = State::Open;
        timeout_->stop();
        frames_ = handshake_.take_rest();
        if (callbacks_.opened) callbacks_.opened();
        if (state_ == State::Open) parse_frames();
        return;
    }
    if (state_ != State::Open) return;
    frames_.append(bytes);
    parse_frames();
}

void WebSocketClient::parse_frames() {
    while (state_ == State::Open && frames_.size() >= 2) {
        auto byte = [this](size_t i) { return static_cast<uint8_t>(frames_[i]); };
        bool fin = (byte(0) & 0x80) != 0;
        uint8_t opcode = byte(0) & 0x0f;
        bool masked = (byte(1) & 0x80) != 0;
        uint64_t length = byte(1) & 0x7f;
        size_t header = 2;
        if (length == 126) {
            if (frames_.size() < 4) return;
            length = (uint64_t{byte(2)} << 8) | byte(3);
            header = 4;
        } else if (length == 127) {
            if (frames_.size() < 10) return;
            length = 0;
            for (size_t i = 0; i < 8; ++i) length = (length << 8) | byte(2 + i);
            header = 10;
        }
        if (length > max_message_) {
            fail("frame of " + std::to_string(length) + " bytes is over the limit");
            return;
        }
        size_t mask_at = header;
        if (masked) header += 4;
        if (frames_.size() < header + length) return;
        std::string payload = frames_.substr(header, static_cast<size_t>(length));
        if (masked) {
            for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(payload[i] ^ frames_[mask_at + i % 4]);
        }
        frames_.erase(0, header + static_cast<size_t>(length));

        if (opcode == 0x8) {
            fail("closed by the device");
            return;
        }
        if (opcode == 0x9) {
            send_frame(0xA, payload);
            continue;
        }
        if (opcode == 0xA) continue;
        if (opcode == 0x1 || opcode == 0x2) {
            message_ = std::move(payload);
            message_opcode_ = opcode;
        } else if (opcode == 0x0) {
            if (message_.size() + payload.size() > max_message_) {
                fail("fragmented message over the limit");
                return;
            }
            message_ += payload;
        } else {
            fail("unknown opcode " + std::to_string(opcode));
            return;
        }
        if (fin) {
            std::string text = std::move(message_);
            message_.clear();
            if (message_opcode_ == 0x1 && callbacks_.message) callbacks_.message(text);
        }
    }
}

void WebSocketClient::send_frame(uint8_t opcode, std::string_view payload) {
    if (!tcp_) return;
    // Client frames are always masked (RFC 6455 5.3).
    std::string frame;
    frame.push_back(static_cast<char>(0x80 | opcode));
    if (payload.size() < 126) {
        frame.push_back(static_cast<char>(0x80 | payload.size()));
    } else {
        frame.push_back(static_cast<char>(0x80 | 126));
        frame.push_back(static_cast<char>((payload.size() >> 8) & 0xff));
        frame.push_back(static_cast<char>(payload.size() & 0xff));
    }
    std::random_device random;
    char mask[4];
    for (char& m : mask) m = static_cast<char>(random() & 0xff);
    frame.append(mask, 4);
    for (size_t i = 0; i < payload.size(); ++i) frame.push_back(static_cast<char>(payload[i] ^ mask[i % 4]));
    tcp_->write(std::move(frame));
}

// ---- Time Echo ----
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
    return values.size() % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
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
                    if (static_cast<int64_t>(get_u64_be(received_)) != sample.host_unix_ms) {
                        finish("the echo does not match what was sent");
                        return;
                    }
                    sample.receive_mono_ns = now;
                    sample.phone_unix_ms = static_cast<int64_t>(get_u64_be(std::string_view(received_).substr(8)));
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

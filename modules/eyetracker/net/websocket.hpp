// The client side of a WebSocket (RFC 6455) as bytes in, events out: the handshake answer, then
// the server's frames. Pure code: WebSocketClient (net_clients.hpp) owns the socket and answers
// pings; the fuzz target and the tests drive this directly.
//
// Bounded: the handshake answer is held to 64 KiB, a message (one frame or a fragmented one) to
// max_message_bytes. Protocol errors end the stream with an Error event naming what was wrong:
// a frame over the bound, reserved bits set (no extension is negotiated), an unknown opcode, a
// control frame that is fragmented or carries more than 125 bytes, a continuation frame with no
// message open, a new message while a fragmented one is still open.
#pragma once

#include "http_message.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pilogger::neon {

struct WsEvent {
    enum class Kind {
        Open,    // the server answered 101: frames follow
        Text,    // a whole text message (data)
        Binary,  // a whole binary message (data)
        Ping,    // data is the payload to send back in a pong
        Close,   // the server closed (data: its status code and reason, as sent)
        Error,   // the handshake or a frame was wrong (data says what); nothing follows
    };
    Kind kind;
    std::string data;
};

class WsReader {
public:
    explicit WsReader(size_t max_message_bytes = 1u << 20) : max_message_(max_message_bytes) {}

    void feed(std::string_view bytes);
    // The next event, in order; nullopt when more bytes are needed or after Close or Error.
    std::optional<WsEvent> next();
    bool open() const { return state_ == State::Open; }
    bool ended() const { return state_ == State::Ended; }

private:
    enum class State { Handshake, Open, Ended };
    std::optional<WsEvent> end(WsEvent::Kind kind, std::string data);

    size_t max_message_;
    State state_ = State::Handshake;
    ResponseParser handshake_{64 * 1024};
    std::string frames_;
    std::string message_;
    uint8_t message_opcode_ = 0;  // 1 or 2 while a fragmented message is open, else 0
};

// One masked client frame (RFC 6455 5.2/5.3), FIN set, with any payload length.
std::string ws_client_frame(uint8_t opcode, std::string_view payload, const std::array<uint8_t, 4>& mask);

}  // namespace pilogger::neon

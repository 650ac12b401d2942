#include "websocket.hpp"

namespace pilogger::neon {

namespace {
constexpr uint8_t kContinuation = 0x0;
constexpr uint8_t kText = 0x1;
constexpr uint8_t kBinary = 0x2;
constexpr uint8_t kClose = 0x8;
constexpr uint8_t kPing = 0x9;
constexpr uint8_t kPong = 0xA;
constexpr size_t kMaxControlPayload = 125;  // RFC 6455 5.5
}  // namespace

void WsReader::feed(std::string_view bytes) {
    if (state_ == State::Handshake) {
        handshake_.feed(bytes);
    } else if (state_ == State::Open) {
        frames_.append(bytes);
    }
}

std::optional<WsEvent> WsReader::end(WsEvent::Kind kind, std::string data) {
    state_ = State::Ended;
    frames_.clear();
    message_.clear();
    return WsEvent{kind, std::move(data)};
}

std::optional<WsEvent> WsReader::next() {
    if (state_ == State::Handshake) {
        auto response = handshake_.next();
        if (!response) {
            if (!handshake_.error().empty()) return end(WsEvent::Kind::Error, handshake_.error());
            return std::nullopt;
        }
        // The accept hash only guards against caching proxies, which a phone on the LAN never
        // has behind it; the status is checked.
        if (response->status != 101) {
            return end(WsEvent::Kind::Error,
                       "handshake answered " + std::to_string(response->status) + " " + response->reason);
        }
        state_ = State::Open;
        frames_ = handshake_.take_rest();
        handshake_ = ResponseParser(0);
        return WsEvent{WsEvent::Kind::Open, {}};
    }
    while (state_ == State::Open && frames_.size() >= 2) {
        auto byte = [this](size_t i) { return static_cast<uint8_t>(frames_[i]); };
        const bool fin = (byte(0) & 0x80) != 0;
        const uint8_t reserved = byte(0) & 0x70;
        const uint8_t opcode = byte(0) & 0x0f;
        const bool masked = (byte(1) & 0x80) != 0;
        uint64_t length = byte(1) & 0x7f;
        size_t header = 2;
        if (length == 126) {
            if (frames_.size() < 4) return std::nullopt;
            length = (uint64_t{byte(2)} << 8) | byte(3);
            header = 4;
        } else if (length == 127) {
            if (frames_.size() < 10) return std::nullopt;
            length = 0;
            for (size_t i = 0; i < 8; ++i) length = (length << 8) | byte(2 + i);
            header = 10;
        }
        // Checked before waiting for the payload: an announced giant frame is never buffered.
        if (reserved != 0) return end(WsEvent::Kind::Error, "frame with reserved bits set (no extension was agreed)");
        const bool control = (opcode & 0x8) != 0;
        if (control && (!fin || length > kMaxControlPayload)) {
            return end(WsEvent::Kind::Error, "control frame (opcode " + std::to_string(opcode) +
                                                 ") fragmented or over 125 bytes");
        }
        if (length > max_message_) {
            return end(WsEvent::Kind::Error, "frame of " + std::to_string(length) + " bytes is over the limit");
        }
        const size_t mask_at = header;
        if (masked) header += 4;  // servers must not mask, but unmasking costs nothing
        if (frames_.size() < header + length) return std::nullopt;
        std::string payload = frames_.substr(header, static_cast<size_t>(length));
        if (masked) {
            for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(payload[i] ^ frames_[mask_at + i % 4]);
        }
        frames_.erase(0, header + static_cast<size_t>(length));

        switch (opcode) {
            case kClose: return end(WsEvent::Kind::Close, std::move(payload));
            case kPing: return WsEvent{WsEvent::Kind::Ping, std::move(payload)};
            case kPong: continue;
            case kText:
            case kBinary:
                if (message_opcode_ != 0) return end(WsEvent::Kind::Error, "a new message inside a fragmented one");
                message_ = std::move(payload);
                message_opcode_ = opcode;
                break;
            case kContinuation:
                if (message_opcode_ == 0) return end(WsEvent::Kind::Error, "a continuation frame with no message open");
                if (message_.size() + payload.size() > max_message_) {
                    return end(WsEvent::Kind::Error, "fragmented message over the limit");
                }
                message_ += payload;
                break;
            default: return end(WsEvent::Kind::Error, "unknown opcode " + std::to_string(opcode));
        }
        if (fin) {
            WsEvent event{message_opcode_ == kText ? WsEvent::Kind::Text : WsEvent::Kind::Binary, std::move(message_)};
            message_.clear();
            message_opcode_ = 0;
            return event;
        }
    }
    return std::nullopt;
}

std::string ws_client_frame(uint8_t opcode, std::string_view payload, const std::array<uint8_t, 4>& mask) {
    std::string frame;
    frame.push_back(static_cast<char>(0x80 | (opcode & 0x0f)));
    const uint64_t n = payload.size();
    if (n < 126) {
        frame.push_back(static_cast<char>(0x80 | n));
    } else if (n <= 0xFFFF) {
        frame.push_back(static_cast<char>(0x80 | 126));
        frame.push_back(static_cast<char>((n >> 8) & 0xff));
        frame.push_back(static_cast<char>(n & 0xff));
    } else {
        frame.push_back(static_cast<char>(0x80 | 127));
        for (int shift = 56; shift >= 0; shift -= 8) frame.push_back(static_cast<char>((n >> shift) & 0xff));
    }
    for (uint8_t m : mask) frame.push_back(static_cast<char>(m));
    for (size_t i = 0; i < payload.size(); ++i) frame.push_back(static_cast<char>(payload[i] ^ mask[i % 4]));
    return frame;
}

}  // namespace pilogger::neon

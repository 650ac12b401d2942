// Byte-building helpers shared by the RTP and H.264 depacketizer tests (big-endian fields, appends).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rtp_test {

using Bytes = std::vector<uint8_t>;

inline void put_be16(Bytes& b, uint16_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}
inline void put_be32(Bytes& b, uint32_t v) {
    put_be16(b, static_cast<uint16_t>(v >> 16));
    put_be16(b, static_cast<uint16_t>(v));
}
inline void append(Bytes& b, std::initializer_list<uint8_t> more) { b.insert(b.end(), more); }
inline void append(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }

inline std::string as_string(std::span<const uint8_t> bytes) { return std::string(bytes.begin(), bytes.end()); }
inline Bytes bytes_of(std::string_view s) { return Bytes(s.begin(), s.end()); }

}  // namespace rtp_test

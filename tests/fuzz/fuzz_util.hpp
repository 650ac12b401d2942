// Helpers shared by the fuzz targets: reading structured values off the fuzzer's bytes and
// cutting a byte stream into the chunks a socket or a serial port might deliver.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

// An invariant of the code under test; a violation is a finding like a crash (abort).
#define FUZZ_CHECK(condition)                                                                  \
    do {                                                                                       \
        if (!(condition)) {                                                                    \
            std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
            std::abort();                                                                      \
        }                                                                                      \
    } while (0)

namespace fuzz {

// Reads the input front to back. Past the end every read gives zeros or nothing, so a target
// never has to check; remaining() tells when to stop.
class Input {
public:
    Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}

    size_t remaining() const { return size_ - pos_; }
    bool empty() const { return pos_ == size_; }

    uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
    uint16_t u16() { return static_cast<uint16_t>((u8() << 8) | u8()); }
    uint32_t u32() {
        uint32_t high = u16();
        return (high << 16) | u16();
    }
    uint64_t u64() {
        uint64_t high = u32();
        return (high << 32) | u32();
    }
    bool flag() { return (u8() & 1) != 0; }

    // Up to n bytes (fewer at the end).
    std::span<const uint8_t> bytes(size_t n) {
        n = std::min(n, remaining());
        std::span<const uint8_t> out(data_ + pos_, n);
        pos_ += n;
        return out;
    }
    std::string_view text(size_t n) { return as_text(bytes(n)); }
    std::span<const uint8_t> rest() { return bytes(remaining()); }
    std::string_view rest_text() { return as_text(rest()); }
    // A length-prefixed record: u16 big-endian length, then that many bytes.
    std::span<const uint8_t> record() { return bytes(u16()); }

    static std::string_view as_text(std::span<const uint8_t> b) {
        return {reinterpret_cast<const char*>(b.data()), b.size()};
    }

private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
};

// Calls f(chunk) for consecutive pieces of `stream` that together are all of it. `plan` picks the
// cut: 0 the whole stream at once, 1 one byte at a time, 2..127 pieces of 1..16 bytes, 128..255
// pieces of 1..512 bytes, sizes from a generator seeded with `plan` (deterministic).
template <typename F>
void for_each_chunk(std::string_view stream, uint8_t plan, F&& f) {
    uint32_t state = 0x9E3779B9u ^ (uint32_t{plan} * 2654435761u);
    const size_t spread = plan < 128 ? 16 : 512;
    while (!stream.empty()) {
        size_t n = stream.size();
        if (plan == 1) {
            n = 1;
        } else if (plan != 0) {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            n = std::min<size_t>(stream.size(), 1 + state % spread);
        }
        f(stream.substr(0, n));
        stream.remove_prefix(n);
    }
}

}  // namespace fuzz

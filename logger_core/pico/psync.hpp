// PSYNC/1, the line protocol of the Pico W sync firmware (firmware/pico_w/README.md): splitting
// the serial byte stream into lines, parsing the Pico's lines, tracking their sequence numbers,
// and formatting the host's commands.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace pilogger::psync {

// HELLO is about 80 bytes and the only line allowed past 63; the firmware asks hosts to accept
// at least 128. Anything longer is noise and is dropped.
inline constexpr size_t kMaxLineBytes = 160;
// Longest cmd_id or nonce the firmware accepts.
inline constexpr size_t kMaxIdChars = 16;
inline constexpr uint32_t kSeqMax = 0xFFFFFFFFu;
// Pico clock values past this are refused: 2^53 us is 285 years since boot, and below it a time
// is exact in a double and still fits in int64 nanoseconds.
inline constexpr uint64_t kMaxClockUs = (uint64_t{1} << 53) - 1;
// A PONG's t_tx - t_rx: the Pico answers within milliseconds, within seconds if the host stalls.
inline constexpr uint64_t kMaxPongHoldUs = 10'000'000;

// Splits the serial stream on '\n', drops '\r' and empty lines, and drops (and counts, as soon as
// they pass the bound) lines longer than the bound without buffering them. Also notices the MicroPython prompt, which
// ends in ">>> " without a newline.
class LineSplitter {
public:
    using LineCallback = std::function<void(std::string_view line)>;

    explicit LineSplitter(size_t max_line_bytes = kMaxLineBytes) : max_line_bytes_(max_line_bytes) {}

    void feed(std::string_view chunk, const LineCallback& on_line);
    // True when the unfinished line is the REPL prompt.
    bool prompt_pending() const;
    void reset();
    uint64_t overlong_lines() const { return overlong_lines_; }

private:
    size_t max_line_bytes_;
    std::string partial_;
    bool skipping_ = false;
    uint64_t overlong_lines_ = 0;
};

enum class Kind { Hello, Pong, Led, Heartbeat, Ack, Err, Log, Unknown };

// One line from the Pico. Only the fields of its kind are set.
struct Line {
    Kind kind = Kind::Unknown;
    std::string word;        // the message word as received (for Unknown lines)
    bool has_seq = false;    // every line but HELLO carries one
    uint32_t seq = 0;
    uint64_t t_us = 0;       // Pico clock at the event (HELLO, LED, HB, ACK, ERR, LOG)
    // HELLO
    int proto = 0;
    std::string fw, board, boot, uid;
    // PONG
    std::string nonce;
    uint64_t t_rx_us = 0;
    uint64_t t_tx_us = 0;
    // LED
    int channel = 0;
    int level = 0;
    // LED, ACK, ERR
    std::string cmd_id;
    // HB
    int64_t up_s = 0;
    uint32_t led_mask = 0;
    int64_t drop = 0;
    // ERR
    int code = 0;
    std::string err_word;
    // LOG
    std::string log_level;
    std::string text;
};

// Parses one line (without its newline). nullopt: not a valid PSYNC/1 line (garbage, bad bytes,
// a known message with missing or malformed fields, a clock past kMaxClockUs, a PONG whose
// t_tx is before its t_rx or kMaxPongHoldUs after it); *why then says what is wrong. Unknown
// message words and unknown keys are accepted (forward compatibility): an unknown word gives
// Kind::Unknown.
std::optional<Line> parse_line(std::string_view line, std::string* why = nullptr);

// Follows the per-boot seq counter (1, 2, ... 4294967295, 1, ...).
class SeqTracker {
public:
    // Back: a number not after the last one (repeated, out of order, or a restart whose HELLO
    // was missed). The tracker stays where it was, so one stray line cannot move it; only the
    // boot id in a HELLO tells a restart from a stray line.
    enum class Result { First, InOrder, Gap, Back };
    // lost: lines missing just before this one (Gap only).
    Result add(uint32_t seq, uint64_t* lost = nullptr);
    void reset() { last_.reset(); }
    std::optional<uint32_t> last() const { return last_; }

private:
    std::optional<uint32_t> last_;
};

// Host to Pico commands, newline included. ids and nonces must be 1..16 printable characters.
std::string hello_query();
std::string ping(std::string_view nonce);
std::string led(std::string_view cmd_id, int channel, int level);
std::string code(std::string_view cmd_id, int channel, std::string_view hexbits, int bit_ms,
                 std::optional<uint64_t> at_pico_us = std::nullopt);
std::string stop(std::string_view cmd_id, int channel);

// The coded flash shown at each trial start, as CODE hex digits, sent most significant bit
// first: 1110 (start mark), the trial number in 16 bits, 1010 (end mark). 24 bits in all.
std::string trial_code_hex(int trial);
inline constexpr int kTrialCodeBits = 24;

}  // namespace pilogger::psync

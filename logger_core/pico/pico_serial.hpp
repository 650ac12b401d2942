// The Pico's USB serial port (or the emulator's pseudo-terminal): opened raw and without
// blocking, watched with uv_poll, written from a bounded queue; and the back-off of its reopening.
#pragma once

#include "pico_report.hpp"
#include "uv.hpp"

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pilogger {

// udev's name for a Pico running MicroPython; device: auto takes the first match.
inline constexpr const char* kPicoAutoGlob = "/dev/serial/by-id/usb-MicroPython_Board_in_FS_mode_*";
// The paths matching kPicoAutoGlob, sorted (device: auto opens the first).
std::vector<std::string> pico_auto_devices();

class PicoSerial {
public:
    struct Callbacks {
        // Bytes read; t4_ns is the clock taken first thing in the poll callback (a PONG's t4).
        // The port may be closed when it returns.
        std::function<void(std::string_view chunk, int64_t t4_ns)> data;
        // The device hung up, or a read or write failed (why): the port is closed already.
        std::function<void(const std::string& why)> hung_up;
        // A reopen scheduled by the back-off is due.
        std::function<void()> reopen;
    };

    PicoSerial(uv::Loop& loop, PicoReporter report, Callbacks callbacks);
    ~PicoSerial();
    PicoSerial(const PicoSerial&) = delete;
    PicoSerial& operator=(const PicoSerial&) = delete;

    // Opens, sets raw mode and raises DTR; returns why not, or "" when open. Watching for input
    // starts with the first send (the link asks for HELLO at once).
    std::string open(const std::string& path);
    // Drops what is queued and closes.
    void close();
    bool is_open() const { return fd_ >= 0; }
    // The device opened last (kept after close).
    const std::string& path() const { return path_; }

    // Queues a line (false and counted in dropped() when the port is closed or the queue full).
    // before_write runs right before each attempt to write its first byte (a PING's t1).
    bool send(std::string text, std::function<void()> before_write = {});
    uint64_t dropped() const { return dropped_; }

    // Reopening: 0.5 s after a failed open, doubling up to 5 s; 0.5 s after a hang-up.
    void retry_after_failure();
    void retry_after_hang_up();
    // The device just appeared: try in 20 ms.
    void retry_soon();
    void reset_backoff();
    // No more reopening (the link stops).
    void stop_retrying();

private:
    struct Outgoing {
        std::string text;
        size_t written = 0;
        std::function<void()> before_write;
    };

    void schedule_reopen(int64_t delay_ms);
    void on_poll(int status, int events);
    void read_input(int64_t t4_ns);
    void fail(const std::string& why);
    void flush_output();
    void update_poll();

    uv::Loop& loop_;
    PicoReporter report_;
    Callbacks callbacks_;
    int fd_ = -1;
    std::string path_;
    std::unique_ptr<uv::Poll> poll_;
    int poll_events_ = 0;
    std::deque<Outgoing> out_;
    uint64_t dropped_ = 0;
    bool retrying_ = true;
    int64_t retry_ms_;
    uv::Timer reopen_timer_;
};

}  // namespace pilogger

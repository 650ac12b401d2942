#include "pico_serial.hpp"

#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace pilogger {

namespace {
constexpr int64_t kRetryFirstMs = 500;
constexpr int64_t kRetryMaxMs = 5000;
constexpr size_t kMaxQueuedLines = 64;
}  // namespace

std::vector<std::string> pico_auto_devices() {
    std::vector<std::string> paths;
    glob_t g{};
    if (::glob(kPicoAutoGlob, 0, nullptr, &g) == 0) paths.assign(g.gl_pathv, g.gl_pathv + g.gl_pathc);  // sorted
    ::globfree(&g);
    return paths;
}

PicoSerial::PicoSerial(uv::Loop& loop, PicoReporter report, Callbacks callbacks)
    : loop_(loop),
      report_(std::move(report)),
      callbacks_(std::move(callbacks)),
      retry_ms_(kRetryFirstMs),
      reopen_timer_(loop) {}

PicoSerial::~PicoSerial() { close(); }

std::string PicoSerial::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        std::string hint = err == EACCES ? " (the user needs to be in the dialout group)"
                           : err == EBUSY ? " (another program holds it open)"
                                          : "";
        return "cannot open " + path + ": " + errno_text(err) + hint;
    }
    // One program at a time: a second reader would steal the PONGs.
    ::ioctl(fd, TIOCEXCL);
    termios tio{};
    if (::tcgetattr(fd, &tio) != 0) {
        int err = errno;
        ::close(fd);
        return path + " is not a serial port: " + errno_text(err);
    }
    ::cfmakeraw(&tio);
    tio.c_cflag |= CLOCAL | CREAD;
    tio.c_cc[VMIN] = 0;
    tio.c_cc[VTIME] = 0;
    // cdc_acm ignores the rate, but 1200 baud reboots some boards into their bootloader.
    if (::cfgetospeed(&tio) == B1200) {
        ::cfsetispeed(&tio, B115200);
        ::cfsetospeed(&tio, B115200);
    }
    if (::tcsetattr(fd, TCSANOW, &tio) != 0) {
        int err = errno;
        ::close(fd);
        return "cannot set raw mode on " + path + ": " + errno_text(err);
    }
    ::tcflush(fd, TCIOFLUSH);
    // The Pico counts the host as present only while DTR is up. A pty has no modem lines (ENOTTY).
    int dtr = TIOCM_DTR;
    if (::ioctl(fd, TIOCMBIS, &dtr) != 0 && errno != ENOTTY && errno != EINVAL) {
        report_.log("debug", "Pico W: cannot raise DTR on " + path + ": " + errno_text(errno));
    }
    try {
        poll_ = std::make_unique<uv::Poll>(loop_, fd);
    } catch (const uv::Error& e) {
        ::close(fd);
        return "cannot watch " + path + ": " + e.what();
    }
    fd_ = fd;
    path_ = path;
    poll_events_ = 0;
    return {};
}

void PicoSerial::close() {
    // The poll handle goes first: libuv must stop watching before the descriptor closes.
    poll_.reset();
    poll_events_ = 0;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    out_.clear();
}

void PicoSerial::fail(const std::string& why) {
    close();
    if (callbacks_.hung_up) callbacks_.hung_up(why);
}

void PicoSerial::on_poll(int status, int events) {
    // The PONG's t4: taken first, before any other work in this callback.
    int64_t t4 = mono_ns();
    if (fd_ < 0) return;
    if (status < 0) return fail("the device reported an error (" + uv::error_text(status) + ")");
    if (events & UV_WRITABLE) flush_output();
    if (fd_ >= 0 && (events & UV_READABLE)) read_input(t4);
}

void PicoSerial::read_input(int64_t t4_ns) {
    char buf[4096];
    bool got_data = false;
    // Bounded: a device that never stops talking cannot starve the loop.
    for (int round = 0; round < 64 && fd_ >= 0; ++round) {
        ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n > 0) {
            got_data = true;
            callbacks_.data(std::string_view(buf, static_cast<size_t>(n)), t4_ns);
            continue;
        }
        if (n == 0) {
            // With VMIN=0 an empty read also means "nothing yet"; only a hang-up makes the
            // descriptor readable with nothing in it.
            if (!got_data) {
                pollfd p{fd_, POLLIN, 0};
                if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL)) != 0) {
                    fail("the device hung up");
                }
            }
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        // EIO, ENODEV, ENXIO: unplugged (or the emulator closed its side).
        return fail("read failed: " + errno_text(errno));
    }
}

bool PicoSerial::send(std::string text, std::function<void()> before_write) {
    if (fd_ < 0) return false;
    if (out_.size() >= kMaxQueuedLines) {
        ++dropped_;
        return false;
    }
    out_.push_back(Outgoing{std::move(text), 0, std::move(before_write)});
    flush_output();
    return true;
}

void PicoSerial::flush_output() {
    while (fd_ >= 0 && !out_.empty()) {
        Outgoing& o = out_.front();
        if (o.written == 0 && o.before_write) o.before_write();
        ssize_t n = ::write(fd_, o.text.data() + o.written, o.text.size() - o.written);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return fail("write failed: " + errno_text(errno));
        }
        o.written += static_cast<size_t>(n);
        if (o.written < o.text.size()) break;
        out_.pop_front();
    }
    update_poll();
}

void PicoSerial::update_poll() {
    if (!poll_) return;
    int want = UV_READABLE | (out_.empty() ? 0 : UV_WRITABLE);
    if (want == poll_events_) return;
    poll_events_ = want;
    try {
        poll_->start(want, [this](int status, int events) { on_poll(status, events); });
    } catch (const uv::Error& e) {
        fail(std::string("cannot watch the device: ") + e.what());
    }
}

void PicoSerial::retry_after_failure() {
    schedule_reopen(retry_ms_);
    retry_ms_ = std::min(retry_ms_ * 2, kRetryMaxMs);
}

void PicoSerial::retry_after_hang_up() {
    retry_ms_ = kRetryFirstMs;
    retry_after_failure();
}

void PicoSerial::retry_soon() {
    retry_ms_ = kRetryFirstMs;
    schedule_reopen(20);
}

void PicoSerial::reset_backoff() { retry_ms_ = kRetryFirstMs; }

void PicoSerial::stop_retrying() {
    retrying_ = false;
    reopen_timer_.stop();
}

void PicoSerial::schedule_reopen(int64_t delay_ms) {
    if (!retrying_) return;
    reopen_timer_.start(static_cast<uint64_t>(std::max<int64_t>(0, delay_ms)), 0, [this] { callbacks_.reopen(); });
}

}  // namespace pilogger

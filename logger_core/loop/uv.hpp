// RAII owners for the libuv handles pilogger uses.
//
// Ownership rule: each wrapper owns one heap-allocated uv handle. Destroying the wrapper
// calls uv_close(); the handle memory is freed in the close callback, after libuv is done
// with it. Callbacks are stored in the wrapper and disconnected (handle->data = nullptr)
// before the close, so a callback can never reach a destroyed owner. Wrappers are neither
// copyable nor movable because libuv keeps a pointer to them in handle->data.
#pragma once

#include <uv.h>

#include <csignal>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pilogger::uv {

// A libuv error turned into an exception with context ("spawn notes: no such file").
class Error : public std::runtime_error {
public:
    Error(const std::string& what, int code);
    int code() const { return code_; }

private:
    int code_;
};

std::string error_text(int code);

// The last line of defence around every callback these wrappers run: an exception that escapes
// one is caught, counted and reported through the fault handler (default: a line on stderr), and
// the loop goes on. Owners catch what they expect themselves, closer to the peer at fault.
using FaultHandler = std::function<void(std::string_view where, std::string_view what)>;
void set_fault_handler(FaultHandler handler);
uint64_t fault_count();
void report_fault(std::string_view where, std::string_view what) noexcept;

template <typename F>
void guarded(std::string_view where, F&& f) noexcept {
    try {
        f();
    } catch (const std::exception& e) {
        report_fault(where, e.what());
    } catch (...) {
        report_fault(where, "an unknown exception");
    }
}
// Throws Error when rc < 0; returns rc otherwise.
int check(int rc, std::string_view context);

class Loop {
public:
    Loop();
    // Lets the close callbacks (and the reaping of killed children) run, then closes the loop.
    // A handle still open after that is a bug in its owner: the destructor names the handles
    // left on stderr and aborts, so every test that makes a loop proves none is left.
    ~Loop();
    Loop(const Loop&) = delete;
    Loop& operator=(const Loop&) = delete;

    uv_loop_t* get() { return &loop_; }
    void run() { uv_run(&loop_, UV_RUN_DEFAULT); }
    void stop() { uv_stop(&loop_); }

private:
    uv_loop_t loop_{};
};

// Base for every handle wrapper: owns the handle memory, closes it once.
template <typename T>
class Handle {
public:
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    virtual ~Handle() { close(); }

    T* get() { return handle_; }
    const T* get() const { return handle_; }
    bool is_open() const { return handle_ != nullptr && initialized_; }

    // Safe to call more than once; the memory goes back in the close callback.
    void close() {
        if (handle_ == nullptr) return;
        T* h = handle_;
        handle_ = nullptr;
        if (!initialized_) {
            delete h;
            return;
        }
        auto* base = reinterpret_cast<uv_handle_t*>(h);
        base->data = nullptr;
        if (uv_is_closing(base) == 0) {
            uv_close(base, [](uv_handle_t* closed) { delete reinterpret_cast<T*>(closed); });
        }
    }

    void unref() {
        if (is_open()) uv_unref(reinterpret_cast<uv_handle_t*>(handle_));
    }

protected:
    Handle() : handle_(new T{}) {}
    // Call after a successful uv_*_init so close() knows libuv holds the handle.
    void mark_initialized() {
        initialized_ = true;
        reinterpret_cast<uv_handle_t*>(handle_)->data = this;
    }
    template <typename Self>
    static Self* owner(T* h) {
        return static_cast<Self*>(reinterpret_cast<uv_handle_t*>(h)->data);
    }

private:
    T* handle_;
    bool initialized_ = false;
};

class Timer : public Handle<uv_timer_t> {
public:
    using Callback = std::function<void()>;
    explicit Timer(Loop& loop);
    // repeat_ms == 0 fires once.
    void start(uint64_t timeout_ms, uint64_t repeat_ms, Callback cb);
    void stop();
    bool active() const;

private:
    Callback cb_;
};

// Runs its callback once per loop turn, after the I/O of that turn, while started. For "again
// on the next turn": a 0 ms timer restarted from a timer callback runs again in the same turn
// (libuv 1.44), before any I/O is polled.
class Idle : public Handle<uv_idle_t> {
public:
    explicit Idle(Loop& loop);
    void start(std::function<void()> cb);
    void stop();
    bool active() const;

private:
    std::function<void()> cb_;
};

class Signal : public Handle<uv_signal_t> {
public:
    explicit Signal(Loop& loop);
    void start(int signum, std::function<void(int)> cb);

private:
    std::function<void(int)> cb_;
};

// Wakes a loop from any thread; libuv coalesces sends, so the callback drains everything.
class Async : public Handle<uv_async_t> {
public:
    Async(Loop& loop, std::function<void()> cb);
    void send() {
        if (is_open()) uv_async_send(get());
    }

private:
    std::function<void()> cb_;
};

class Poll : public Handle<uv_poll_t> {
public:
    using Callback = std::function<void(int status, int events)>;
    Poll(Loop& loop, int fd);
    void start(int events, Callback cb);
    void stop();

private:
    Callback cb_;
};

// Reading and writing shared by every libuv stream (pipes, unix sockets, TCP). Reads arrive as raw
// chunks; writes copy their data and report the queue size so callers can bound what they buffer.
template <typename T>
class StreamHandle : public Handle<T> {
public:
    using ReadCallback = std::function<void(std::string_view chunk)>;
    using EndCallback = std::function<void(int status)>;  // UV_EOF or an error code

    void start_read(ReadCallback on_data, EndCallback on_end);
    void stop_read();
    // Copies data. Returns false (and writes nothing) when the stream is closed.
    bool write(std::string data);
    // The same for a line written to many streams: they share one copy.
    bool write(std::shared_ptr<const std::string> data);
    size_t write_queue_bytes() const;
    // At most this much per read (64 KiB at most): what a read brings may have to wait in memory.
    void set_read_size(size_t bytes) { read_size_ = bytes; }
    // Calls done once every queued write has gone out (or failed).
    void shutdown(std::function<void()> done);
    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(this->get()); }

protected:
    StreamHandle() = default;

private:
    ReadCallback on_data_;
    EndCallback on_end_;
    std::function<void()> on_shutdown_;
    size_t read_size_ = 64 * 1024;
};

// A pipe, tty or unix socket. ipc is always false: pilogger never passes handles over pipes.
class Stream : public StreamHandle<uv_pipe_t> {
public:
    explicit Stream(Loop& loop);

    void open_fd(int fd);  // adopt an existing descriptor (stdin/stdout, socketpair)

    // For the server side of a unix socket.
    // backlog: connections the kernel queues before we accept them; past it a (non-blocking)
    // connect fails with EAGAIN.
    void bind_and_listen(const std::string& path, int backlog, std::function<void()> on_connection);
    void accept_into(Stream& client);
    void connect(const std::string& path, std::function<void(int status)> on_connected);

private:
    std::function<void()> on_connection_;
    std::function<void(int)> on_connected_;
};

// A TCP connection (client side; servers in tests use Python).
class Tcp : public StreamHandle<uv_tcp_t> {
public:
    explicit Tcp(Loop& loop);
    // `address` is a numeric IPv4/IPv6 address (resolve names first with resolve()).
    void connect(const std::string& address, int port, std::function<void(int status)> on_connected);
    void set_nodelay(bool on);

private:
    std::function<void(int)> on_connected_;
};

// A UDP socket bound to a local address; datagrams arrive whole.
class Udp : public Handle<uv_udp_t> {
public:
    using ReceiveCallback = std::function<void(std::string_view datagram, const sockaddr* from)>;
    explicit Udp(Loop& loop);
    // port 0 picks a free port; returns the bound port.
    int bind(const std::string& address, int port);
    int local_port() const;
    void start_receive(ReceiveCallback on_datagram);
    void set_receive_buffer(int bytes);
    // Best effort (fire and forget); false when it could not be queued.
    bool send(std::string data, const sockaddr* to);

private:
    ReceiveCallback on_datagram_;
    std::vector<char> buffer_;
};

// Asynchronous name lookup (uv_getaddrinfo): done(status, numeric address) on the loop thread.
void resolve(Loop& loop, const std::string& host, std::function<void(int status, std::string address)> done);
std::string numeric_address(const sockaddr* address);

struct ProcessOptions {
    std::string file;                 // executable path
    std::vector<std::string> args;    // argv, args[0] included
    std::vector<std::string> env;     // KEY=VALUE; empty means inherit
    std::string cwd;
    Stream* stdin_pipe = nullptr;     // created pipes (UV_CREATE_PIPE)
    Stream* stdout_pipe = nullptr;
    Stream* stderr_pipe = nullptr;
    bool detached = false;            // own session: terminal Ctrl-C reaches only the supervisor
    // Sent to the child by the kernel when this process (the spawning thread) dies, so no child
    // ever outlives its parent; 0 only for a process meant to outlive us. Set through
    // pilogger-spawn, which sits next to the executables.
    int parent_death_signal = SIGKILL;
};

// The executable a command would run: file itself when it has a slash, else the first
// executable of that name on PATH. "" when there is none.
std::string find_executable(const std::string& file);

class Process : public Handle<uv_process_t> {
public:
    using ExitCallback = std::function<void(int64_t exit_status, int term_signal)>;
    explicit Process(Loop& loop);
    // Throws Error with the executable name on failure (also when it is missing or not executable).
    void spawn(const ProcessOptions& options, ExitCallback on_exit);
    int pid() const { return pid_; }
    bool running() const { return running_; }
    void set_exit_callback(ExitCallback on_exit) { on_exit_ = std::move(on_exit); }
    // Returns 0 or a libuv error (ESRCH when already gone).
    int kill(int signum);

private:
    uv_loop_t* loop_;
    ExitCallback on_exit_;
    int pid_ = 0;
    bool running_ = false;
};

// Runs blocking work (mkdir, fsync, rename, ...) on libuv's thread pool and calls done on the
// loop thread with the work's error text (empty on success). The work must not touch loop state.
void queue_work(Loop& loop, std::function<std::string()> work, std::function<void(const std::string&)> done);

// The owner of the requests an object starts (thread-pool work, name lookups): its callbacks run
// only while the owner lives. Destroying it cancels the requests not started yet, and the done
// callbacks of the others never run, so a callback that captures `this` never outlives it.
class Requests {
public:
    explicit Requests(Loop& loop) : loop_(loop) {}
    ~Requests();
    Requests(const Requests&) = delete;
    Requests& operator=(const Requests&) = delete;

    void work(std::function<std::string()> work, std::function<void(const std::string&)> done);
    void resolve(const std::string& host, std::function<void(int status, std::string address)> done);
    size_t pending() const { return pending_.size(); }

private:
    friend struct RequestAccess;
    Loop& loop_;
    // The pending requests, for cancelling; each forgets itself when it completes.
    std::vector<uv_req_t*> pending_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace pilogger::uv

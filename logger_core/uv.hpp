// RAII owners for the libuv handles pilogger uses.
//
// Ownership rule: each wrapper owns one heap-allocated uv handle. Destroying the wrapper
// calls uv_close(); the handle memory is freed in the close callback, after libuv is done
// with it. Callbacks are stored in the wrapper and disconnected (handle->data = nullptr)
// before the close, so a callback can never reach a destroyed owner. Wrappers are neither
// copyable nor movable because libuv keeps a pointer to them in handle->data.
#pragma once

#include <uv.h>

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
// Throws Error when rc < 0; returns rc otherwise.
int check(int rc, std::string_view context);

class Loop {
public:
    Loop();
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

// A stream (pipe, tty or unix socket). Reads arrive as raw chunks; writes copy their data
// and report queue size so callers can bound what they buffer.
class Stream : public Handle<uv_pipe_t> {
public:
    using ReadCallback = std::function<void(std::string_view chunk)>;
    using EndCallback = std::function<void(int status)>;  // UV_EOF or an error code

    // ipc is always false: pilogger never passes handles over pipes.
    explicit Stream(Loop& loop);

    void open_fd(int fd);  // adopt an existing descriptor (stdin/stdout, socketpair)
    void start_read(ReadCallback on_data, EndCallback on_end);
    void stop_read();
    // Copies data. Returns false (and writes nothing) when the stream is closed.
    bool write(std::string data);
    size_t write_queue_bytes() const;
    // Calls done once every queued write has gone out (or failed).
    void shutdown(std::function<void()> done);
    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(get()); }

    // For the server side of a unix socket.
    void bind_and_listen(const std::string& path, std::function<void()> on_connection);
    void accept_into(Stream& client);
    void connect(const std::string& path, std::function<void(int status)> on_connected);

private:
    ReadCallback on_data_;
    EndCallback on_end_;
    std::function<void()> on_connection_;
    std::function<void(int)> on_connected_;
    std::function<void()> on_shutdown_;
    std::vector<char> read_buffer_;
};

struct ProcessOptions {
    std::string file;                 // executable path
    std::vector<std::string> args;    // argv, args[0] included
    std::vector<std::string> env;     // KEY=VALUE; empty means inherit
    std::string cwd;
    Stream* stdin_pipe = nullptr;     // created pipes (UV_CREATE_PIPE)
    Stream* stdout_pipe = nullptr;
    Stream* stderr_pipe = nullptr;
    bool detached = false;            // own session: terminal Ctrl-C reaches only the supervisor
};

class Process : public Handle<uv_process_t> {
public:
    using ExitCallback = std::function<void(int64_t exit_status, int term_signal)>;
    explicit Process(Loop& loop);
    // Throws Error with the executable name on failure.
    void spawn(const ProcessOptions& options, ExitCallback on_exit);
    int pid() const { return pid_; }
    bool running() const { return running_; }
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

}  // namespace pilogger::uv

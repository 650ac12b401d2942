#include "uv.hpp"

#include "output_queue.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace pilogger::uv {

Error::Error(const std::string& what, int code) : std::runtime_error(what), code_(code) {}

std::string error_text(int code) { return uv_strerror(code); }

namespace {
FaultHandler& fault_handler() {
    static FaultHandler handler;
    return handler;
}
std::atomic<uint64_t> faults{0};
}  // namespace

void set_fault_handler(FaultHandler handler) { fault_handler() = std::move(handler); }
uint64_t fault_count() { return faults.load(); }

void report_fault(std::string_view where, std::string_view what) noexcept {
    faults.fetch_add(1);
    try {
        if (auto& handler = fault_handler()) {
            handler(where, what);
            return;
        }
    } catch (...) {
    }
    stderr_queue().write("pilogger: an error escaped a " + std::string(where) + " callback: " + std::string(what) + "\n");
}

int check(int rc, std::string_view context) {
    if (rc < 0) throw Error(std::string(context) + ": " + uv_strerror(rc), rc);
    return rc;
}

Loop::Loop() { check(uv_loop_init(&loop_), "uv_loop_init"); }

Loop::~Loop() {
    // Owners close their handles before the loop goes; let the close callbacks run, and the exits
    // of children killed on the way out (a few ms). Bounded: a handle left active would spin here.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (int turn = 0; uv_loop_close(&loop_) == UV_EBUSY; ++turn) {
        if (std::chrono::steady_clock::now() > deadline) {
            std::fprintf(stderr, "pilogger: a libuv loop is destroyed with handles still open:\n");
            uv_print_all_handles(&loop_, stderr);
            std::abort();
        }
        // One turn runs the close callbacks; after that, what is left is still to come (a
        // child's exit): wait for it without spinning a core.
        if (turn > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        uv_run(&loop_, UV_RUN_NOWAIT);
    }
}

// ---- Timer ----
Timer::Timer(Loop& loop) {
    check(uv_timer_init(loop.get(), get()), "uv_timer_init");
    mark_initialized();
}

void Timer::start(uint64_t timeout_ms, uint64_t repeat_ms, Callback cb) {
    if (!is_open()) return;
    cb_ = std::move(cb);
    uv_timer_start(
        get(),
        [](uv_timer_t* h) {
            if (auto* self = owner<Timer>(h)) {
                // Copy: the callback may restart or destroy this timer.
                auto callback = self->cb_;
                guarded("timer", callback);
            }
        },
        timeout_ms, repeat_ms);
}

void Timer::stop() {
    if (is_open()) uv_timer_stop(get());
}

bool Timer::active() const {
    return is_open() && uv_is_active(reinterpret_cast<const uv_handle_t*>(get())) != 0;
}

// ---- Idle ----
Idle::Idle(Loop& loop) {
    check(uv_idle_init(loop.get(), get()), "uv_idle_init");
    mark_initialized();
}

void Idle::start(std::function<void()> cb) {
    if (!is_open()) return;
    cb_ = std::move(cb);
    uv_idle_start(get(), [](uv_idle_t* h) {
        if (auto* self = owner<Idle>(h)) {
            auto callback = self->cb_;  // the callback may stop or destroy this handle
            guarded("idle", callback);
        }
    });
}

void Idle::stop() {
    if (is_open()) uv_idle_stop(get());
}

bool Idle::active() const {
    return is_open() && uv_is_active(reinterpret_cast<const uv_handle_t*>(get())) != 0;
}

// ---- Signal ----
Signal::Signal(Loop& loop) {
    check(uv_signal_init(loop.get(), get()), "uv_signal_init");
    mark_initialized();
}

void Signal::start(int signum, std::function<void(int)> cb) {
    cb_ = std::move(cb);
    check(uv_signal_start(
              get(),
              [](uv_signal_t* h, int sig) {
                  if (auto* self = owner<Signal>(h)) guarded("signal", [&] { self->cb_(sig); });
              },
              signum),
          "uv_signal_start");
}

// ---- Async ----
Async::Async(Loop& loop, std::function<void()> cb) : cb_(std::move(cb)) {
    check(uv_async_init(loop.get(), get(),
                        [](uv_async_t* h) {
                            if (auto* self = owner<Async>(h)) guarded("async", [&] { self->cb_(); });
                        }),
          "uv_async_init");
    mark_initialized();
}

// ---- Poll ----
Poll::Poll(Loop& loop, int fd) {
    check(uv_poll_init(loop.get(), get(), fd), "uv_poll_init");
    mark_initialized();
}

void Poll::start(int events, Callback cb) {
    cb_ = std::move(cb);
    check(uv_poll_start(get(), events,
                        [](uv_poll_t* h, int status, int ev) {
                            if (auto* self = owner<Poll>(h)) {
                                auto callback = self->cb_;
                                guarded("poll", [&] { callback(status, ev); });
                            }
                        }),
          "uv_poll_start");
}

void Poll::stop() {
    if (is_open()) uv_poll_stop(get());
}

// ---- Stream ----
namespace {
constexpr size_t kReadBufferSize = 64 * 1024;

struct WriteRequest {
    uv_write_t req{};
    std::string data;
    std::shared_ptr<const std::string> shared;  // instead of data
};
}  // namespace

template <typename T>
void StreamHandle<T>::start_read(ReadCallback on_data, EndCallback on_end) {
    on_data_ = std::move(on_data);
    on_end_ = std::move(on_end);
    check(uv_read_start(
              stream(),
              [](uv_handle_t* h, size_t, uv_buf_t* buf) {
                  auto* self = static_cast<StreamHandle*>(h->data);
                  if (self == nullptr) {
                      *buf = uv_buf_init(nullptr, 0);
                      return;
                  }
                  // One buffer per thread for every stream: libuv hands each read to its callback
                  // at once, and the callbacks copy what they keep. 200 idle clients cost no 64 KiB each.
                  thread_local std::vector<char> shared_buffer(kReadBufferSize);
                  *buf = uv_buf_init(shared_buffer.data(),
                                     static_cast<unsigned>(std::min(shared_buffer.size(), self->read_size_)));
              },
              [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
                  auto* self = static_cast<StreamHandle*>(s->data);
                  if (self == nullptr) return;
                  if (n > 0) {
                      auto data_cb = self->on_data_;
                      guarded("read", [&] { data_cb(std::string_view(buf->base, static_cast<size_t>(n))); });
                  } else if (n < 0) {
                      uv_read_stop(s);
                      auto end_cb = self->on_end_;
                      if (end_cb) guarded("end of stream", [&] { end_cb(static_cast<int>(n)); });
                  }
              }),
          "uv_read_start");
}

template <typename T>
void StreamHandle<T>::stop_read() {
    if (this->is_open()) uv_read_stop(stream());
}

namespace {
// Takes ownership of request; false (and nothing written) when the stream cannot take it.
bool queue_write(uv_stream_t* stream, WriteRequest* request, const std::string& bytes) {
    uv_buf_t buf = uv_buf_init(const_cast<char*>(bytes.data()), static_cast<unsigned>(bytes.size()));
    int rc = uv_write(&request->req, stream, &buf, 1,
                      [](uv_write_t* req, int) { delete reinterpret_cast<WriteRequest*>(req); });
    if (rc < 0) {
        delete request;
        return false;
    }
    return true;
}
}  // namespace

template <typename T>
bool StreamHandle<T>::write(std::string data) {
    if (!this->is_open() || uv_is_closing(reinterpret_cast<uv_handle_t*>(this->get())) != 0) return false;
    if (!uv_is_writable(stream())) return false;
    auto* request = new WriteRequest{};
    request->data = std::move(data);
    return queue_write(stream(), request, request->data);
}

template <typename T>
bool StreamHandle<T>::write(std::shared_ptr<const std::string> data) {
    if (!data || !this->is_open() || uv_is_closing(reinterpret_cast<uv_handle_t*>(this->get())) != 0) return false;
    if (!uv_is_writable(stream())) return false;
    auto* request = new WriteRequest{};
    request->shared = std::move(data);
    return queue_write(stream(), request, *request->shared);
}

template <typename T>
size_t StreamHandle<T>::write_queue_bytes() const {
    return this->is_open() ? uv_stream_get_write_queue_size(
                                 reinterpret_cast<const uv_stream_t*>(this->get()))
                           : 0;
}

template <typename T>
void StreamHandle<T>::shutdown(std::function<void()> done) {
    on_shutdown_ = std::move(done);
    auto* req = new uv_shutdown_t{};
    int rc = this->is_open() ? uv_shutdown(req, stream(),
                                           [](uv_shutdown_t* r, int) {
                                               auto* self = static_cast<StreamHandle*>(r->handle->data);
                                               delete r;
                                               if (self != nullptr && self->on_shutdown_) {
                                                   auto cb = std::move(self->on_shutdown_);
                                                   guarded("shutdown", cb);
                                               }
                                           })
                             : UV_EBADF;
    if (rc < 0) {
        delete req;
        if (auto cb = std::move(on_shutdown_)) cb();
    }
}

template class StreamHandle<uv_pipe_t>;
template class StreamHandle<uv_tcp_t>;

Stream::Stream(Loop& loop) {
    check(uv_pipe_init(loop.get(), get(), 0), "uv_pipe_init");
    mark_initialized();
}

void Stream::open_fd(int fd) { check(uv_pipe_open(get(), fd), "uv_pipe_open"); }

void Stream::bind_and_listen(const std::string& path, int backlog, std::function<void()> on_connection) {
    on_connection_ = std::move(on_connection);
    check(uv_pipe_bind(get(), path.c_str()), "bind " + path);
    check(uv_listen(stream(), backlog,
                    [](uv_stream_t* s, int status) {
                        auto* self = static_cast<Stream*>(s->data);
                        if (self != nullptr && status == 0) guarded("listen", self->on_connection_);
                    }),
          "listen " + path);
}

void Stream::accept_into(Stream& client) { check(uv_accept(stream(), client.stream()), "accept"); }

void Stream::connect(const std::string& path, std::function<void(int)> on_connected) {
    on_connected_ = std::move(on_connected);
    auto* req = new uv_connect_t{};
    uv_pipe_connect(req, get(), path.c_str(), [](uv_connect_t* r, int status) {
        auto* self = static_cast<Stream*>(r->handle->data);
        delete r;
        if (self != nullptr) guarded("connect", [&] { self->on_connected_(status); });
    });
}

// ---- Tcp ----
namespace {
int to_sockaddr(const std::string& address, int port, sockaddr_storage& out) {
    if (uv_ip4_addr(address.c_str(), port, reinterpret_cast<sockaddr_in*>(&out)) == 0) return 0;
    return uv_ip6_addr(address.c_str(), port, reinterpret_cast<sockaddr_in6*>(&out));
}
}  // namespace

Tcp::Tcp(Loop& loop) {
    check(uv_tcp_init(loop.get(), get()), "uv_tcp_init");
    mark_initialized();
}

void Tcp::connect(const std::string& address, int port, std::function<void(int)> on_connected) {
    on_connected_ = std::move(on_connected);
    sockaddr_storage target{};
    int rc = to_sockaddr(address, port, target);
    auto* req = new uv_connect_t{};
    if (rc == 0) {
        rc = uv_tcp_connect(req, get(), reinterpret_cast<const sockaddr*>(&target),
                            [](uv_connect_t* r, int status) {
                                auto* self = static_cast<Tcp*>(r->handle->data);
                                delete r;
                                if (self != nullptr) guarded("connect", [&] { self->on_connected_(status); });
                            });
    }
    if (rc < 0) {
        delete req;
        on_connected_(rc);
    }
}

void Tcp::set_nodelay(bool on) {
    if (is_open()) uv_tcp_nodelay(get(), on ? 1 : 0);
}

// ---- Udp ----
Udp::Udp(Loop& loop) {
    check(uv_udp_init(loop.get(), get()), "uv_udp_init");
    mark_initialized();
}

int Udp::bind(const std::string& address, int port) {
    sockaddr_storage local{};
    check(to_sockaddr(address, port, local), "udp address " + address);
    check(uv_udp_bind(get(), reinterpret_cast<const sockaddr*>(&local), 0),
          "bind udp " + address + ":" + std::to_string(port));
    return local_port();
}

int Udp::local_port() const {
    sockaddr_storage local{};
    int length = sizeof(local);
    if (!is_open() || uv_udp_getsockname(get(), reinterpret_cast<sockaddr*>(&local), &length) != 0) return 0;
    if (local.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
    return ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
}

void Udp::set_receive_buffer(int bytes) {
    int value = bytes;
    if (is_open()) uv_recv_buffer_size(reinterpret_cast<uv_handle_t*>(get()), &value);
}

void Udp::start_receive(ReceiveCallback on_datagram) {
    on_datagram_ = std::move(on_datagram);
    buffer_.resize(kReadBufferSize);
    check(uv_udp_recv_start(
              get(),
              [](uv_handle_t* h, size_t, uv_buf_t* buf) {
                  auto* self = static_cast<Udp*>(h->data);
                  if (self == nullptr) {
                      *buf = uv_buf_init(nullptr, 0);
                      return;
                  }
                  *buf = uv_buf_init(self->buffer_.data(), static_cast<unsigned>(self->buffer_.size()));
              },
              [](uv_udp_t* h, ssize_t n, const uv_buf_t* buf, const sockaddr* from, unsigned) {
                  auto* self = static_cast<Udp*>(h->data);
                  if (self == nullptr || n <= 0 || from == nullptr) return;
                  auto cb = self->on_datagram_;
                  guarded("udp receive", [&] { cb(std::string_view(buf->base, static_cast<size_t>(n)), from); });
              }),
          "uv_udp_recv_start");
}

namespace {
struct UdpSendRequest {
    uv_udp_send_t req{};
    std::string data;
};
}  // namespace

bool Udp::send(std::string data, const sockaddr* to) {
    if (!is_open()) return false;
    auto* request = new UdpSendRequest{};
    request->data = std::move(data);
    uv_buf_t buf = uv_buf_init(request->data.data(), static_cast<unsigned>(request->data.size()));
    int rc = uv_udp_send(&request->req, get(), &buf, 1, to,
                         [](uv_udp_send_t* req, int) { delete reinterpret_cast<UdpSendRequest*>(req); });
    if (rc < 0) {
        delete request;
        return false;
    }
    return true;
}

// ---- Process ----
std::string find_executable(const std::string& file) {
    auto runnable = [](const std::string& path) {
        struct stat st {};
        return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
    };
    if (file.empty()) return {};
    if (file.find('/') != std::string::npos) return runnable(file) ? file : std::string();
    const char* path = std::getenv("PATH");
    std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
    for (size_t start = 0; start <= dirs.size();) {
        size_t end = dirs.find(':', start);
        if (end == std::string::npos) end = dirs.size();
        std::string dir = dirs.substr(start, end - start);
        std::string candidate = (dir.empty() ? "." : dir) + "/" + file;
        if (runnable(candidate)) return candidate;
        start = end + 1;
    }
    return {};
}

namespace {
// pilogger-spawn next to the running executable (the build folder's bin/, or where it is installed).
const std::string& spawn_helper() {
    static const std::string path = [] {
        char buf[4096];
        size_t size = sizeof buf;
        if (uv_exepath(buf, &size) != 0) return std::string("pilogger-spawn");
        std::string exe(buf, size);
        return exe.substr(0, exe.find_last_of('/')) + "/pilogger-spawn";
    }();
    return path;
}
}  // namespace

Process::Process(Loop& loop) : loop_(loop.get()) {}

void Process::spawn(const ProcessOptions& options, ExitCallback on_exit) {
    on_exit_ = std::move(on_exit);

    // Resolved here so a missing program is an error now, not an exit status 127 later.
    std::string file = find_executable(options.file);
    if (file.empty()) {
        throw Error("cannot start " + options.file + ": " +
                        (options.file.find('/') != std::string::npos ? "no such executable file" : "not found on PATH"),
                    UV_ENOENT);
    }
    std::vector<std::string> command;
    if (options.parent_death_signal != 0) {
        if (find_executable(spawn_helper()).empty()) {
            throw Error("cannot start " + options.file + ": " + spawn_helper() + " is missing", UV_ENOENT);
        }
        command = {spawn_helper(), std::to_string(options.parent_death_signal), std::to_string(::getpid()), file};
    }
    command.insert(command.end(), options.args.begin(), options.args.end());
    const std::string& exec_file = options.parent_death_signal != 0 ? command.front() : file;

    std::vector<char*> argv;
    for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (const auto& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);

    uv_stdio_container_t stdio[3];
    Stream* pipes[3] = {options.stdin_pipe, options.stdout_pipe, options.stderr_pipe};
    const int directions[3] = {UV_READABLE_PIPE, UV_WRITABLE_PIPE, UV_WRITABLE_PIPE};
    for (int i = 0; i < 3; ++i) {
        if (pipes[i] != nullptr) {
            stdio[i].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | directions[i]);
            stdio[i].data.stream = pipes[i]->stream();
        } else {
            stdio[i].flags = UV_IGNORE;
        }
    }

    uv_process_options_t uv_options{};
    uv_options.file = exec_file.c_str();
    uv_options.args = argv.data();
    uv_options.env = options.env.empty() ? nullptr : envp.data();
    uv_options.cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
    uv_options.stdio_count = 3;
    uv_options.stdio = stdio;
    uv_options.flags = options.detached ? UV_PROCESS_DETACHED : 0;
    uv_options.exit_cb = [](uv_process_t* h, int64_t status, int sig) {
        auto* self = static_cast<Process*>(h->data);
        if (self == nullptr) return;
        self->running_ = false;
        auto cb = self->on_exit_;
        if (cb) guarded("process exit", [&] { cb(status, sig); });
    };

    int rc = uv_spawn(loop_, get(), &uv_options);
    // uv_spawn initializes the handle even when it fails; it must be closed either way.
    mark_initialized();
    check(rc, "cannot start " + options.file);
    pid_ = get()->pid;
    running_ = true;
}

int Process::kill(int signum) {
    if (!running_ || !is_open()) return UV_ESRCH;
    return uv_process_kill(get(), signum);
}

}  // namespace pilogger::uv

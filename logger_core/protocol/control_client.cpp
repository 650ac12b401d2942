#include "control_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pilogger {

int64_t ControlConnection::make_request(const std::string& cmd, const json& args, std::string& line) {
    int64_t id = next_id_++;
    line = make_command(id, cmd, args) + "\n";
    return id;
}

void ControlConnection::feed(std::string_view bytes) {
    framer_.feed(
        bytes, [this](std::string_view line) { inbox_.push_back(parse_message(line)); }, [](size_t) {});
}

std::optional<Message> ControlConnection::take() {
    if (inbox_.empty()) return std::nullopt;
    Message m = std::move(inbox_.front());
    inbox_.pop_front();
    return m;
}

ControlClient::ControlClient(const std::string& socket_path) : path_(socket_path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path.size() >= sizeof addr.sun_path) throw NotRunning("control socket path is too long: " + socket_path);
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        int err = errno;
        ::close(fd_);
        fd_ = -1;
        throw NotRunning("pilogger is not running (nothing answers at " + socket_path + ": " + std::strerror(err) +
                         "); start it with 'pilogger run'");
    }
}

ControlClient::~ControlClient() {
    if (fd_ >= 0) ::close(fd_);
}

std::optional<Message> ControlClient::read_message(std::chrono::steady_clock::time_point deadline) {
    while (true) {
        if (auto m = connection_.take()) return m;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return std::nullopt;
        pollfd p{fd_, POLLIN, 0};
        int rc = ::poll(&p, 1, static_cast<int>(left.count()));
        if (rc < 0 && errno == EINTR) continue;
        if (rc <= 0) return std::nullopt;
        char buf[65536];
        ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw std::runtime_error("the supervisor closed the connection");
        connection_.feed(std::string_view(buf, static_cast<size_t>(n)));
    }
}

json ControlClient::request(const std::string& cmd, const json& args, std::chrono::milliseconds timeout) {
    std::string line;
    int64_t id = connection_.make_request(cmd, args, line);
    size_t sent = 0;
    while (sent < line.size()) {
        ssize_t n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw std::runtime_error(std::string("cannot send to the supervisor: ") + std::strerror(errno));
        sent += static_cast<size_t>(n);
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        auto m = read_message(deadline);
        if (!m) throw std::runtime_error("no answer to '" + cmd + "' within " + std::to_string(timeout.count() / 1000) + " s");
        if (m->kind == Message::Kind::Event) {
            events_.push_back(std::move(m->body));
            continue;
        }
        if (m->kind != Message::Kind::Reply || m->id != id) continue;
        if (m->body["ok"].get<bool>()) return m->body.value("result", json::object());
        json err = m->body.value("error", json::object());
        throw CommandFailed(err.value("code", "error"), err.value("message", "the supervisor refused " + cmd));
    }
}

std::optional<json> ControlClient::next_event(std::chrono::milliseconds timeout) {
    if (!events_.empty()) {
        json e = std::move(events_.front());
        events_.pop_front();
        return e;
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (auto m = read_message(deadline)) {
        if (m->kind == Message::Kind::Event) return std::move(m->body);
    }
    return std::nullopt;
}

}  // namespace pilogger

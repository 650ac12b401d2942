// The control server with real unix sockets on a loop of its own: clients that stop reading,
// half-close or pile up requests, and the bounds that keep them from costing the supervisor.
#include "control_server.hpp"
#include "helpers.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

using namespace pilogger;

namespace {

// A blocking-free client socket.
struct RawClient {
    int fd = -1;
    explicit RawClient(const std::string& path) {
        fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        ::fcntl(fd, F_SETFL, O_NONBLOCK);
    }
    ~RawClient() {
        if (fd >= 0) ::close(fd);
    }
    // Sends what the socket takes now; returns how much that was.
    size_t send(const std::string& data) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        return n > 0 ? static_cast<size_t>(n) : 0;
    }
    // What has arrived so far; eof is set once the server closed its side.
    std::string received;
    bool eof = false;
    void pump() {
        char buf[65536];
        for (;;) {
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n > 0) {
                received.append(buf, static_cast<size_t>(n));
            } else {
                if (n == 0) eof = true;
                return;
            }
        }
    }
    size_t lines() const { return static_cast<size_t>(std::count(received.begin(), received.end(), '\n')); }
};

struct Server {
    uv::Loop loop;
    test::TempDir dir;
    std::vector<std::string> problems;
    std::function<void(ControlServer::ClientId, const Message&)> on_request;
    ControlServer server{loop, dir.file("control.sock"),
                         [this](ControlServer::ClientId c, const Message& m) { on_request(c, m); },
                         [this](const std::string& problem) {
                             problems.push_back(problem);
                             // As the supervisor does: every problem is also an event to subscribers.
                             server.broadcast(make_event("supervisor_event", json{{"detail", problem}}));
                         }};
    Server() {
        on_request = [this](ControlServer::ClientId c, const Message& m) {
            if (m.name == "subscribe") server.set_subscribed(c, true);
            server.reply(c, make_ok(m.id));
        };
        server.start();
    }
    std::string path() { return dir.file("control.sock"); }
    template <typename Pred>
    bool run_until(Pred pred, int timeout_ms = 5000) {
        return test::run_until(loop, pred, timeout_ms);
    }
};

}  // namespace

TEST_CASE("a subscriber dropped for its unread answers is reported once, and the server goes on") {
    Server s;
    // Its answers: two of 5 MiB that it never reads (the second passes the 4 MiB a client may leave unread).
    bool answered = false;
    s.on_request = [&s, &answered](ControlServer::ClientId c, const Message& m) {
        if (m.name == "subscribe") {
            s.server.set_subscribed(c, true);
            s.server.reply(c, make_ok(m.id));
            return;
        }
        std::string big(5 << 20, 'x');
        s.server.reply(c, make_ok(m.id, json{{"pad", big}}));
        s.server.reply(c, make_ok(m.id, json{{"pad", big}}));
        answered = true;
    };
    RawClient client(s.path());
    client.send("{\"id\":1,\"cmd\":\"subscribe\"}\n{\"id\":2,\"cmd\":\"big\"}\n");
    // Its report is broadcast, to it as well while it is still listed: it was dropped twice (a
    // crash) before it was taken off the list first.
    CHECK(s.run_until([&] { return answered && s.server.client_count() == 0; }));
    REQUIRE(s.problems.size() == 1);
    CHECK(s.problems[0].find("unread answers passed") != std::string::npos);
    s.on_request = [&s](ControlServer::ClientId c, const Message& m) { s.server.reply(c, make_ok(m.id)); };
    RawClient next(s.path());
    next.send("{\"id\":3,\"cmd\":\"status\"}\n");
    CHECK(s.run_until([&] {
        next.pump();
        return next.lines() == 1;
    }));
}

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

TEST_CASE("a half-closed client gets every answer, its last request without a newline too") {
    Server s;
    RawClient client(s.path());
    client.send("{\"id\":1,\"cmd\":\"status\"}\n{\"id\":2,\"cmd\":\"status\"}");
    ::shutdown(client.fd, SHUT_WR);
    CHECK(s.run_until([&] {
        client.pump();
        return client.eof;
    }));
    CHECK(client.lines() == 2);
    CHECK(client.received.find("\"id\":2") != std::string::npos);
}

TEST_CASE("a client has at most 8 requests worked on at once; the rest wait for its answers") {
    Server s;
    std::vector<std::pair<ControlServer::ClientId, int64_t>> open;
    s.on_request = [&open](ControlServer::ClientId c, const Message& m) { open.emplace_back(c, *m.id); };
    RawClient client(s.path());
    std::string lines;
    for (int i = 1; i <= 100; ++i) lines += "{\"id\":" + std::to_string(i) + ",\"cmd\":\"note\"}\n";
    REQUIRE(client.send(lines) == lines.size());
    CHECK(s.run_until([&] { return open.size() == 8; }));
    CHECK_FALSE(s.run_until([&] { return open.size() > 8; }, 200));
    // Each answer lets one more in, in order.
    for (int answered = 0; answered < 100; ++answered) {
        REQUIRE(s.run_until([&] { return static_cast<int>(open.size()) > answered; }));
        s.server.reply(open[answered].first, make_ok(open[answered].second));
    }
    CHECK(s.run_until([&] {
        client.pump();
        return client.lines() == 100;
    }));
    CHECK(open.size() == 100);
    CHECK(open.back().second == 100);
}

TEST_CASE("clients pipelining thousands of requests without reading cost little, and get everything once they read") {
    Server s;
    std::vector<std::unique_ptr<RawClient>> clients;
    const std::string request = "{\"id\":1,\"cmd\":\"status\"}\n";
    std::string lines;
    for (int i = 0; i < 3000; ++i) lines += request;
    std::vector<size_t> sent(20, 0);
    for (int i = 0; i < 20; ++i) clients.push_back(std::make_unique<RawClient>(s.path()));
    // Nobody reads: the server serves what the kernel lets it answer, then waits.
    s.run_until([&] {
        for (size_t i = 0; i < clients.size(); ++i) sent[i] += clients[i]->send(lines.substr(sent[i]));
        return false;
    }, 1500);
    json stats = s.server.stats();
    CHECK(stats["input_bytes"].get<size_t>() <= 20 * (4096 + 64 * request.size()));
    CHECK(stats["output_bytes"].get<size_t>() <= 20 * 8192);
    // Once they read, every request is answered.
    CHECK(s.run_until([&] {
        bool done = true;
        for (size_t i = 0; i < clients.size(); ++i) {
            sent[i] += clients[i]->send(lines.substr(sent[i]));
            clients[i]->pump();
            done = done && clients[i]->lines() == 3000;
        }
        return done;
    }, 20000));
}

TEST_CASE("requests are served a few per client and loop turn, each round after the turn's I/O") {
    Server s;
    int in_turn = 0;
    int most_in_a_turn = 0;
    s.on_request = [&s, &in_turn](ControlServer::ClientId c, const Message& m) {
        ++in_turn;
        s.server.reply(c, make_ok(m.id));
    };
    uv::Idle turns(s.loop);
    turns.start([&] {
        most_in_a_turn = std::max(most_in_a_turn, in_turn);
        in_turn = 0;
    });
    RawClient client(s.path());
    std::string lines;
    for (int i = 0; i < 3000; ++i) lines += "{\"id\":1,\"cmd\":\"status\"}\n";
    size_t sent = 0;
    CHECK(s.run_until([&] {
        sent += client.send(lines.substr(sent));
        client.pump();
        return client.lines() == 3000;
    }, 20000));
    // A round of 0 ms timers restarted from a timer callback runs in the same turn (libuv 1.44):
    // serving that way answered everything read so far before the loop polled again, and held
    // every answer in memory until then (200 clients: 26 MB).
    CHECK(most_in_a_turn <= 4);
}

TEST_CASE("all clients' unfinished lines together are bounded: the ones holding the most go") {
    Server s;
    std::vector<std::unique_ptr<RawClient>> clients;
    const std::string partial = "{\"id\":1,\"cmd\":\"status\",\"args\":{\"p\":\"" + std::string(250 * 1024, 'p');
    // A client with a small request of its own, not served yet (the handler holds it), comes first.
    std::vector<std::pair<ControlServer::ClientId, int64_t>> held;
    s.on_request = [&held](ControlServer::ClientId c, const Message& m) { held.emplace_back(c, *m.id); };
    RawClient small(s.path());
    std::string pipelined;
    for (int i = 0; i < 20; ++i) pipelined += "{\"id\":" + std::to_string(i) + ",\"cmd\":\"note\"}\n";
    small.send(pipelined);  // 8 worked on, 12 waiting
    REQUIRE(s.run_until([&] { return held.size() == 8; }));
    // 20 x 250 KB is past the 4 MiB bound: those holding the most are let go, the small one stays.
    for (int i = 0; i < 20; ++i) {
        clients.push_back(std::make_unique<RawClient>(s.path()));
        size_t sent = 0;
        REQUIRE(s.run_until([&] {
            sent += clients.back()->send(partial.substr(sent));
            return sent == partial.size();
        }));
        s.run_until([] { return false; }, 20);  // its last bytes read
        CHECK(s.server.stats()["input_bytes"].get<size_t>() <= 4 * 1024 * 1024);
    }
    CHECK(s.server.stats()["clients_dropped"].get<uint64_t>() >= 3);
    REQUIRE_FALSE(s.problems.empty());
    CHECK(s.problems[0].find("disconnected: the clients' unserved input passed 4096 KiB; it held the most, 25") !=
          std::string::npos);
    s.on_request = [&s](ControlServer::ClientId c, const Message& m) { s.server.reply(c, make_ok(m.id)); };
    for (auto& [c, id] : held) s.server.reply(c, make_ok(id));
    CHECK(s.run_until([&] {
        small.pump();
        return small.lines() == 20;
    }));
    // The last one still gets its answer once it finishes its line.
    clients.back()->send("\"}}\n");
    CHECK(s.run_until([&] {
        clients.back()->pump();
        return clients.back()->lines() == 1;
    }));
}

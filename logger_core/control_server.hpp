// The supervisor's unix control socket: NDJSON requests with ids from the CLI and the GUI,
// replies, and an event stream for subscribed clients.
//
// No client can stall the supervisor or make it grow without bound:
//  - requests are taken a few per client per loop turn (round robin), so one client pipelining
//    thousands of requests shares the loop with everything else;
//  - a client that does not read its answers is not served further until it does; its input
//    then waits in the kernel (reading pauses once kMaxInboxBytes are queued);
//  - events to a subscriber that does not read are dropped (counted) beyond a small backlog,
//    and one that stays behind is disconnected;
//  - a client that half-closes after its requests still gets every answer, then the socket closes.
#pragma once

#include "ndjson.hpp"
#include "uv.hpp"

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace pilogger {

class ControlServer {
public:
    using ClientId = uint64_t;
    using Handler = std::function<void(ClientId client, const Message& request)>;
    using ProblemSink = std::function<void(const std::string& message)>;

    ControlServer(uv::Loop& loop, std::string path, Handler handler, ProblemSink on_problem = {});
    ~ControlServer();

    // Binds the socket (mode 0600), replacing a stale one. Throws uv::Error.
    void start();
    void close();

    // Each request handed to the handler gets exactly one reply through here.
    void reply(ClientId client, const std::string& line);
    void set_subscribed(ClientId client, bool on);
    void broadcast(const std::string& event_line);
    size_t client_count() const { return clients_.size(); }
    json stats() const;
    const std::string& path() const { return path_; }

private:
    struct Pending {
        std::string text;
        bool answer = false;  // text is an answer ready to send (a dropped over-long line)
    };
    struct Client {
        std::unique_ptr<uv::Stream> stream;
        LineFramer framer;
        std::deque<Pending> inbox;      // complete request lines not yet handled
        size_t inbox_bytes = 0;
        int in_flight = 0;              // handed to the handler, not answered yet
        bool subscribed = false;
        bool reading = true;
        bool peer_done = false;         // the client shut down its side (EOF)
        bool closing = false;
        int64_t behind_since_ns = 0;    // events dropped for it since then (0: keeping up)
        int64_t closing_since_ns = 0;
    };
    void accept();
    void on_data(ClientId id, std::string_view chunk);
    void on_end(ClientId id, int status);
    void serve();          // one round of requests, a few per client
    void schedule_serve(uint64_t delay_ms);
    void handle(ClientId id, const Pending& item);
    // Once a second: clients that stopped reading for good are let go.
    void sweep();
    void maybe_finish(ClientId id);
    void drop(ClientId id, const std::string& why);
    bool send(Client& client, const std::string& line, bool essential);

    uv::Loop& loop_;
    std::string path_;
    Handler handler_;
    ProblemSink on_problem_;
    std::unique_ptr<uv::Stream> listener_;
    std::unique_ptr<uv::Timer> serve_timer_;
    std::unique_ptr<uv::Timer> sweep_timer_;
    std::map<ClientId, Client> clients_;
    ClientId next_id_ = 1;
    uint64_t events_dropped_ = 0;
    uint64_t clients_dropped_ = 0;
    uint64_t clients_refused_ = 0;
    uint64_t requests_ = 0;
};

}  // namespace pilogger

// The supervisor's unix control socket: NDJSON requests with ids from the CLI and the GUI,
// replies, and an event stream for subscribed clients.
//
// No client can stall the supervisor or make it grow without bound (docs/protocol.md, "Limits"):
//  - requests are taken a few per client per loop turn (round robin), so one client pipelining
//    thousands of requests shares the loop with everything else, and a few at a time are being
//    worked on per client (notes, module commands), the rest wait their turn;
//  - a client that does not read its answers is not served further until it does; its input
//    then waits in the kernel (reading pauses once its queue of requests is full), and one that
//    does not read them for long is disconnected;
//  - events to a subscriber that does not read are dropped (counted) beyond a small backlog,
//    and one that stays behind is disconnected;
//  - all clients together: their unserved input is bounded (past it the client whose input has
//    holds the most goes) and so is their unsent output (past it, clients that have some get no
//    more until they read), so 256 hostile clients cost a few MiB, not 256 times a client's bound;
//  - a client that half-closes after its requests still gets every answer, then the socket closes.
#pragma once

#include "ndjson.hpp"
#include "uv.hpp"

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

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
        std::string held;               // the rest of a read that did not fit in the inbox
        size_t input_bytes = 0;         // its part of input_bytes_
        int64_t input_since_ns = 0;     // since when it has had unserved input (0: none)
        int in_flight = 0;              // handed to the handler, not answered yet
        bool subscribed = false;
        bool reading = true;
        bool peer_done = false;         // the client shut down its side (EOF)
        bool closing = false;
        int64_t behind_since_ns = 0;    // events dropped for it since then (0: keeping up)
        int64_t blocked_since_ns = 0;   // its requests wait for it to read its answers since then
        int64_t closing_since_ns = 0;
    };
    void accept();
    void start_reading(ClientId id, Client& c);
    void on_data(ClientId id, std::string_view chunk);
    void on_end(ClientId id, int status);
    // Frames what the client's inbox has room for; returns how much of data that was (the
    // caller keeps the rest in held). Empty data: the end of its input.
    size_t take(ClientId id, Client& c, std::string_view data);
    void take_held(ClientId id, Client& c);
    void count_input(Client& c);
    // All clients' unserved input over its bound: the one holding the most goes.
    void enforce_input_bound();
    size_t output_bytes() const;
    void serve();          // one round of requests, a few per client
    void schedule_serve(uint64_t delay_ms);
    void handle(ClientId id, const Pending& item);
    // Once a second: clients that stopped reading for good are let go.
    void sweep();
    void maybe_finish(ClientId id);
    void drop(ClientId id, const std::string& why);
    // Problems found while a client or the list is in use are told once that is over.
    void report(const std::string& problem);
    void flush_reports();
    bool send_answer(Client& client, const std::string& line);
    // False when the client is to be disconnected for it.
    bool send_event(ClientId id, Client& client, const std::shared_ptr<const std::string>& line, bool output_full);

    uv::Loop& loop_;
    std::string path_;
    Handler handler_;
    ProblemSink on_problem_;
    std::unique_ptr<uv::Stream> listener_;
    std::unique_ptr<uv::Idle> serve_next_turn_;   // after this turn's I/O, not before it
    std::unique_ptr<uv::Timer> serve_timer_;     // later: clients that do not read their answers
    std::unique_ptr<uv::Timer> sweep_timer_;
    std::map<ClientId, Client> clients_;
    ClientId next_id_ = 1;
    uint64_t events_dropped_ = 0;
    uint64_t clients_dropped_ = 0;
    uint64_t clients_refused_ = 0;
    uint64_t requests_ = 0;
    uint64_t lines_too_long_ = 0;
    size_t input_bytes_ = 0;              // every client's partial line, held read and inbox
    std::vector<std::string> reports_;
    bool reporting_ = false;
};

}  // namespace pilogger

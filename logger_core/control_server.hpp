// The supervisor's unix control socket: NDJSON requests with ids from the CLI and the GUI,
// replies, and an event stream for subscribed clients. Slow clients never stall the supervisor:
// events to a client with a full queue are dropped (and counted), a client far behind is closed.
#pragma once

#include "ndjson.hpp"
#include "uv.hpp"

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace pilogger {

class ControlServer {
public:
    using ClientId = uint64_t;
    using Handler = std::function<void(ClientId client, const Message& request)>;

    ControlServer(uv::Loop& loop, std::string path, Handler handler);
    ~ControlServer();

    // Binds the socket (mode 0600), replacing a stale one. Throws uv::Error.
    void start();
    void close();

    void reply(ClientId client, const std::string& line);
    void set_subscribed(ClientId client, bool on);
    void broadcast(const std::string& event_line);
    size_t client_count() const { return clients_.size(); }
    uint64_t events_dropped() const { return events_dropped_; }
    const std::string& path() const { return path_; }

private:
    struct Client {
        std::unique_ptr<uv::Stream> stream;
        LineFramer framer;
        bool subscribed = false;
    };
    void accept();
    void on_data(ClientId id, std::string_view chunk);
    void drop(ClientId id);
    bool send(Client& client, const std::string& line, bool essential);

    uv::Loop& loop_;
    std::string path_;
    Handler handler_;
    std::unique_ptr<uv::Stream> listener_;
    std::map<ClientId, Client> clients_;
    ClientId next_id_ = 1;
    uint64_t events_dropped_ = 0;
};

}  // namespace pilogger

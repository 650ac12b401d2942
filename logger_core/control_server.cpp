#include "control_server.hpp"

#include <sys/stat.h>
#include <unistd.h>

namespace pilogger {

namespace {
constexpr size_t kMaxEventBacklog = 1024 * 1024;       // then events are dropped for that client
constexpr size_t kMaxClientBacklog = 16 * 1024 * 1024;  // then the client is disconnected
constexpr size_t kMaxRequestBytes = 256 * 1024;
}  // namespace

ControlServer::ControlServer(uv::Loop& loop, std::string path, Handler handler)
    : loop_(loop), path_(std::move(path)), handler_(std::move(handler)) {}

ControlServer::~ControlServer() { close(); }

void ControlServer::start() {
    // The instance lock is held, so a socket file left here belongs to a dead supervisor.
    ::unlink(path_.c_str());
    listener_ = std::make_unique<uv::Stream>(loop_);
    mode_t old_mask = ::umask(0177);
    try {
        listener_->bind_and_listen(path_, [this] { accept(); });
    } catch (...) {
        ::umask(old_mask);
        throw;
    }
    ::umask(old_mask);
    ::chmod(path_.c_str(), 0600);
}

void ControlServer::close() {
    if (!listener_) return;
    listener_.reset();
    clients_.clear();
    ::unlink(path_.c_str());
}

void ControlServer::accept() {
    ClientId id = next_id_++;
    Client client;
    client.stream = std::make_unique<uv::Stream>(loop_);
    client.framer = LineFramer(kMaxRequestBytes);
    try {
        listener_->accept_into(*client.stream);
    } catch (const uv::Error&) {
        return;
    }
    client.stream->start_read([this, id](std::string_view chunk) { on_data(id, chunk); },
                              [this, id](int) { drop(id); });
    clients_.emplace(id, std::move(client));
}

void ControlServer::on_data(ClientId id, std::string_view chunk) {
    auto it = clients_.find(id);
    if (it == clients_.end()) return;
    it->second.framer.feed(
        chunk,
        [this, id](std::string_view line) {
            if (clients_.count(id) == 0) return;  // closed by an earlier line's handler
            Message m = parse_message(line);
            if (m.kind != Message::Kind::Command) {
                std::string problem = m.kind == Message::Kind::Invalid ? m.problem : "expected a command";
                reply(id, make_error(m.id, m.id ? errc::kBadRequest : errc::kParseError, problem));
                return;
            }
            handler_(id, m);
        },
        [this, id](size_t n) {
            reply(id, make_error(std::nullopt, errc::kLineTooLong,
                                 "dropped a request of " + std::to_string(n) + " bytes"));
        });
}

void ControlServer::drop(ClientId id) { clients_.erase(id); }

bool ControlServer::send(Client& client, const std::string& line, bool essential) {
    size_t backlog = client.stream->write_queue_bytes();
    if (backlog > kMaxClientBacklog) return false;
    if (!essential && backlog > kMaxEventBacklog) {
        ++events_dropped_;
        return true;
    }
    return client.stream->write(line + "\n");
}

void ControlServer::reply(ClientId id, const std::string& line) {
    auto it = clients_.find(id);
    if (it == clients_.end()) return;  // the client left before its answer was ready
    if (!send(it->second, line, true)) drop(id);
}

void ControlServer::set_subscribed(ClientId id, bool on) {
    auto it = clients_.find(id);
    if (it != clients_.end()) it->second.subscribed = on;
}

void ControlServer::broadcast(const std::string& event_line) {
    std::vector<ClientId> gone;
    for (auto& [id, client] : clients_) {
        if (client.subscribed && !send(client, event_line, false)) gone.push_back(id);
    }
    for (ClientId id : gone) drop(id);
}

}  // namespace pilogger

#include "control_server.hpp"

#include "clock.hpp"

#include <sys/stat.h>
#include <unistd.h>

namespace pilogger {

namespace {
constexpr size_t kMaxRequestBytes = 256 * 1024;     // one request line
constexpr size_t kMaxInboxBytes = 128 * 1024;       // queued requests; then reading pauses
constexpr size_t kMaxInboxRequests = 64;            // the same, counted
constexpr size_t kMaxClients = 256;                 // more are refused at once
constexpr int kRequestsPerTurn = 4;                 // per client and loop turn
constexpr size_t kMaxReplyBacklog = 64 * 1024;      // unsent answers; then its requests wait
constexpr size_t kMaxEventBacklog = 64 * 1024;      // then events are dropped for that client
constexpr size_t kMaxClientBacklog = 4 * 1024 * 1024;  // then the client is disconnected
constexpr int64_t kMaxBehindNs = 10'000'000'000;    // dropping its events this long: disconnected
constexpr uint64_t kBlockedRetryMs = 20;            // re-check clients whose answers are not read
}  // namespace

ControlServer::ControlServer(uv::Loop& loop, std::string path, Handler handler, ProblemSink on_problem)
    : loop_(loop), path_(std::move(path)), handler_(std::move(handler)), on_problem_(std::move(on_problem)) {}

ControlServer::~ControlServer() { close(); }

void ControlServer::start() {
    // The instance lock is held, so a socket file left here belongs to a dead supervisor.
    ::unlink(path_.c_str());
    listener_ = std::make_unique<uv::Stream>(loop_);
    serve_timer_ = std::make_unique<uv::Timer>(loop_);
    sweep_timer_ = std::make_unique<uv::Timer>(loop_);
    sweep_timer_->start(1000, 1000, [this] { sweep(); });
    sweep_timer_->unref();
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
    serve_timer_.reset();
    sweep_timer_.reset();
    clients_.clear();
    ::unlink(path_.c_str());
}

json ControlServer::stats() const {
    return json{{"clients", clients_.size()},
                {"requests", requests_},
                {"events_dropped", events_dropped_},
                {"clients_dropped", clients_dropped_},
                {"clients_refused", clients_refused_}};
}

void ControlServer::accept() {
    auto stream = std::make_unique<uv::Stream>(loop_);
    try {
        listener_->accept_into(*stream);
    } catch (const uv::Error&) {
        return;
    }
    if (clients_.size() >= kMaxClients) {
        ++clients_refused_;
        // Told why, then closed once the line is out.
        stream->write(make_error(std::nullopt, errc::kUnavailable, "too many clients are connected") + "\n");
        auto* raw = stream.release();
        raw->shutdown([raw] { delete raw; });
        return;
    }
    ClientId id = next_id_++;
    Client client;
    client.stream = std::move(stream);
    client.framer = LineFramer(kMaxRequestBytes);
    client.stream->start_read([this, id](std::string_view chunk) { on_data(id, chunk); },
                              [this, id](int status) { on_end(id, status); });
    clients_.emplace(id, std::move(client));
}

void ControlServer::on_data(ClientId id, std::string_view chunk) {
    auto it = clients_.find(id);
    if (it == clients_.end()) return;
    Client& c = it->second;
    c.framer.feed(
        chunk,
        [&c](std::string_view line) {
            c.inbox.push_back(Pending{std::string(line), false});
            c.inbox_bytes += line.size();
        },
        [&c](size_t n) {
            // Answered in turn, like a request, so answers keep the order of the lines.
            c.inbox.push_back(Pending{make_error(std::nullopt, errc::kLineTooLong,
                                                 "dropped a request of " + std::to_string(n) + " bytes (limit " +
                                                     std::to_string(kMaxRequestBytes) + ")"),
                                      true});
        });
    if ((c.inbox_bytes >= kMaxInboxBytes || c.inbox.size() >= kMaxInboxRequests) && c.reading) {
        c.stream->stop_read();
        c.reading = false;
    }
    schedule_serve(0);
}

void ControlServer::on_end(ClientId id, int status) {
    auto it = clients_.find(id);
    if (it == clients_.end()) return;
    if (status != UV_EOF) return drop(id, "");
    // A half-close: what it asked for is still answered.
    it->second.peer_done = true;
    it->second.reading = false;
    maybe_finish(id);
}

void ControlServer::schedule_serve(uint64_t delay_ms) {
    if (!serve_timer_) return;
    if (serve_timer_->active() && delay_ms > 0) return;
    serve_timer_->start(delay_ms, 0, [this] { serve(); });
}

void ControlServer::serve() {
    bool more = false;         // a client has requests we can serve next turn
    bool blocked = false;      // a client has requests waiting for it to read its answers
    std::vector<ClientId> ids;
    ids.reserve(clients_.size());
    for (const auto& [id, c] : clients_) {
        if (!c.inbox.empty()) ids.push_back(id);
    }
    for (ClientId id : ids) {
        for (int n = 0; n < kRequestsPerTurn; ++n) {
            auto it = clients_.find(id);  // a handler may have dropped it
            if (it == clients_.end() || it->second.inbox.empty()) break;
            Client& c = it->second;
            // Not reading its answers: its requests wait until it does.
            if (c.stream->write_queue_bytes() > kMaxReplyBacklog) break;
            Pending item = std::move(c.inbox.front());
            c.inbox.pop_front();
            if (!item.answer) c.inbox_bytes -= std::min(c.inbox_bytes, item.text.size());
            handle(id, item);
        }
        auto it = clients_.find(id);
        if (it == clients_.end()) continue;
        Client& c = it->second;
        if (!c.inbox.empty()) (c.stream->write_queue_bytes() > kMaxReplyBacklog ? blocked : more) = true;
        if (!c.reading && !c.peer_done && !c.closing && c.inbox_bytes < kMaxInboxBytes / 2 &&
            c.inbox.size() < kMaxInboxRequests / 2) {
            c.stream->start_read([this, id](std::string_view chunk) { on_data(id, chunk); },
                                 [this, id](int status) { on_end(id, status); });
            c.reading = true;
        }
        maybe_finish(id);
    }
    if (more) {
        schedule_serve(0);
    } else if (blocked) {
        schedule_serve(kBlockedRetryMs);
    }
}

void ControlServer::handle(ClientId id, const Pending& item) {
    auto it = clients_.find(id);
    if (it == clients_.end()) return;
    if (item.answer) {
        if (!send(it->second, item.text, true)) drop(id, "its unread answers passed the limit");
        return;
    }
    ++requests_;
    Message m = parse_message(item.text);
    if (m.kind != Message::Kind::Command) {
        std::string problem = m.kind == Message::Kind::Invalid ? m.problem : "expected a command";
        if (!send(it->second, make_error(m.id, m.id ? errc::kBadRequest : errc::kParseError, problem), true)) {
            drop(id, "its unread answers passed the limit");
        }
        return;
    }
    it->second.in_flight += 1;
    // The barrier: a request that makes the supervisor throw costs that client its connection,
    // never the supervisor.
    try {
        handler_(id, m);
    } catch (const std::exception& e) {
        if (on_problem_) on_problem_("control client " + std::to_string(id) + ": request \"" + m.name + "\" failed: " + e.what());
        drop(id, "");
    }
}

void ControlServer::sweep() {
    int64_t now = mono_ns();
    std::vector<std::pair<ClientId, std::string>> gone;
    for (const auto& [id, c] : clients_) {
        if (c.closing && now - c.closing_since_ns > kMaxBehindNs) {
            gone.emplace_back(id, "it half-closed and did not read its answers");
        } else if (c.behind_since_ns != 0 && now - c.behind_since_ns > kMaxBehindNs) {
            gone.emplace_back(id, "it did not read its events for " + std::to_string(kMaxBehindNs / 1'000'000'000) + " s");
        }
    }
    for (const auto& [id, why] : gone) drop(id, why);
}

void ControlServer::maybe_finish(ClientId id) {
    auto it = clients_.find(id);
    if (it == clients_.end()) return;
    Client& c = it->second;
    if (!c.peer_done || c.closing || c.in_flight > 0 || !c.inbox.empty()) return;
    // Everything asked is answered: let the answers out, then close.
    c.closing = true;
    c.closing_since_ns = mono_ns();
    c.stream->shutdown([this, id] { drop(id, ""); });
}

void ControlServer::drop(ClientId id, const std::string& why) {
    auto it = clients_.find(id);
    if (it == clients_.end()) return;
    // Off the list before it is reported: the report is broadcast, and a broadcast that reached
    // this client could drop it a second time (erasing it twice crashed the supervisor).
    clients_.erase(it);
    if (!why.empty()) {
        ++clients_dropped_;
        if (on_problem_) on_problem_("control client " + std::to_string(id) + " disconnected: " + why);
    }
}

bool ControlServer::send(Client& client, const std::string& line, bool essential) {
    size_t backlog = client.stream->write_queue_bytes();
    if (backlog > kMaxClientBacklog) return false;
    if (!essential && backlog > kMaxEventBacklog) {
        ++events_dropped_;
        int64_t now = mono_ns();
        if (client.behind_since_ns == 0) client.behind_since_ns = now;
        return now - client.behind_since_ns < kMaxBehindNs;
    }
    if (!essential) client.behind_since_ns = 0;
    return client.stream->write(line + "\n");
}

void ControlServer::reply(ClientId id, const std::string& line) {
    auto it = clients_.find(id);
    if (it == clients_.end()) return;  // the client left before its answer was ready
    Client& c = it->second;
    if (c.in_flight > 0) --c.in_flight;
    if (!send(c, line, true)) return drop(id, "its unread answers passed " + std::to_string(kMaxClientBacklog) + " bytes");
    maybe_finish(id);
}

void ControlServer::set_subscribed(ClientId id, bool on) {
    auto it = clients_.find(id);
    if (it != clients_.end()) it->second.subscribed = on;
}

void ControlServer::broadcast(const std::string& event_line) {
    std::vector<ClientId> gone;
    for (auto& [id, client] : clients_) {
        if (client.subscribed && !client.closing && !send(client, event_line, false)) gone.push_back(id);
    }
    for (ClientId id : gone) drop(id, "it did not read its events for " + std::to_string(kMaxBehindNs / 1'000'000'000) + " s");
}

}  // namespace pilogger

#include "control_server.hpp"

#include "clock.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

namespace pilogger {

namespace {
constexpr size_t kMaxRequestBytes = 256 * 1024;     // one request line
constexpr size_t kMaxInboxBytes = 128 * 1024;       // queued requests; then reading pauses
constexpr size_t kMaxInboxRequests = 64;            // the same, counted
constexpr size_t kMaxInputBytes = 4 * 1024 * 1024;  // every client's unserved input together
constexpr size_t kMaxClients = 256;                 // more are refused at once
constexpr int kRequestsPerTurn = 4;                 // per client and loop turn
constexpr int kMaxInFlight = 8;                     // a client's requests being worked on at once
constexpr size_t kMaxReplyBacklog = 4 * 1024;       // unsent answers (past the kernel's ~200 KiB); then its requests wait
constexpr size_t kReadSize = 4 * 1024;              // per read: the part the inbox cannot take waits here
constexpr size_t kMaxEventBacklog = 64 * 1024;      // then events are dropped for that client
constexpr size_t kMaxOutputBytes = 4 * 1024 * 1024; // every client's unsent output together
constexpr size_t kMaxClientBacklog = 4 * 1024 * 1024;  // then the client is disconnected
constexpr int64_t kMaxBehindNs = 10'000'000'000;    // dropping its events this long: disconnected
constexpr uint64_t kBlockedRetryMs = 20;            // re-check clients whose answers are not read

std::string kib(size_t bytes) { return std::to_string(bytes / 1024) + " KiB"; }

// Sized exactly: line + "\n" doubles the capacity, and thousands of answers can be waiting.
std::string with_newline(const std::string& line) {
    std::string out;
    out.reserve(line.size() + 1);
    out.append(line).push_back('\n');
    return out;
}

bool inbox_full(size_t requests, size_t bytes) { return requests >= kMaxInboxRequests || bytes >= kMaxInboxBytes; }
}  // namespace

ControlServer::ControlServer(uv::Loop& loop, std::string path, Handler handler, ProblemSink on_problem)
    : loop_(loop), path_(std::move(path)), handler_(std::move(handler)), on_problem_(std::move(on_problem)) {}

ControlServer::~ControlServer() { close(); }

void ControlServer::start() {
    // The instance lock is held, so a socket file left here belongs to a dead supervisor.
    ::unlink(path_.c_str());
    listener_ = std::make_unique<uv::Stream>(loop_);
    serve_next_turn_ = std::make_unique<uv::Idle>(loop_);
    serve_timer_ = std::make_unique<uv::Timer>(loop_);
    sweep_timer_ = std::make_unique<uv::Timer>(loop_);
    sweep_timer_->start(1000, 1000, [this] { sweep(); });
    sweep_timer_->unref();
    mode_t old_mask = ::umask(0177);
    try {
        // A burst of clients up to the limit waits for accept() rather than failing to connect.
        listener_->bind_and_listen(path_, static_cast<int>(kMaxClients), [this] { accept(); });
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
    serve_next_turn_.reset();
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
                {"clients_refused", clients_refused_},
                {"lines_too_long", lines_too_long_},
                {"input_bytes", input_bytes_},
                {"output_bytes", output_bytes()}};
}

size_t ControlServer::output_bytes() const {
    size_t total = 0;
    for (const auto& [id, c] : clients_) total += c.stream->write_queue_bytes();
    return total;
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
        report("refused a control client: " + std::to_string(kMaxClients) + " are connected");
        flush_reports();
        return;
    }
    ClientId id = next_id_++;
    Client client;
    client.stream = std::move(stream);
    client.framer = LineFramer(kMaxRequestBytes);
    client.stream->set_read_size(kReadSize);
    auto& c = clients_.emplace(id, std::move(client)).first->second;
    start_reading(id, c);
}

void ControlServer::start_reading(ClientId id, Client& c) {
    c.stream->start_read([this, id](std::string_view chunk) { on_data(id, chunk); },
                         [this, id](int status) { on_end(id, status); });
    c.reading = true;
}

size_t ControlServer::take(ClientId id, Client& c, std::string_view data) {
    auto on_line = [&c](std::string_view line) {
        c.inbox.push_back(Pending{std::string(line), false});
        c.inbox_bytes += line.size();
    };
    auto on_overflow = [this, id, &c](size_t n) {
        ++lines_too_long_;
        std::string why = "dropped a request of " + std::to_string(n) + " bytes (limit " +
                          std::to_string(kMaxRequestBytes) + ")";
        // Answered in turn, like a request, so answers keep the order of the lines.
        c.inbox.push_back(Pending{make_error(std::nullopt, errc::kLineTooLong, why), true});
        report("control client " + std::to_string(id) + ": " + why);
    };
    if (data.empty()) {
        // End of input: its last line may lack the newline.
        c.framer.finish(on_line, on_overflow);
        return 0;
    }
    // Only as many lines as the inbox has room for: a 64 KiB read of short lines is 3000 requests.
    size_t room = inbox_full(c.inbox.size(), c.inbox_bytes) ? 0 : kMaxInboxRequests - c.inbox.size();
    return room == 0 ? 0 : c.framer.feed(data, on_line, on_overflow, room);
}

void ControlServer::take_held(ClientId id, Client& c) {
    // take() copies the lines it frames and leaves held alone, so held can be what it reads.
    size_t used = take(id, c, c.held);
    c.held.erase(0, used);
    if (c.held.empty()) c.held = std::string();  // its memory goes too
}

void ControlServer::count_input(Client& c) {
    size_t bytes = c.framer.buffered_bytes() + c.held.size() + c.inbox_bytes;
    input_bytes_ = input_bytes_ - std::min(input_bytes_, c.input_bytes) + bytes;
    c.input_bytes = bytes;
    if (bytes == 0) {
        c.input_since_ns = 0;
    } else if (c.input_since_ns == 0) {
        c.input_since_ns = mono_ns();
    }
}

void ControlServer::enforce_input_bound() {
    // The client holding the most goes: a request a person or the GUI sends is small, a line never
    // finished or a pile of big requests is not. (The one waiting longest was the CLI's status
    // request, once: 200 clients began their unfinished lines within the same few milliseconds.)
    while (input_bytes_ > kMaxInputBytes) {
        auto most = clients_.end();
        for (auto it = clients_.begin(); it != clients_.end(); ++it) {
            if (most == clients_.end() || it->second.input_bytes > most->second.input_bytes) most = it;
        }
        if (most == clients_.end() || most->second.input_bytes == 0) return;
        double waited_s = static_cast<double>(mono_ns() - most->second.input_since_ns) / 1e9;
        char seconds[32];
        std::snprintf(seconds, sizeof seconds, "%.1f", waited_s);
        drop(most->first, "the clients' unserved input passed " + kib(kMaxInputBytes) + "; it held the most, " +
                              std::to_string(most->second.input_bytes) + " bytes (for " + seconds + " s)");
    }
}

void ControlServer::on_data(ClientId id, std::string_view chunk) {
    auto it = clients_.find(id);
    if (it == clients_.end()) return;
    Client& c = it->second;
    size_t used = take(id, c, chunk);
    if (used < chunk.size()) c.held.assign(chunk.substr(used));
    // The rest of the read waits with us, the rest of its input in the kernel.
    if ((!c.held.empty() || inbox_full(c.inbox.size(), c.inbox_bytes)) && c.reading) {
        c.stream->stop_read();
        c.reading = false;
    }
    count_input(c);
    schedule_serve(0);
    enforce_input_bound();
    flush_reports();
}

void ControlServer::on_end(ClientId id, int status) {
    auto it = clients_.find(id);
    if (it == clients_.end()) return;
    if (status != UV_EOF) return drop(id, "");
    // A half-close: what it asked for is still answered.
    Client& c = it->second;
    take(id, c, {});
    c.peer_done = true;
    c.reading = false;
    count_input(c);
    schedule_serve(0);
    maybe_finish(id);
    flush_reports();
}

void ControlServer::schedule_serve(uint64_t delay_ms) {
    if (!serve_timer_) return;
    if (delay_ms == 0) {
        // Each round of requests comes after a turn of I/O, so modules, timers and the other
        // clients are never held up by clients with thousands of requests.
        if (!serve_next_turn_->active()) {
            serve_next_turn_->start([this] {
                serve_next_turn_->stop();
                serve();
            });
        }
        return;
    }
    if (serve_timer_->active()) return;
    serve_timer_->start(delay_ms, 0, [this] { serve(); });
}

void ControlServer::serve() {
    bool more = false;         // a client has requests we can serve next turn
    bool blocked = false;      // a client has requests waiting for it to read its answers
    // Over the bound of all clients' output, those that have some wait until they read it.
    const bool output_full = output_bytes() > kMaxOutputBytes;
    auto must_wait = [output_full](const Client& c) {
        size_t backlog = c.stream->write_queue_bytes();
        return backlog > kMaxReplyBacklog || (backlog > 0 && output_full);
    };
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
            // Its answers bring it back (reply) once fewer are being worked on.
            if (c.in_flight >= kMaxInFlight) break;
            // Not reading its answers: its requests wait until it does.
            if (must_wait(c)) {
                if (c.blocked_since_ns == 0) c.blocked_since_ns = mono_ns();
                break;
            }
            c.blocked_since_ns = 0;
            Pending item = std::move(c.inbox.front());
            c.inbox.pop_front();
            if (!item.answer) c.inbox_bytes -= std::min(c.inbox_bytes, item.text.size());
            handle(id, item);
        }
        auto it = clients_.find(id);
        if (it == clients_.end()) continue;
        Client& c = it->second;
        if (!c.held.empty() && !inbox_full(c.inbox.size(), c.inbox_bytes)) take_held(id, c);
        count_input(c);
        if (!c.inbox.empty() && c.in_flight < kMaxInFlight) (must_wait(c) ? blocked : more) = true;
        if (!c.reading && c.held.empty() && !c.peer_done && !c.closing && c.inbox_bytes < kMaxInboxBytes / 2 &&
            c.inbox.size() < kMaxInboxRequests / 2) {
            start_reading(id, c);
        }
        maybe_finish(id);
    }
    flush_reports();
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
        if (!send_answer(it->second, item.text)) drop(id, "its unread answers passed " + kib(kMaxClientBacklog));
        return;
    }
    ++requests_;
    Message m = parse_message(item.text);
    if (m.kind != Message::Kind::Command) {
        std::string problem = m.kind == Message::Kind::Invalid ? m.problem : "expected a command";
        if (!send_answer(it->second, make_error(m.id, m.id ? errc::kBadRequest : errc::kParseError, problem))) {
            drop(id, "its unread answers passed " + kib(kMaxClientBacklog));
        }
        return;
    }
    it->second.in_flight += 1;
    // The barrier: a request that makes the supervisor throw costs that client its connection,
    // never the supervisor.
    try {
        handler_(id, m);
    } catch (const std::exception& e) {
        report("control client " + std::to_string(id) + ": request \"" + m.name + "\" failed: " + e.what());
        drop(id, "");
    }
}

void ControlServer::sweep() {
    int64_t now = mono_ns();
    std::vector<std::pair<ClientId, std::string>> gone;
    for (const auto& [id, c] : clients_) {
        if (c.closing && now - c.closing_since_ns > kMaxBehindNs) {
            gone.emplace_back(id, "it half-closed and did not read its answers");
        } else if (c.blocked_since_ns != 0 && now - c.blocked_since_ns > kMaxBehindNs) {
            gone.emplace_back(id, "it did not read its answers for " + std::to_string(kMaxBehindNs / 1'000'000'000) + " s");
        } else if (c.behind_since_ns != 0 && now - c.behind_since_ns > kMaxBehindNs) {
            gone.emplace_back(id, "it did not read its events for " + std::to_string(kMaxBehindNs / 1'000'000'000) + " s");
        }
    }
    for (const auto& [id, why] : gone) drop(id, why);
    flush_reports();
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
    input_bytes_ -= std::min(input_bytes_, it->second.input_bytes);
    // Off the list before it is reported: the report is broadcast, and a broadcast that reached
    // this client could drop it a second time (erasing it twice crashed the supervisor).
    clients_.erase(it);
    if (!why.empty()) {
        ++clients_dropped_;
        report("control client " + std::to_string(id) + " disconnected: " + why);
    }
    flush_reports();
}

void ControlServer::report(const std::string& problem) {
    if (on_problem_) reports_.push_back(problem);
}

void ControlServer::flush_reports() {
    // A report is an event to subscribers: one raised meanwhile waits for this loop.
    if (reporting_) return;
    reporting_ = true;
    while (!reports_.empty()) {
        std::string problem = std::move(reports_.front());
        reports_.erase(reports_.begin());
        on_problem_(problem);
    }
    reporting_ = false;
}

bool ControlServer::send_answer(Client& client, const std::string& line) {
    if (client.stream->write_queue_bytes() > kMaxClientBacklog) return false;
    return client.stream->write(with_newline(line));
}

bool ControlServer::send_event(ClientId id, Client& client, const std::shared_ptr<const std::string>& line,
                               bool output_full) {
    size_t backlog = client.stream->write_queue_bytes();
    if (backlog > kMaxClientBacklog) return false;
    // One that keeps up has nothing waiting (the kernel takes what it sends): it always gets the event.
    if (backlog > 0 && (backlog + line->size() > kMaxEventBacklog || output_full)) {
        ++events_dropped_;
        int64_t now = mono_ns();
        if (client.behind_since_ns == 0) {
            client.behind_since_ns = now;
            report("control client " + std::to_string(id) + " does not read its events: dropping them (" +
                   std::to_string(backlog) + " bytes wait for it" + (output_full ? ", every client's output passed " + kib(kMaxOutputBytes) : "") + ")");
        }
        return now - client.behind_since_ns < kMaxBehindNs;
    }
    client.behind_since_ns = 0;
    return client.stream->write(line);
}

void ControlServer::reply(ClientId id, const std::string& line) {
    auto it = clients_.find(id);
    if (it == clients_.end()) return;  // the client left before its answer was ready
    Client& c = it->second;
    if (c.in_flight > 0) --c.in_flight;
    if (!send_answer(c, line)) return drop(id, "its unread answers passed " + kib(kMaxClientBacklog));
    // Requests held back while too many were being worked on.
    if (!c.inbox.empty()) schedule_serve(0);
    maybe_finish(id);
}

void ControlServer::set_subscribed(ClientId id, bool on) {
    auto it = clients_.find(id);
    if (it != clients_.end()) it->second.subscribed = on;
}

void ControlServer::broadcast(const std::string& event_line) {
    const bool output_full = output_bytes() > kMaxOutputBytes;
    // One copy for every subscriber: a 64 KiB note to 200 of them is not 12 MiB.
    auto line = std::make_shared<const std::string>(with_newline(event_line));
    std::vector<ClientId> gone;
    for (auto& [id, client] : clients_) {
        if (client.subscribed && !client.closing && !send_event(id, client, line, output_full)) gone.push_back(id);
    }
    for (ClientId id : gone) drop(id, "it did not read its events for " + std::to_string(kMaxBehindNs / 1'000'000'000) + " s");
    flush_reports();
}

}  // namespace pilogger

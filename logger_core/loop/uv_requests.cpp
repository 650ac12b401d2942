// Requests on the loop: name lookups and thread-pool work, free-standing and owned (Requests).
#include "uv.hpp"

#include <algorithm>
#include <exception>
#include <memory>
#include <utility>
#include <vector>

namespace pilogger::uv {

// ---- name lookup ----
std::string numeric_address(const sockaddr* address) {
    char text[INET6_ADDRSTRLEN] = {};
    if (address->sa_family == AF_INET6) {
        uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(address), text, sizeof(text));
    } else {
        uv_ip4_name(reinterpret_cast<const sockaddr_in*>(address), text, sizeof(text));
    }
    return text;
}

namespace {
struct ResolveRequest {
    uv_getaddrinfo_t req{};
    std::function<void(int, std::string)> done;
};
}  // namespace

namespace {
// Starts the lookup; returns its request, or nullptr when done already ran (it could not start).
uv_req_t* start_resolve(Loop& loop, const std::string& host, std::function<void(int, std::string)> done) {
    auto* request = new ResolveRequest{};
    request->done = std::move(done);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = uv_getaddrinfo(
        loop.get(), &request->req,
        [](uv_getaddrinfo_t* req, int status, addrinfo* result) {
            std::unique_ptr<ResolveRequest> self(reinterpret_cast<ResolveRequest*>(req));
            std::string address;
            // Prefer IPv4: the Neon and the simulator listen on IPv4.
            for (addrinfo* a = result; status == 0 && a != nullptr; a = a->ai_next) {
                if (a->ai_family == AF_INET) {
                    address = numeric_address(a->ai_addr);
                    break;
                }
                if (address.empty()) address = numeric_address(a->ai_addr);
            }
            uv_freeaddrinfo(result);
            if (status == 0 && address.empty()) status = UV_EAI_NONAME;
            guarded("resolve", [&] { self->done(status, address); });
        },
        host.c_str(), nullptr, &hints);
    if (rc < 0) {
        std::unique_ptr<ResolveRequest> self(request);
        self->done(rc, "");
        return nullptr;
    }
    return reinterpret_cast<uv_req_t*>(&request->req);
}
}  // namespace

void resolve(Loop& loop, const std::string& host, std::function<void(int, std::string)> done) {
    start_resolve(loop, host, std::move(done));
}

namespace {
struct WorkRequest {
    uv_work_t req{};
    std::function<std::string()> work;
    std::function<void(const std::string&)> done;
    std::string error;
};
}  // namespace

namespace {
// Queues the work; returns its request, or nullptr when done already ran (it could not queue).
uv_req_t* start_work(Loop& loop, std::function<std::string()> work, std::function<void(const std::string&)> done) {
    auto* w = new WorkRequest{};
    w->work = std::move(work);
    w->done = std::move(done);
    w->req.data = w;
    int rc = uv_queue_work(
        loop.get(), &w->req,
        [](uv_work_t* req) {
            auto* self = static_cast<WorkRequest*>(req->data);
            try {
                self->error = self->work();
            } catch (const std::exception& e) {
                self->error = e.what();
            }
        },
        [](uv_work_t* req, int status) {
            std::unique_ptr<WorkRequest> self(static_cast<WorkRequest*>(req->data));
            if (status < 0 && self->error.empty()) self->error = uv_strerror(status);
            if (self->done) guarded("work done", [&] { self->done(self->error); });
        });
    if (rc < 0) {
        std::unique_ptr<WorkRequest> self(w);
        if (self->done) self->done(std::string("cannot queue work: ") + uv_strerror(rc));
        return nullptr;
    }
    return reinterpret_cast<uv_req_t*>(&w->req);
}
}  // namespace

void queue_work(Loop& loop, std::function<std::string()> work, std::function<void(const std::string&)> done) {
    start_work(loop, std::move(work), std::move(done));
}

// ---- Requests ----
Requests::~Requests() {
    *alive_ = false;
    // Work already running cannot be cancelled; its done finds the owner gone and does nothing.
    for (uv_req_t* req : pending_) uv_cancel(req);
}

namespace {
// Wraps an owner's callback: it runs only while the owner lives, which forgets the request first.
template <typename... Args>
std::function<void(Args...)> owned(std::shared_ptr<bool> alive, std::vector<uv_req_t*>& pending,
                                   std::shared_ptr<uv_req_t*> req, std::function<void(Args...)> done) {
    return [alive = std::move(alive), &pending, req = std::move(req), done = std::move(done)](Args... args) {
        if (!*alive) return;
        std::erase(pending, *req);
        if (done) done(std::forward<Args>(args)...);
    };
}
}  // namespace

void Requests::work(std::function<std::string()> work, std::function<void(const std::string&)> done) {
    auto req = std::make_shared<uv_req_t*>(nullptr);
    if (uv_req_t* r = start_work(loop_, std::move(work), owned(alive_, pending_, req, std::move(done)))) {
        *req = r;
        pending_.push_back(r);
    }
}

void Requests::resolve(const std::string& host, std::function<void(int status, std::string address)> done) {
    auto req = std::make_shared<uv_req_t*>(nullptr);
    if (uv_req_t* r = start_resolve(loop_, host, owned(alive_, pending_, req, std::move(done)))) {
        *req = r;
        pending_.push_back(r);
    }
}

}  // namespace pilogger::uv

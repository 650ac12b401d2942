#include "output_queue.hpp"

#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace pilogger {

struct OutputQueue::Shared {
    int fd;
    size_t max_bytes;
    std::mutex mutex;
    std::condition_variable wake;     // text to write, or stop
    std::condition_variable written;  // the writer caught up
    std::string pending;
    uint64_t queued_total = 0;   // bytes accepted so far
    uint64_t written_total = 0;  // bytes handed to the kernel (or given up on) so far
    uint64_t dropped_writes = 0;
    uint64_t dropped_bytes = 0;
    bool failed = false;
    bool stop = false;
    bool done = false;

    void run() {
        std::unique_lock lock(mutex);
        for (;;) {
            wake.wait(lock, [this] { return stop || !pending.empty(); });
            if (pending.empty()) break;
            std::string batch;
            batch.swap(pending);
            lock.unlock();
            bool ok = write_all(batch);
            lock.lock();
            written_total += batch.size();
            if (!ok) failed = true;
            written.notify_all();
        }
        done = true;
        written.notify_all();
    }

    bool write_all(const std::string& text) const {
        size_t off = 0;
        while (off < text.size()) {
            ssize_t n = ::write(fd, text.data() + off, text.size() - off);
            if (n > 0) {
                off += static_cast<size_t>(n);
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else {
                return false;  // EPIPE, EBADF, EIO (the terminal went away): give up on this fd
            }
        }
        return true;
    }
};

OutputQueue::OutputQueue(int fd, size_t max_bytes) : shared_(std::make_shared<Shared>()) {
    shared_->fd = fd;
    shared_->max_bytes = max_bytes;
    // The thread holds the shared state, so leaving it stuck in write(2) at exit is safe.
    std::thread([shared = shared_] { shared->run(); }).detach();
}

OutputQueue::~OutputQueue() {
    flush(std::chrono::milliseconds(1000));
    std::lock_guard lock(shared_->mutex);
    shared_->stop = true;
    shared_->wake.notify_all();
}

bool OutputQueue::write(std::string_view text) {
    if (text.empty()) return true;
    std::lock_guard lock(shared_->mutex);
    if (shared_->failed || shared_->stop || shared_->pending.size() + text.size() > shared_->max_bytes) {
        ++shared_->dropped_writes;
        shared_->dropped_bytes += text.size();
        return false;
    }
    bool was_empty = shared_->pending.empty();
    shared_->pending.append(text);
    shared_->queued_total += text.size();
    if (was_empty) shared_->wake.notify_one();
    return true;
}

bool OutputQueue::flush(std::chrono::milliseconds timeout) {
    std::unique_lock lock(shared_->mutex);
    const uint64_t target = shared_->queued_total;
    return shared_->written.wait_for(lock, timeout, [&] {
        return shared_->written_total >= target || shared_->done || shared_->failed;
    });
}

uint64_t OutputQueue::dropped_writes() const {
    std::lock_guard lock(shared_->mutex);
    return shared_->dropped_writes;
}

uint64_t OutputQueue::dropped_bytes() const {
    std::lock_guard lock(shared_->mutex);
    return shared_->dropped_bytes;
}

OutputQueue& stderr_queue() {
    static auto* queue = new OutputQueue(STDERR_FILENO);
    return *queue;
}

OutputQueue& stdout_queue() {
    static auto* queue = new OutputQueue(STDOUT_FILENO);
    return *queue;
}

}  // namespace pilogger

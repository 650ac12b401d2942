// Text for a file descriptor that may stall (a terminal under Ctrl-S, a frozen ssh session, a
// log pipe nobody reads). A thread of its own does the blocking writes, so the caller (an
// event-loop thread) never waits; beyond max_bytes waiting, new text is dropped and counted.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

namespace pilogger {

class OutputQueue {
public:
    explicit OutputQueue(int fd, size_t max_bytes = 256 * 1024);
    // Gives the writer up to a second to finish, then leaves it (it may be stuck in write(2)).
    ~OutputQueue();
    OutputQueue(const OutputQueue&) = delete;
    OutputQueue& operator=(const OutputQueue&) = delete;

    // False when the text was dropped (the queue is full, or the descriptor failed).
    bool write(std::string_view text);
    // Waits until everything queued so far is written, or the timeout passes; true when written.
    bool flush(std::chrono::milliseconds timeout);
    uint64_t dropped_writes() const;
    uint64_t dropped_bytes() const;

    struct Shared;

private:
    std::shared_ptr<Shared> shared_;
};

// The process's own stderr and stdout through an OutputQueue each. Never destroyed (they are
// used until the very end); call flush() before exiting to let the last lines out.
OutputQueue& stderr_queue();
OutputQueue& stdout_queue();

}  // namespace pilogger

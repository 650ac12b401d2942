// The client side of the control socket, shared by the CLI and the GUI.
//
// ControlConnection is the protocol without any I/O policy (framing, ids, replies, events) so an
// event-loop client (the GUI's QLocalSocket) can drive it. ControlClient adds a blocking socket
// for one-shot commands from the CLI, with timeouts.
#pragma once

#include "ndjson.hpp"

#include <chrono>
#include <deque>
#include <optional>
#include <stdexcept>
#include <string>

namespace pilogger {

class NotRunning : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class CommandFailed : public std::runtime_error {
public:
    CommandFailed(std::string code, const std::string& message)
        : std::runtime_error(message), code_(std::move(code)) {}
    const std::string& code() const { return code_; }

private:
    std::string code_;
};

class ControlConnection {
public:
    // Returns the id and fills line (newline included) with the request to send.
    int64_t make_request(const std::string& cmd, const json& args, std::string& line);
    // Feeds received bytes; complete messages are queued for take().
    void feed(std::string_view bytes);
    std::optional<Message> take();

private:
    int64_t next_id_ = 1;
    LineFramer framer_{16 * 1024 * 1024};
    std::deque<Message> inbox_;
};

class ControlClient {
public:
    // Throws NotRunning when no supervisor listens at the path.
    explicit ControlClient(const std::string& socket_path);
    ~ControlClient();
    ControlClient(const ControlClient&) = delete;
    ControlClient& operator=(const ControlClient&) = delete;

    // Sends one command and waits for its answer; events met meanwhile are kept for next_event.
    // Throws CommandFailed for an error answer, std::runtime_error on timeout or a lost link.
    json request(const std::string& cmd, const json& args = json::object(),
                 std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // The next event (after subscribe), or nothing within the timeout.
    std::optional<json> next_event(std::chrono::milliseconds timeout);

private:
    std::optional<Message> read_message(std::chrono::steady_clock::time_point deadline);
    int fd_ = -1;
    std::string path_;
    ControlConnection connection_;
    std::deque<json> events_;
};

}  // namespace pilogger

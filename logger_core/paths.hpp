// Where things live on the host: the control socket and the module executables.
#pragma once

#include <string>

namespace pilogger {

// $XDG_RUNTIME_DIR/pilogger, or /tmp/pilogger-<uid> (created 0700, must be ours and private).
// Throws std::runtime_error with the reason when the folder is unsafe or cannot be made.
std::string runtime_dir();
std::string control_socket_path();

// Creates dir and its parents (blocking: call it from a worker, or before the loop runs).
// "" when the folder is there, else "cannot create <dir>: <reason>".
std::string create_directories(const std::string& dir);

// The folder holding the running executable.
std::string executable_dir();
// <dir of pilogger>/pilogger-<type> if it exists, else the bare name for a PATH lookup.
std::string find_module_executable(const std::string& type);

// Holds an exclusive flock on <runtime_dir>/supervisor.lock for the life of the supervisor.
class InstanceLock {
public:
    // Throws AlreadyRunning when another supervisor holds it.
    explicit InstanceLock(const std::string& path);
    ~InstanceLock();
    InstanceLock(const InstanceLock&) = delete;
    InstanceLock& operator=(const InstanceLock&) = delete;

private:
    int fd_ = -1;
};

class AlreadyRunning : public std::exception {
public:
    explicit AlreadyRunning(std::string message) : message_(std::move(message)) {}
    const char* what() const noexcept override { return message_.c_str(); }

private:
    std::string message_;
};

}  // namespace pilogger

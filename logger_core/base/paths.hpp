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
// <dir of pilogger>/<name> if it is executable there, else the bare name for a PATH lookup.
std::string find_sibling_executable(const std::string& name);
// find_sibling_executable("pilogger-<type>").
std::string find_module_executable(const std::string& type);

// Where spawning `file` would find it, as execvp does: a name with a '/' as it is (relative to
// the current folder), a bare name on PATH. "" and *why ("does not exist", "is a folder", "is not
// executable (mode 0644)", "is not on PATH (...)") when nothing runnable is there.
std::string resolve_executable(const std::string& file, std::string* why);
// Why `spawn find_module_executable(type)` would fail, or "" when it would find one.
std::string module_executable_problem(const std::string& type);
// Why recording into dir would fail at once (a file in the way, a folder that cannot be made or
// written), or "". Blocking (stat, access).
std::string data_dir_problem(const std::string& dir);

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

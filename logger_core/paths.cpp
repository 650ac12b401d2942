#include "paths.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <cstring>
#include <stdexcept>

namespace pilogger {

std::string runtime_dir() {
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    std::string dir = (xdg != nullptr && xdg[0] != '\0')
                          ? std::string(xdg) + "/pilogger"
                          : "/tmp/pilogger-" + std::to_string(getuid());
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        throw std::runtime_error("cannot create " + dir + ": " + std::strerror(errno));
    }
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0) {
        throw std::runtime_error("cannot inspect " + dir + ": " + std::strerror(errno));
    }
    // Under /tmp anyone could have made the folder first: refuse one that is not ours alone.
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077) != 0) {
        throw std::runtime_error(dir + " must be a folder owned by you with mode 0700");
    }
    return dir;
}

std::string control_socket_path() { return runtime_dir() + "/control.sock"; }

std::string create_directories(const std::string& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    return ec ? "cannot create " + dir + ": " + ec.message() : std::string();
}

std::string executable_dir() {
    char buf[4096];
    size_t size = sizeof buf;
    if (uv_exepath(buf, &size) != 0) return ".";
    std::string path(buf, size);
    return path.substr(0, path.find_last_of('/'));
}

std::string find_module_executable(const std::string& type) {
    std::string candidate = executable_dir() + "/pilogger-" + type;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    return "pilogger-" + type;
}

InstanceLock::InstanceLock(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = {0};
        ssize_t n = ::pread(fd_, pid, sizeof pid - 1, 0);
        ::close(fd_);
        fd_ = -1;
        std::string who = n > 0 ? " (pid " + std::string(pid, static_cast<size_t>(n)) + ")" : "";
        throw AlreadyRunning("a pilogger supervisor is already running" + who +
                             "; talk to it with 'pilogger status' or stop it with 'pilogger shutdown'");
    }
    std::string me = std::to_string(getpid());
    if (::ftruncate(fd_, 0) == 0) {
        ssize_t ignored = ::pwrite(fd_, me.data(), me.size(), 0);
        (void)ignored;
    }
}

InstanceLock::~InstanceLock() {
    if (fd_ >= 0) ::close(fd_);
}

}  // namespace pilogger

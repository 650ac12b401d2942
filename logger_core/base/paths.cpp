#include "paths.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
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
    std::error_code ec;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return ".";
    return self.parent_path().string();
}

std::string find_sibling_executable(const std::string& name) {
    std::string candidate = executable_dir() + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    return name;
}

std::string find_module_executable(const std::string& type) { return find_sibling_executable("pilogger-" + type); }

namespace {
// "" when path is a runnable file, else why not.
std::string runnable_problem(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return errno == ENOENT ? "does not exist" : std::strerror(errno);
    if (S_ISDIR(st.st_mode)) return "is a folder, not a program";
    if (!S_ISREG(st.st_mode)) return "is not a regular file";
    if (::access(path.c_str(), X_OK) != 0) {
        char mode[8];
        snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return std::string("is not executable (mode ") + mode + ")";
    }
    return {};
}
}  // namespace

std::string resolve_executable(const std::string& file, std::string* why) {
    if (file.empty()) {
        if (why != nullptr) *why = "is empty";
        return {};
    }
    if (file.find('/') != std::string::npos) {
        std::string problem = runnable_problem(file);
        if (problem.empty()) return file;
        if (why != nullptr) *why = problem;
        return {};
    }
    const char* env = std::getenv("PATH");
    const std::string path = env != nullptr ? env : "/usr/local/bin:/usr/bin:/bin";
    std::string first_problem;
    for (size_t start = 0;;) {
        const size_t colon = path.find(':', start);
        std::string dir = path.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
        if (dir.empty()) dir = ".";
        const std::string candidate = dir + "/" + file;
        std::string problem = runnable_problem(candidate);
        if (problem.empty()) return candidate;
        if (first_problem.empty() && problem != "does not exist") first_problem = candidate + " " + problem;
        if (colon == std::string::npos) break;
        start = colon + 1;
    }
    if (why != nullptr) *why = "is not on PATH (" + path + ")" + (first_problem.empty() ? "" : "; " + first_problem);
    return {};
}

std::string module_executable_problem(const std::string& type) {
    const std::string next_to = executable_dir() + "/pilogger-" + type;
    if (runnable_problem(next_to).empty()) return {};
    std::string why;
    if (!resolve_executable("pilogger-" + type, &why).empty()) return {};
    return "the default, pilogger-" + type + ", is neither next to pilogger (" + executable_dir() +
           ") nor on PATH; build it (./scripts/build.sh), install it (cmake --install build), or give its path";
}

std::string data_dir_problem(const std::string& dir) {
    if (dir.empty()) return "is empty";
    std::filesystem::path p = std::filesystem::absolute(dir);
    std::error_code ec;
    // The deepest part of the path that exists: it must be a folder we may write into.
    std::filesystem::path existing = p;
    while (!std::filesystem::exists(existing, ec)) {
        if (!existing.has_parent_path() || existing.parent_path() == existing) break;
        existing = existing.parent_path();
    }
    struct stat st {};
    if (::stat(existing.c_str(), &st) != 0) return "cannot look at " + existing.string() + ": " + std::strerror(errno);
    if (!S_ISDIR(st.st_mode)) {
        return existing == p ? existing.string() + " is a file, not a folder"
                             : existing.string() + " is a file, so " + p.string() + " cannot be a folder";
    }
    if (::access(existing.c_str(), W_OK | X_OK) != 0) {
        return existing == p ? "the folder " + existing.string() + " is not writable (" + std::strerror(errno) + ")"
                             : p.string() + " cannot be created: " + existing.string() + " is not writable (" +
                                   std::strerror(errno) + ")";
    }
    return {};
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

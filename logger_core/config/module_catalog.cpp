#include "module_catalog.hpp"

#include "json_read.hpp"
#include "ndjson.hpp"
#include "paths.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <fstream>
#include <sstream>
#include <string_view>

extern char** environ;

namespace pilogger {

namespace {

constexpr size_t kMaxDescriptionBytes = 1024 * 1024;
constexpr int kDescribeTimeoutMs = 10000;

// Identifies one build of a program: a rebuild or reinstall changes it.
std::string file_stamp(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return {};
    return std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) +
           "." + std::to_string(st.st_mtim.tv_nsec);
}

std::string cache_dir() {
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && xdg[0] == '/') {
        return std::string(xdg) + "/pilogger/describe";
    }
    if (const char* home = std::getenv("HOME"); home != nullptr && home[0] == '/') {
        return std::string(home) + "/.cache/pilogger/describe";
    }
    return {};
}

std::string cache_file(const std::string& program) {
    const std::string dir = cache_dir();
    if (dir.empty()) return {};
    char name[32];
    std::snprintf(name, sizeof name, "%016zx.json", std::hash<std::string>{}(program));
    return dir + "/" + name;
}

std::optional<ModuleKind> read_cache(const std::string& program, const std::string& stamp) {
    const std::string file = cache_file(program);
    if (file.empty()) return std::nullopt;
    std::ifstream in(file, std::ios::binary);
    if (!in) return std::nullopt;
    std::stringstream text;
    text << in.rdbuf();
    if (text.str().size() > kMaxDescriptionBytes || nests_deeper_than(text.str(), kMaxNestingDepth)) return std::nullopt;
    const nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, false);
    if (read::text(j, "program") != program || read::text(j, "stamp") != stamp) return std::nullopt;
    return ModuleKind::from_json(read::field(j, "description"), nullptr);
}

// Best effort: a cache that cannot be written only costs a spawn next time.
void write_cache(const std::string& program, const std::string& stamp, const ModuleKind& kind) {
    const std::string file = cache_file(program);
    if (file.empty() || !create_directories(cache_dir()).empty()) return;
    const std::string tmp = file + ".tmp" + std::to_string(::getpid());
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << nlohmann::json{{"program", program}, {"stamp", stamp}, {"description", kind.to_json()}}.dump();
        if (!out) {
            std::remove(tmp.c_str());
            return;
        }
    }
    if (std::rename(tmp.c_str(), file.c_str()) != 0) std::remove(tmp.c_str());
}

// Kept reversed so that only module programs contain the marker itself, not every program that
// links this catalog.
constexpr std::string_view kMarkerReversed = "ebircsed-- srewsna :kds-eludom-reggolip";

bool carries_marker(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    const std::string marker(kMarkerReversed.rbegin(), kMarkerReversed.rend());
    std::string window;
    char buf[1 << 16];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        window.append(buf, static_cast<size_t>(in.gcount()));
        if (window.find(marker) != std::string::npos) return true;
        window.erase(0, window.size() - std::min(window.size(), marker.size()));
    }
    return false;
}

// The kind's program: pilogger-<type> next to pilogger, else on PATH; else the configured one.
std::string kind_program(const std::string& type, const std::string& executable, std::string* why) {
    const std::string next_to = executable_dir() + "/pilogger-" + type;
    if (::access(next_to.c_str(), X_OK) == 0) return next_to;
    std::string path_why;
    if (std::string found = resolve_executable("pilogger-" + type, &path_why); !found.empty()) return found;
    if (!executable.empty()) {
        std::string given_why;
        if (std::string found = resolve_executable(executable, &given_why); !found.empty()) return found;
    }
    std::string known;
    for (const std::string& kind : kinds_next_to_pilogger()) known += (known.empty() ? "" : ", ") + kind;
    *why = "expected one of " + (known.empty() ? std::string("(none)") : known) +
           " (the kinds of module next to pilogger, or pilogger-<kind> on PATH), got '" + type + "'";
    return {};
}

}  // namespace

std::vector<std::string> kinds_next_to_pilogger() {
    std::vector<std::string> kinds;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(executable_dir(), ec)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind("pilogger-", 0) != 0 || !entry.is_regular_file(ec)) continue;
        if (::access(entry.path().c_str(), X_OK) != 0 || !carries_marker(entry.path().string())) continue;
        kinds.push_back(name.substr(std::strlen("pilogger-")));
    }
    std::sort(kinds.begin(), kinds.end());
    return kinds;
}

std::optional<ModuleKind> describe_program(const std::string& program, std::string* why) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
        *why = std::string("cannot make a pipe: ") + std::strerror(errno);
        return std::nullopt;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    std::string arg0 = program;
    std::string arg1 = "--describe";
    char* argv[] = {arg0.data(), arg1.data(), nullptr};
    pid_t pid = 0;
    const int spawned = ::posix_spawn(&pid, program.c_str(), &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (spawned != 0) {
        ::close(out[0]);
        *why = "cannot run '" + program + " --describe': " + std::strerror(spawned);
        return std::nullopt;
    }
    std::string text;
    bool too_long = false;
    bool timed_out = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kDescribeTimeoutMs);
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd p{out[0], POLLIN, 0};
        const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) continue;
        char buf[16384];
        const ssize_t n = ::read(out[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        text.append(buf, static_cast<size_t>(n));
        if (text.size() > kMaxDescriptionBytes) {
            too_long = true;
            break;
        }
    }
    ::close(out[0]);
    if (timed_out || too_long) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    const std::string asked = "'" + program + " --describe'";
    if (timed_out) {
        *why = asked + " did not answer within " + std::to_string(kDescribeTimeoutMs / 1000) + " s";
        return std::nullopt;
    }
    if (too_long) {
        *why = asked + " printed more than 1 MiB";
        return std::nullopt;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        *why = asked + (WIFEXITED(status) ? " exited with status " + std::to_string(WEXITSTATUS(status))
                                          : std::string(" was killed by signal ") + std::to_string(WTERMSIG(status))) +
               " (a program from an older build, or not a pilogger module?)";
        return std::nullopt;
    }
    if (nests_deeper_than(text, kMaxNestingDepth)) {
        *why = asked + " printed JSON nested too deeply";
        return std::nullopt;
    }
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) {
        *why = asked + " did not print JSON (not a pilogger module?)";
        return std::nullopt;
    }
    std::string defect;
    std::optional<ModuleKind> kind = ModuleKind::from_json(j, &defect);
    if (!kind) *why = asked + ": " + defect;
    return kind;
}

std::shared_ptr<const ModuleKind> ProgramCatalog::describe(const std::string& type, const std::string& executable,
                                                           std::string* why) {
    std::lock_guard lock(mutex_);
    if (auto it = remembered_.find(type); it != remembered_.end()) return it->second;
    const std::string program = kind_program(type, executable, why);
    if (program.empty()) return nullptr;
    const std::string stamp = file_stamp(program);
    if (auto it = by_program_.find(program); it != by_program_.end() && it->second.stamp == stamp) {
        return it->second.kind;
    }
    std::optional<ModuleKind> kind = read_cache(program, stamp);
    if (!kind) {
        kind = describe_program(program, why);
        if (!kind) return nullptr;
        write_cache(program, stamp, *kind);
    }
    if (kind->kind != type && program.find("/pilogger-" + type) != std::string::npos) {
        *why = "'" + program + " --describe' describes the kind '" + kind->kind + "', not '" + type + "'";
        return nullptr;
    }
    auto shared = std::make_shared<const ModuleKind>(std::move(*kind));
    by_program_[program] = Entry{stamp, shared};
    return shared;
}

void ProgramCatalog::remember(const ModuleKind& kind) {
    std::lock_guard lock(mutex_);
    remembered_[kind.kind] = std::make_shared<const ModuleKind>(kind);
}

void FixedCatalog::add(const ModuleKind& kind) { kinds_[kind.kind] = std::make_shared<const ModuleKind>(kind); }

std::shared_ptr<const ModuleKind> FixedCatalog::describe(const std::string& type, const std::string&,
                                                         std::string* why) {
    if (auto it = kinds_.find(type); it != kinds_.end()) return it->second;
    std::string known;
    for (const auto& [name, kind] : kinds_) known += (known.empty() ? "" : ", ") + name;
    *why = "expected one of " + known + ", got '" + type + "'";
    return nullptr;
}

ProgramCatalog& program_catalog() {
    static ProgramCatalog catalog;
    return catalog;
}

}  // namespace pilogger

// pilogger-spawn SIGNAL PARENT_PID FILE ARGV0 [ARGS...]
//
// What uv_spawn cannot do between fork and exec: ask the kernel to send SIGNAL to the child when
// its parent dies (PR_SET_PDEATHSIG), then exec FILE. Every child pilogger starts goes through
// here, so a kill -9 of the supervisor (or of a module) leaves no process behind. The kernel
// keeps the setting across execve. If the parent is already gone when we get here (it died
// between fork and prctl), the child exits at once instead of running orphaned.
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: pilogger-spawn SIGNAL PARENT_PID FILE ARGV0 [ARGS...]\n");
        return 127;
    }
    const int signal_number = std::atoi(argv[1]);
    const long parent = std::atol(argv[2]);
    if (signal_number > 0 && prctl(PR_SET_PDEATHSIG, signal_number) != 0) {
        std::fprintf(stderr, "pilogger-spawn: prctl(PR_SET_PDEATHSIG): %s\n", std::strerror(errno));
        return 127;
    }
    if (parent > 0 && getppid() != parent) return 127;
    // The supervisor ignores SIGPIPE; a child starts with the default, as programs expect.
    std::signal(SIGPIPE, SIG_DFL);
    execv(argv[3], argv + 4);
    std::fprintf(stderr, "pilogger-spawn: cannot start %s: %s\n", argv[3], std::strerror(errno));
    return 127;
}

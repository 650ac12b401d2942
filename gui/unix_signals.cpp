#include "unix_signals.hpp"

#include <QSocketNotifier>

#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

namespace pilogger::gui {

namespace {
int signal_fds[2] = {-1, -1};

void onSignal(int) {
    const char byte = 1;
    ssize_t ignored = ::write(signal_fds[0], &byte, 1);
    (void)ignored;
}
}  // namespace

void closeOnTerminationSignals(QObject* context, std::function<void()> on_signal) {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, signal_fds) != 0) return;
    auto* notifier = new QSocketNotifier(signal_fds[1], QSocketNotifier::Read, context);
    QObject::connect(notifier, &QSocketNotifier::activated, context, [on_signal = std::move(on_signal)] {
        char buf[16];
        while (::read(signal_fds[1], buf, sizeof buf) > 0) {
        }
        on_signal();
    });
    struct sigaction sa {};
    sa.sa_handler = onSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) ::sigaction(sig, &sa, nullptr);
}

}  // namespace pilogger::gui

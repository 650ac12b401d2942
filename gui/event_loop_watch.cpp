#include "event_loop_watch.hpp"

#include "clock.hpp"

#include <QAbstractEventDispatcher>
#include <QCoreApplication>
#include <QMetaEnum>

#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>
#include <tuple>
#include <utility>

namespace pilogger::gui {

namespace {
constexpr size_t kStamps = 32768;  // a first layout delivers thousands of events
constexpr int kShares = 4;         // the biggest shares a gap is explained with

qint64 threadCpuNs() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<qint64>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// How long a thread has waited on a run queue (ready, no CPU free), in ns, from its open
// /proc/thread-self/schedstat; 0 when the kernel keeps no schedstats.
qint64 cpuWaitNs(int schedstat_fd) {
    if (schedstat_fd < 0) return 0;
    char text[128];
    const ssize_t n = ::pread(schedstat_fd, text, sizeof text - 1, 0);
    if (n <= 0) return 0;
    text[n] = '\0';
    unsigned long long on_cpu = 0;
    unsigned long long waited = 0;
    if (std::sscanf(text, "%llu %llu", &on_cpu, &waited) != 2) return 0;
    return static_cast<qint64>(waited);
}

// Context switches of the calling thread: voluntary (it slept), involuntary (preempted).
std::pair<qint64, qint64> contextSwitches() {
    rusage r{};
    getrusage(RUSAGE_THREAD, &r);
    return {r.ru_nvcsw, r.ru_nivcsw};
}

QString typeName(int type) {
    static const QMetaEnum types = QMetaEnum::fromType<QEvent::Type>();
    const char* key = types.valueToKey(type);
    return key != nullptr ? QString::fromLatin1(key) : QString::number(type);
}

// The stall sampler's signal handler records the GUI thread's own stack.
std::atomic<int> g_frames{0};
void* g_stack[64];
std::atomic<bool> g_captured{false};
void captureStack(int) {
    g_frames = backtrace(g_stack, 64);  // warmed up beforehand; good enough for a diagnostic
    g_captured = true;
}
}  // namespace

// A thread that watches the time of the last tick and, when the loop is late by more than the
// threshold, signals the GUI thread (SIGURG) and prints the stack its handler recorded: one per
// stall. Opt-in (PILOGGER_GUI_STALL_STACKS_MS), for finding blocking calls inside libraries.
struct EventLoopWatch::StackSampler {
    std::atomic<qint64> last_tick_ns{0};  // CLOCK_MONOTONIC
    std::atomic<bool> stop{false};
    pthread_t gui = pthread_self();
    std::thread thread;
    explicit StackSampler(qint64 threshold_ns) {
        void* warm[4];
        backtrace(warm, 4);  // loads what backtrace needs now, not inside the signal handler
        struct sigaction sa {};
        sa.sa_handler = captureStack;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(SIGURG, &sa, nullptr);
        last_tick_ns = mono_ns();
        thread = std::thread([this, threshold_ns] {
            qint64 sampled_for = 0;
            while (!stop) {
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
                const qint64 tick = last_tick_ns;
                if (mono_ns() - tick < threshold_ns || sampled_for == tick) continue;
                sampled_for = tick;  // one stack per stall
                g_captured = false;
                pthread_kill(gui, SIGURG);
                for (int i = 0; i < 100 && !g_captured; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
                if (!g_captured) continue;
                std::fprintf(stderr, "pilogger-gui: the event loop is %.1f ms late; the GUI thread is in:\n",
                             static_cast<double>(mono_ns() - tick) / 1e6);
                backtrace_symbols_fd(g_stack, g_frames, STDERR_FILENO);
            }
        });
    }
    ~StackSampler() {
        stop = true;
        thread.join();
    }
};

EventLoopWatch::EventLoopWatch(int interval_ms, QObject* parent) : QObject(parent), stamps_(kStamps) {
    timer_.setObjectName(QStringLiteral("eventLoopWatch"));
    timer_.setTimerType(Qt::PreciseTimer);
    timer_.setInterval(interval_ms);
    connect(&timer_, &QTimer::timeout, this, &EventLoopWatch::tick);
    if (const char* env = std::getenv("PILOGGER_GUI_GAP_LOG_MS"); env != nullptr && *env != '\0') {
        setLogOver(std::atoi(env));
    }
    if (const char* env = std::getenv("PILOGGER_GUI_STALL_STACKS_MS"); env != nullptr && std::atoi(env) > 0) {
        sampler_ = std::make_unique<StackSampler>(static_cast<qint64>(std::atoi(env)) * 1'000'000);
    }
}

EventLoopWatch::~EventLoopWatch() {
    stop();
    if (schedstat_fd_ >= 0) ::close(schedstat_fd_);
}

void EventLoopWatch::start() {
    // Opened here, on the watched thread: thread-self names the thread that opens it.
    if (schedstat_fd_ < 0) schedstat_fd_ = ::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    reset();
    timer_.start();
    if (!filtering_ && QCoreApplication::instance() != nullptr) {
        filtering_ = true;
        QCoreApplication::instance()->installEventFilter(this);
        if (auto* dispatcher = QAbstractEventDispatcher::instance(thread())) {
            connect(dispatcher, &QAbstractEventDispatcher::aboutToBlock, this, [this] {
                record(kIdle, nullptr, {}, reinterpret_cast<quintptr>(__builtin_frame_address(0)));
            });
            connect(dispatcher, &QAbstractEventDispatcher::awake, this, [this] {
                record(kAwake, nullptr, {}, reinterpret_cast<quintptr>(__builtin_frame_address(0)));
            });
        }
    }
}

void EventLoopWatch::stop() {
    timer_.stop();
    if (filtering_) {
        filtering_ = false;
        if (QCoreApplication::instance() != nullptr) QCoreApplication::instance()->removeEventFilter(this);
        if (auto* dispatcher = QAbstractEventDispatcher::instance(thread())) disconnect(dispatcher, nullptr, this, nullptr);
    }
}

void EventLoopWatch::reset() {
    clock_.start();
    last_ns_ = 0;
    last_cpu_ns_ = threadCpuNs();
    std::tie(last_voluntary_, last_involuntary_) = contextSwitches();
    last_cpu_wait_ns_ = cpuWaitNs(schedstat_fd_);
    max_gap_ns_ = max_gap_busy_ns_ = max_gap_end_mono_ns_ = sum_ns_ = ticks_ = stalls_ = 0;
    max_gap_preempted_ = max_gap_blocked_ = max_gap_cpu_wait_ns_ = max_own_gap_ns_ = 0;
    max_gap_what_.clear();
    max_own_gap_what_.clear();
    next_stamp_ = stamp_count_ = 0;
    last_cpu_read_ns_ = 0;
    last_cpu_ = last_cpu_ns_;
}

void EventLoopWatch::mark(const char* what) {
    record(kMark, what, {}, reinterpret_cast<quintptr>(__builtin_frame_address(0)));
}

void EventLoopWatch::record(int type, const char* cls, QString name, quintptr sp) {
    if (!clock_.isValid()) return;
    Stamp& s = stamps_[next_stamp_];
    s.ns = clock_.nsecsElapsed();
    // The thread's CPU clock is a system call (about 2 us here, 30 times the wall clock): in a
    // burst of events it is read again only every 200 us, which is all the explanation needs.
    if (s.ns - last_cpu_read_ns_ >= 200'000 || type < 0) {
        last_cpu_ = threadCpuNs();
        last_cpu_read_ns_ = s.ns;
    }
    s.cpu_ns = last_cpu_;
    s.sp = sp;
    s.type = type;
    s.cls = cls;
    s.name = std::move(name);
    next_stamp_ = (next_stamp_ + 1) % stamps_.size();
    stamp_count_ = std::min(stamp_count_ + 1, stamps_.size());
}

bool EventLoopWatch::eventFilter(QObject* watched, QEvent* event) {
    // Only what the GUI thread delivers counts (an application filter sees nothing else).
    record(static_cast<int>(event->type()), watched->metaObject()->className(), watched->objectName(),
           reinterpret_cast<quintptr>(__builtin_frame_address(0)));
    return false;
}

QString EventLoopWatch::explain(qint64 from_ns, qint64 to_ns, qint64 to_cpu_ns, bool detail) const {
    struct Node {
        Node(const Stamp* s, qint64 at, qint64 at_cpu) : stamp(s), start(at), start_cpu(at_cpu) {}
        const Stamp* stamp;  // null: what ran before the first stamp of the gap
        qint64 start, start_cpu, end = 0, end_cpu = 0;
        int depth = 0;
        std::vector<size_t> children;
    };
    std::vector<Node> nodes;
    const Stamp* before = nullptr;
    for (size_t i = 0; i < stamp_count_; ++i) {
        const Stamp& s = stamps_[(next_stamp_ + stamps_.size() - stamp_count_ + i) % stamps_.size()];
        if (s.ns < from_ns) {
            before = &s;
        } else if (s.ns <= to_ns) {
            nodes.emplace_back(&s, s.ns, s.cpu_ns);
        }
    }
    const size_t events = nodes.size();
    // The first stretch belongs to what was current when the gap began (usually the loop
    // returning from the watch's own timer); the CPU clock at from_ns is not known, so it is
    // charged none.
    const qint64 first_cpu = nodes.empty() ? to_cpu_ns : nodes.front().start_cpu;
    nodes.insert(nodes.begin(), Node(before, from_ns, first_cpu));
    nodes.front().end = nodes.size() > 1 ? nodes[1].start : to_ns;
    nodes.front().end_cpu = first_cpu;
    auto is_marker = [](const Stamp* s) { return s == nullptr || s->type < 0; };
    // What the loop itself dispatches (timers, sockets, queued calls, the window system) starts
    // at the outermost level: the stack depth alone would nest one source's events under the
    // previous source's, since one loop iteration dispatches several from different depths.
    auto from_the_loop = [](const Stamp* s) {
        switch (s->type) {
            case QEvent::Timer:
            case QEvent::SockAct:
            case QEvent::SockClose:
            case QEvent::MetaCall:
            case QEvent::Expose: return true;
            default: return false;
        }
    };

    std::vector<size_t> open;  // indices of events still running, outermost first
    std::vector<size_t> top;   // events delivered at the outermost level of the gap
    for (size_t i = 1; i < nodes.size(); ++i) {
        Node& n = nodes[i];
        // A marker lasts until the next stamp whatever its depth; an event until one at its own
        // depth or above.
        const bool outermost = from_the_loop(n.stamp);
        while (!open.empty() &&
               (outermost || is_marker(nodes[open.back()].stamp) || nodes[open.back()].stamp->sp <= n.stamp->sp)) {
            nodes[open.back()].end = n.start;
            nodes[open.back()].end_cpu = n.start_cpu;
            open.pop_back();
        }
        n.depth = static_cast<int>(open.size());
        if (open.empty()) {
            top.push_back(i);
        } else {
            nodes[open.back()].children.push_back(i);
        }
        open.push_back(i);
    }
    for (size_t i : open) {
        nodes[i].end = to_ns;
        nodes[i].end_cpu = to_cpu_ns;
    }

    auto label = [](const Stamp* s) -> QString {
        if (s == nullptr) return QStringLiteral("(before the first event it holds)");
        switch (s->type) {
            case kIdle: return QStringLiteral("waiting for events");
            case kAwake: return QStringLiteral("the event loop between events");
            case kMark: return QString::fromLatin1(s->cls);
            default: break;
        }
        QString text = QString::fromLatin1(s->cls);
        if (!s->name.isEmpty()) text += QLatin1Char('(') + s->name + QLatin1Char(')');
        return text + QLatin1Char(' ') + typeName(s->type);
    };
    auto ms = [](qint64 ns) { return QString::number(static_cast<double>(ns) / 1e6, 'f', 1); };

    if (detail) {
        QStringList lines;
        lines << QStringLiteral("%1 events").arg(events);
        for (const Node& n : nodes) {
            if (n.end - n.start < 1'000'000) continue;
            lines << QStringLiteral("    %1%2 ms (cpu %3) %4")
                         .arg(QString(2 * n.depth, QLatin1Char(' ')), ms(n.end - n.start), ms(n.end_cpu - n.start_cpu),
                              label(n.stamp));
        }
        return lines.join(QLatin1Char('\n'));
    }

    struct Share {
        qint64 wall = 0;
        qint64 cpu = 0;
        int count = 0;
        const Node* biggest_child = nullptr;
    };
    std::map<QString, Share> shares;
    top.insert(top.begin(), 0);
    for (size_t i : top) {
        const Node& n = nodes[i];
        Share& share = shares[label(n.stamp)];
        share.wall += n.end - n.start;
        share.cpu += n.end_cpu - n.start_cpu;
        ++share.count;
        for (size_t c : n.children) {
            const Node& child = nodes[c];
            if (share.biggest_child == nullptr ||
                child.end - child.start > share.biggest_child->end - share.biggest_child->start) {
                share.biggest_child = &child;
            }
        }
    }
    std::vector<std::pair<QString, Share>> sorted(shares.begin(), shares.end());
    std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second.wall > b.second.wall; });
    QStringList parts;
    for (size_t i = 0; i < sorted.size() && i < kShares; ++i) {
        const auto& [what, share] = sorted[i];
        QString part = QStringLiteral("%1 %2 ms (cpu %3)").arg(what, ms(share.wall), ms(share.cpu));
        if (share.count > 1) part += QStringLiteral(" x%1").arg(share.count);
        if (const Node* c = share.biggest_child; c != nullptr && c->end - c->start >= 1'000'000) {
            part += QStringLiteral(", most in %1 %2 ms").arg(label(c->stamp), ms(c->end - c->start));
        }
        parts << part;
    }
    if (sorted.size() > kShares) parts << QStringLiteral("%1 more").arg(sorted.size() - kShares);
    return QStringLiteral("%1 events; ").arg(events) + parts.join(QStringLiteral("; "));
}

void EventLoopWatch::tick() {
    const qint64 now = clock_.nsecsElapsed();
    const qint64 cpu = threadCpuNs();
    const qint64 gap = now - last_ns_;
    const auto [voluntary, involuntary] = contextSwitches();
    const qint64 cpu_wait = cpuWaitNs(schedstat_fd_);
    const qint64 own_gap = std::max<qint64>(0, gap - (cpu_wait - last_cpu_wait_ns_));
    const bool longest = gap > max_gap_ns_;
    const bool longest_own = own_gap > max_own_gap_ns_;
    const bool logged = log_over_ns_ > 0 && gap > log_over_ns_;
    if (longest || longest_own || logged) {
        const QString what = explain(last_ns_, now, cpu, false);
        if (longest_own) {
            max_own_gap_ns_ = own_gap;
            max_own_gap_what_ = what;
        }
        if (longest) {
            max_gap_cpu_wait_ns_ = cpu_wait - last_cpu_wait_ns_;
            max_gap_ns_ = gap;
            max_gap_busy_ns_ = cpu - last_cpu_ns_;
            max_gap_preempted_ = involuntary - last_involuntary_;
            max_gap_blocked_ = voluntary - last_voluntary_;
            max_gap_end_mono_ns_ = mono_ns();
            max_gap_what_ = what;
        }
        if (logged) {
            std::fprintf(stderr,
                         "pilogger-gui: event-loop gap %.1f ms (busy %.1f ms, preempted %lld times, slept %lld times) at "
                         "%.3f s: %s\n",
                         static_cast<double>(gap) / 1e6, static_cast<double>(cpu - last_cpu_ns_) / 1e6,
                         static_cast<long long>(involuntary - last_involuntary_),
                         static_cast<long long>(voluntary - last_voluntary_), static_cast<double>(now) / 1e9,
                         qPrintable(explain(last_ns_, now, cpu, true)));
        }
    }
    // Explaining a gap costs the next one: measured as the loop's own time, like everything else.
    last_ns_ = now;
    last_cpu_ns_ = cpu;
    last_voluntary_ = voluntary;
    last_involuntary_ = involuntary;
    last_cpu_wait_ns_ = cpu_wait;
    if (sampler_) sampler_->last_tick_ns = mono_ns();
    sum_ns_ += gap;
    ++ticks_;
    if (gap > 100'000'000) ++stalls_;
}

}  // namespace pilogger::gui

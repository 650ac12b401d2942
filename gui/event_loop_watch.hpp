// Measures how responsive the GUI thread is: a timer asks to run every interval, and the gap
// between two runs is as long as the event loop was busy (or blocked) plus the interval.
// The longest gap is what a user would feel as a freeze.
//
// It also says what ran during the longest gap: every event the GUI thread delivers (an
// application event filter) and every time the loop goes to sleep or wakes is stamped with
// the wall clock, the thread's CPU clock and the stack depth. An event lasts until the next
// stamp at its own depth or above (one delivered from inside it is deeper on the stack; what the
// loop dispatches itself, timers, sockets, queued calls and window-system events, always starts
// at the top), so the gap is split among the events the loop delivered, each with what ran
// inside it. Time spent outside any event (code that runs before the loop is entered, e.g. a
// test's own steps) is named after the last mark().
#pragma once

#include <QElapsedTimer>
#include <QEvent>
#include <QObject>
#include <QString>
#include <QTimer>

#include <memory>
#include <vector>

namespace pilogger::gui {

class EventLoopWatch : public QObject {
    Q_OBJECT
public:
    explicit EventLoopWatch(int interval_ms = 10, QObject* parent = nullptr);
    ~EventLoopWatch() override;
    void start();
    void stop();
    // start() was called (it may have been stopped since).
    bool started() const { return clock_.isValid(); }
    void reset();
    double maxGapMs() const { return static_cast<double>(max_gap_ns_) / 1e6; }
    // CPU time the GUI thread used during the longest gap: close to the gap, the GUI was busy;
    // far below it, the thread was ready but waited for a CPU (or slept in a blocking call).
    double maxGapBusyMs() const { return static_cast<double>(max_gap_busy_ns_) / 1e6; }
    // How often the GUI thread was taken off its CPU during the longest gap while it could run
    // (preempted: it waited for a CPU), and how often it went to sleep (blocked, or the loop idle).
    qint64 maxGapPreempted() const { return max_gap_preempted_; }
    qint64 maxGapBlocked() const { return max_gap_blocked_; }
    // Time the GUI thread spent waiting for a CPU while it could run, during the longest gap
    // (the kernel's run-queue wait, /proc/thread-self/schedstat; 0 where the kernel has none).
    double maxGapCpuWaitMs() const { return static_cast<double>(max_gap_cpu_wait_ns_) / 1e6; }
    // The longest gap not counting waits for a CPU: how long the GUI itself (its work, or a call
    // that blocked) kept the loop from coming round. On a machine with CPUs to spare it is the
    // longest gap; on a starved one, it leaves out what any program would suffer there.
    double maxOwnGapMs() const { return static_cast<double>(max_own_gap_ns_) / 1e6; }
    const QString& maxOwnGapWhat() const { return max_own_gap_what_; }
    // When the longest gap ended, CLOCK_MONOTONIC ns (to line it up with other timestamps).
    qint64 maxGapEndMonoNs() const { return max_gap_end_mono_ns_; }
    // What took the longest gap, in words: the biggest shares of it, each with the event (its
    // receiver's class and object name), wall and CPU milliseconds.
    const QString& maxGapWhat() const { return max_gap_what_; }
    double meanGapMs() const { return ticks_ > 0 ? static_cast<double>(sum_ns_) / 1e6 / static_cast<double>(ticks_) : 0; }
    qint64 ticks() const { return ticks_; }
    // Gaps longer than 100 ms.
    qint64 stalls() const { return stalls_; }
    double watchedSeconds() const { return clock_.isValid() ? static_cast<double>(clock_.nsecsElapsed()) / 1e9 : 0; }
    // Names the code that runs from here until the next event (outside the event loop).
    void mark(const char* what);
    // Every gap longer than ms is printed to stderr with what took it (0: none). The
    // environment variable PILOGGER_GUI_GAP_LOG_MS sets it too.
    void setLogOver(int ms) { log_over_ns_ = static_cast<qint64>(ms) * 1'000'000; }
    // With PILOGGER_GUI_STALL_STACKS_MS set, a helper thread also prints where the GUI thread is
    // (its call stack) whenever the loop has not come round for that long: what a gap is spent in
    // when no event explains it (a blocking call inside Qt, say).

protected:
    bool eventFilter(QObject* watched, QEvent* event) override;

private:
    struct Stamp {
        qint64 ns = 0;
        qint64 cpu_ns = 0;
        quintptr sp = 0;  // the stack address it was stamped at: deeper is lower
        int type = 0;     // a QEvent::Type, or one of the kinds below
        const char* cls = nullptr;
        QString name;
    };
    static constexpr int kIdle = -1;   // the dispatcher is about to sleep
    static constexpr int kAwake = -2;  // it woke (or returned to its caller)
    static constexpr int kMark = -3;   // mark(): cls is the text

    void tick();
    void record(int type, const char* cls, QString name, quintptr sp);
    // detail: every event of the gap that took at least a millisecond, one line each, nested
    // ones indented under the one they ran in; else the biggest shares on one line.
    QString explain(qint64 from_ns, qint64 to_ns, qint64 to_cpu_ns, bool detail) const;

    QTimer timer_;
    QElapsedTimer clock_;
    qint64 last_ns_ = 0;
    qint64 last_cpu_ns_ = 0;
    qint64 last_voluntary_ = 0;
    qint64 last_involuntary_ = 0;
    qint64 max_gap_preempted_ = 0;
    qint64 max_gap_blocked_ = 0;
    qint64 max_gap_ns_ = 0;
    qint64 max_gap_busy_ns_ = 0;
    qint64 max_gap_end_mono_ns_ = 0;
    int schedstat_fd_ = -1;  // the GUI thread's /proc/thread-self/schedstat, read every tick
    qint64 last_cpu_wait_ns_ = 0;
    qint64 max_gap_cpu_wait_ns_ = 0;
    qint64 max_own_gap_ns_ = 0;
    QString max_own_gap_what_;
    qint64 sum_ns_ = 0;
    qint64 ticks_ = 0;
    qint64 stalls_ = 0;
    qint64 log_over_ns_ = 0;
    QString max_gap_what_;
    std::vector<Stamp> stamps_;  // a ring
    struct StackSampler;
    std::unique_ptr<StackSampler> sampler_;
    qint64 last_cpu_read_ns_ = 0;
    qint64 last_cpu_ = 0;
    size_t next_stamp_ = 0;
    size_t stamp_count_ = 0;
    bool filtering_ = false;
};

}  // namespace pilogger::gui

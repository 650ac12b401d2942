// Measures how responsive the GUI thread is: a timer asks to run every interval, and the gap
// between two runs is as long as the event loop was busy (or blocked) plus the interval.
// The longest gap is what a user would feel as a freeze.
#pragma once

#include <QElapsedTimer>
#include <QObject>
#include <QTimer>

namespace pilogger::gui {

class EventLoopWatch : public QObject {
    Q_OBJECT
public:
    explicit EventLoopWatch(int interval_ms = 10, QObject* parent = nullptr);
    void start();
    void stop();
    void reset();
    double maxGapMs() const { return static_cast<double>(max_gap_ns_) / 1e6; }
    // CPU time the GUI thread used during the longest gap: close to the gap, the GUI was busy;
    // far below it, the thread was ready but waited for a CPU (or slept in a blocking call).
    double maxGapBusyMs() const { return static_cast<double>(max_gap_busy_ns_) / 1e6; }
    // When the longest gap ended, CLOCK_MONOTONIC ns (to line it up with other timestamps).
    qint64 maxGapEndMonoNs() const { return max_gap_end_mono_ns_; }
    double meanGapMs() const { return ticks_ > 0 ? static_cast<double>(sum_ns_) / 1e6 / static_cast<double>(ticks_) : 0; }
    qint64 ticks() const { return ticks_; }
    // Gaps longer than 100 ms.
    qint64 stalls() const { return stalls_; }
    double watchedSeconds() const { return clock_.isValid() ? static_cast<double>(clock_.nsecsElapsed()) / 1e9 : 0; }

private:
    void tick();

    QTimer timer_;
    QElapsedTimer clock_;
    qint64 last_ns_ = 0;
    qint64 last_cpu_ns_ = 0;
    qint64 max_gap_ns_ = 0;
    qint64 max_gap_busy_ns_ = 0;
    qint64 max_gap_end_mono_ns_ = 0;
    qint64 sum_ns_ = 0;
    qint64 ticks_ = 0;
    qint64 stalls_ = 0;
};

}  // namespace pilogger::gui

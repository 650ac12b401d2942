#include "event_loop_watch.hpp"

#include "clock.hpp"

#include <time.h>

#include <algorithm>

namespace pilogger::gui {

namespace {
qint64 threadCpuNs() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<qint64>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
}  // namespace

EventLoopWatch::EventLoopWatch(int interval_ms, QObject* parent) : QObject(parent) {
    timer_.setTimerType(Qt::PreciseTimer);
    timer_.setInterval(interval_ms);
    connect(&timer_, &QTimer::timeout, this, &EventLoopWatch::tick);
}

void EventLoopWatch::start() {
    reset();
    timer_.start();
}

void EventLoopWatch::stop() { timer_.stop(); }

void EventLoopWatch::reset() {
    clock_.start();
    last_ns_ = 0;
    last_cpu_ns_ = threadCpuNs();
    max_gap_ns_ = max_gap_busy_ns_ = max_gap_end_mono_ns_ = sum_ns_ = ticks_ = stalls_ = 0;
}

void EventLoopWatch::tick() {
    const qint64 now = clock_.nsecsElapsed();
    const qint64 cpu = threadCpuNs();
    const qint64 gap = now - last_ns_;
    if (gap > max_gap_ns_) {
        max_gap_ns_ = gap;
        max_gap_busy_ns_ = cpu - last_cpu_ns_;
        max_gap_end_mono_ns_ = mono_ns();
    }
    last_ns_ = now;
    last_cpu_ns_ = cpu;
    sum_ns_ += gap;
    ++ticks_;
    if (gap > 100'000'000) ++stalls_;
}

}  // namespace pilogger::gui

#include "latency_trace.hpp"

#include "clock.hpp"

#include <QEvent>

#include <algorithm>

namespace pilogger::gui {

LatencyTrace::LatencyTrace(const QString& path, QObject* parent) : QObject(parent), file_(path) {
    if (!file_.open(QIODevice::WriteOnly | QIODevice::Append | QIODevice::Text)) return;
    // A hidden widget never paints: its lines go out without a paint time after a second.
    flush_timer_.setInterval(1000);
    connect(&flush_timer_, &QTimer::timeout, this, &LatencyTrace::flushOld);
    flush_timer_.start();
}

void LatencyTrace::applied(json fields, qint64 received_ns, QWidget* shown_in) {
    if (!file_.isOpen()) return;
    fields["received_ns"] = received_ns;
    const qint64 now = mono_ns();
    fields["applied_ns"] = now;
    if (std::find(watched_.begin(), watched_.end(), shown_in) == watched_.end()) {
        shown_in->installEventFilter(this);
        watched_.push_back(shown_in);
    }
    pending_.push_back(Pending{std::move(fields), shown_in, now});
}

bool LatencyTrace::eventFilter(QObject* watched, QEvent* event) {
    if (event->type() == QEvent::Paint && !pending_.empty()) {
        // Stamped before the paint itself runs: the moment the widget starts drawing the change.
        const qint64 now = mono_ns();
        for (auto it = pending_.begin(); it != pending_.end();) {
            if (it->widget == watched) {
                write(std::move(it->fields), now);
                it = pending_.erase(it);
            } else {
                ++it;
            }
        }
    }
    return QObject::eventFilter(watched, event);
}

void LatencyTrace::flushOld() {
    const qint64 now = mono_ns();
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (now - it->applied_ns > 1'000'000'000) {
            write(std::move(it->fields), 0);
            it = pending_.erase(it);
        } else {
            ++it;
        }
    }
    file_.flush();
}

void LatencyTrace::write(json fields, qint64 painted_ns) {
    fields["painted_ns"] = painted_ns == 0 ? json(nullptr) : json(painted_ns);
    const std::string line = fields.dump() + "\n";
    file_.write(line.data(), static_cast<qint64>(line.size()));
}

}  // namespace pilogger::gui


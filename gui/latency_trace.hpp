// For the benchmark: when did a supervisor event reach the screen? Each traced event is written
// as one JSON line with its own timestamp (if it has one), when its bytes were read, when the
// widget showing it was updated, and when that widget next painted. All times are
// CLOCK_MONOTONIC nanoseconds, the supervisor's time base, so they compare directly.
#pragma once

#include "ndjson.hpp"

#include <QFile>
#include <QObject>
#include <QPointer>
#include <QTimer>
#include <QWidget>

#include <vector>

namespace pilogger::gui {

class LatencyTrace : public QObject {
    Q_OBJECT
public:
    explicit LatencyTrace(const QString& path, QObject* parent = nullptr);
    bool isOpen() const { return file_.isOpen(); }
    // The event was applied to `shown_in` just now; the line is written at its next paint.
    void applied(json fields, qint64 received_ns, QWidget* shown_in);

protected:
    bool eventFilter(QObject* watched, QEvent* event) override;

private:
    struct Pending {
        json fields;
        QPointer<QWidget> widget;
        qint64 applied_ns;
    };
    void write(json fields, qint64 painted_ns);
    void flushOld();

    QFile file_;
    std::vector<Pending> pending_;
    std::vector<QWidget*> watched_;
    QTimer flush_timer_;
};

}  // namespace pilogger::gui

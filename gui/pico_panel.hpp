// The Pico W sync link: link state, firmware, clock offset and drift, LED, lost lines.
// Reads the "pico" object of the supervisor's status (null when the config has no pico:).
#pragma once

#include <QWidget>

class QFormLayout;
class QLabel;

namespace pilogger::gui {

class StateModel;

class PicoPanel : public QWidget {
    Q_OBJECT
public:
    explicit PicoPanel(const StateModel& model, QWidget* parent = nullptr);
    void refresh();
    // The text of one row, by its key (link, device, firmware, offset, drift, residual, led,
    // lost, error), for tests.
    QString rowText(const QString& key) const;

private:
    QLabel* row(const QString& key, const QString& title);

    const StateModel& model_;
    QLabel* absent_;
    QWidget* details_;
    QFormLayout* form_;
    QList<QPair<QString, QLabel*>> rows_;
};

}  // namespace pilogger::gui

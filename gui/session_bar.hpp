// The bar at the top: which config and data folder, disk space and time left, the session and
// trial controls with their labels, counters and elapsed times.
#pragma once

#include <QWidget>

class QLabel;
class QLineEdit;
class QPushButton;

namespace pilogger::gui {

class StateModel;

class SessionBar : public QWidget {
    Q_OBJECT
public:
    explicit SessionBar(const StateModel& model, QWidget* parent = nullptr);

    // Redraws from the model (also every 250 ms while a session is open, for the clocks).
    void refresh();
    // The config a supervisor would be started with, shown while none runs.
    void setChosenConfig(const QString& path);
    // While a session or trial command is on its way the buttons wait for its answer.
    void setBusy(bool busy);
    void setStarting(bool starting);

    QString sessionLabel() const;
    QString trialLabel() const;
    void setSessionLabel(const QString& label);
    void setTrialLabel(const QString& label);
    QPushButton* recordButton() const { return record_; }
    QPushButton* sessionButton() const { return session_button_; }
    QLabel* trialStateLabel() const { return clock_; }

Q_SIGNALS:
    void chooseConfigClicked();
    void startSupervisorClicked();
    void sessionToggleClicked();
    void recordToggleClicked();

private:
    const StateModel& model_;
    QString chosen_config_;
    bool busy_ = false;
    bool starting_ = false;
    QLabel* config_;
    QPushButton* choose_;
    QPushButton* start_;
    QLabel* data_;
    QLabel* disk_;
    QLineEdit* session_label_;
    QPushButton* session_button_;
    QLineEdit* trial_label_;
    QPushButton* record_;
    QLabel* clock_;
};

}  // namespace pilogger::gui

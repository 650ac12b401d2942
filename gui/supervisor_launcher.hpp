// Starts a supervisor when none runs: `pilogger run --config FILE`, found next to pilogger-gui,
// started detached in its own session so closing or killing the GUI never stops it. Its output
// goes to a log file in the runtime folder; the client connects once the socket appears.
#pragma once

#include <QObject>
#include <QString>
#include <QTimer>

namespace pilogger::gui {

class SupervisorLauncher : public QObject {
    Q_OBJECT
public:
    explicit SupervisorLauncher(QObject* parent = nullptr);

    // Checks the config with the CLI's loader first. False (and why) when it cannot start.
    bool start(const QString& config_file, QString* why);
    bool starting() const { return watch_.isActive(); }
    // The client is connected: stop watching.
    void connected();
    qint64 pid() const { return pid_; }
    const QString& logPath() const { return log_path_; }

    // pilogger next to this executable, else the one on PATH.
    static QString piloggerExecutable();

Q_SIGNALS:
    // It exited before its control socket answered, or did not answer in time.
    void failed(const QString& why);

private:
    void check();
    QString logTail() const;

    QTimer watch_;
    qint64 pid_ = 0;
    qint64 started_ms_ = 0;
    QString log_path_;
};

}  // namespace pilogger::gui

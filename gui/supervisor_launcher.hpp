// Starts a supervisor when none runs: `pilogger run --config FILE`, found next to pilogger-gui,
// started detached in its own session so closing or killing the GUI never stops it. Its output
// goes to a log file in the runtime folder; the client connects once the socket appears.
// Checking the config (a file read and a YAML parse) and starting the process happen on a pool
// thread, never on the GUI thread.
#pragma once

#include <QObject>
#include <QString>
#include <QTimer>

namespace pilogger::gui {

class SupervisorLauncher : public QObject {
    Q_OBJECT
public:
    explicit SupervisorLauncher(QObject* parent = nullptr);

    // Checks the config with the CLI's loader first, then starts it, both off the GUI thread:
    // launched or failed follows. False (and why) only for what is known at once.
    bool start(const QString& config_file, QString* why);
    bool starting() const { return launching_ || watch_.isActive(); }
    // The client is connected: stop watching.
    void connected();
    qint64 pid() const { return pid_; }
    const QString& logPath() const { return log_path_; }

    // pilogger next to this executable, else the one on PATH.
    static QString piloggerExecutable();

Q_SIGNALS:
    // The process runs; its output goes to log_path.
    void launched(const QString& log_path);
    // The config was refused or the process could not start, it exited before its control socket
    // answered, or it did not answer in time; why is a sentence to show as it is.
    void failed(const QString& why);

private:
    void check();
    // The last lines of the log (read off the GUI thread).
    static QString logTail(const QString& path);

    QTimer watch_;
    bool launching_ = false;       // the pool thread is checking the config or starting it
    bool launch_abandoned_ = false;  // connected meanwhile: no need to watch what it started
    qint64 pid_ = 0;
    qint64 started_ms_ = 0;
    QString log_path_;
};

}  // namespace pilogger::gui

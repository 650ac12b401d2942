#include "supervisor_launcher.hpp"

#include "config.hpp"
#include "off_thread.hpp"
#include "paths.hpp"

#include <QDateTime>
#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QStandardPaths>

#include <signal.h>

#include <cerrno>

namespace pilogger::gui {

namespace {
constexpr int kGiveUpMs = 20000;  // modules that open devices take a while, the socket does not
}

SupervisorLauncher::SupervisorLauncher(QObject* parent) : QObject(parent) {
    watch_.setInterval(250);
    connect(&watch_, &QTimer::timeout, this, &SupervisorLauncher::check);
}

QString SupervisorLauncher::piloggerExecutable() {
    const QString beside = QString::fromStdString(executable_dir()) + QStringLiteral("/pilogger");
    if (QFileInfo(beside).isExecutable()) return beside;
    return QStandardPaths::findExecutable(QStringLiteral("pilogger"));
}

bool SupervisorLauncher::start(const QString& config_file, QString* why) {
    if (starting()) {
        *why = tr("a supervisor is already being started");
        return false;
    }
    if (config_file.isEmpty()) {
        *why = tr("choose a config file first");
        return false;
    }
    launching_ = true;
    launch_abandoned_ = false;
    struct Launch {
        qint64 pid = 0;
        QString log_path;
        QString why;
    };
    runOffThread(
        this,
        [config_file] {
            Launch r;
            try {
                load_config_file(config_file.toStdString());
            } catch (const std::exception& e) {
                r.why = QString::fromStdString(e.what());
                return r;
            }
            const QString program = piloggerExecutable();
            if (program.isEmpty()) {
                r.why = tr("cannot find the pilogger executable next to pilogger-gui or on PATH");
                return r;
            }
            try {
                r.log_path = QString::fromStdString(runtime_dir()) + QStringLiteral("/supervisor-from-gui.log");
            } catch (const std::exception& e) {
                r.why = QString::fromStdString(e.what());
                return r;
            }
            QProcess process;
            process.setProgram(program);
            process.setArguments({QStringLiteral("run"), QStringLiteral("--config"), QFileInfo(config_file).absoluteFilePath()});
            process.setStandardInputFile(QProcess::nullDevice());
            process.setStandardOutputFile(r.log_path, QIODevice::Append);
            process.setStandardErrorFile(r.log_path, QIODevice::Append);
            // Detached: a new session of its own (Qt forks twice and calls setsid), so neither the
            // GUI's exit nor a signal to its process group reaches the recording.
            if (!process.startDetached(&r.pid)) r.why = tr("cannot start %1: %2").arg(program, process.errorString());
            return r;
        },
        [this](const Launch& r) {
            launching_ = false;
            if (!r.why.isEmpty()) {
                Q_EMIT failed(tr("Cannot start a supervisor: %1").arg(r.why));
                return;
            }
            pid_ = r.pid;
            log_path_ = r.log_path;
            started_ms_ = QDateTime::currentMSecsSinceEpoch();
            if (!launch_abandoned_) watch_.start();
            Q_EMIT launched(log_path_);
        });
    return true;
}

void SupervisorLauncher::connected() {
    watch_.stop();
    launch_abandoned_ = launching_;
}

void SupervisorLauncher::check() {
    // Signal 0 only asks whether the process is still there (the init process reaps it).
    if (pid_ > 0 && ::kill(static_cast<pid_t>(pid_), 0) != 0 && errno == ESRCH) {
        watch_.stop();
        runOffThread(this, [path = log_path_] { return logTail(path); },
                     [this](const QString& tail) { Q_EMIT failed(tr("the supervisor exited at once: %1").arg(tail)); });
        return;
    }
    if (QDateTime::currentMSecsSinceEpoch() - started_ms_ > kGiveUpMs) {
        watch_.stop();
        Q_EMIT failed(tr("the supervisor (pid %1) did not open its control socket within %2 s; its output is in %3")
                          .arg(pid_)
                          .arg(kGiveUpMs / 1000)
                          .arg(log_path_));
    }
}

QString SupervisorLauncher::logTail(const QString& path) {
    // The last lines it wrote say why (a bad config, another supervisor already running ...).
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) return tr("no output");
    const qint64 size = f.size();
    f.seek(std::max<qint64>(0, size - 600));
    QStringList lines = QString::fromUtf8(f.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    while (lines.size() > 3) lines.removeFirst();
    return lines.isEmpty() ? tr("no output") : lines.join(QStringLiteral(" | "));
}

}  // namespace pilogger::gui

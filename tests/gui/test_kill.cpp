// pilogger-gui as its own process, the way a user runs it: given --config and no supervisor
// running, it starts one (detached, in a session of its own). A trial starts; once the window
// shows it, the window is killed with SIGKILL. The recording must go on untouched: the trial
// still open, the modules still recording and writing, the supervisor alive; then it stops
// cleanly with every file in place.
#include "support.hpp"

#include <QStandardPaths>

#include <signal.h>

#include <fstream>

using namespace pilogger;

namespace {

// Field 6 of /proc/<pid>/stat: the session id.
long sessionOf(qint64 pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(f, line);
    const auto close = line.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream rest(line.substr(close + 2));
    std::string state;
    long ppid = 0, pgrp = 0, session = -1;
    rest >> state >> ppid >> pgrp >> session;
    return session;
}

bool alive(qint64 pid) { return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) == 0; }

// Bytes the recording modules have written so far (their stats), and how many record.
std::pair<int64_t, int> written(const json& status) {
    int64_t bytes = 0;
    int recording = 0;
    for (const auto& m : status.at("modules")) {
        if (m.value("state", std::string()) == "recording") ++recording;
        const json stats = m.value("stats", json::object());
        if (stats.is_object() && stats.contains("bytes_written") && stats["bytes_written"].is_number()) {
            bytes += stats["bytes_written"].get<int64_t>();
        }
    }
    return {bytes, recording};
}

}  // namespace

class GuiKill : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        const QString problem = rig_.make();
        QVERIFY2(problem.isEmpty(), qPrintable(problem));
    }

    void killedWindowLeavesTheRecordingRunning() {
        const QString trace = rig_.tmp.filePath(QStringLiteral("trace.jsonl"));
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert(QStringLiteral("XDG_RUNTIME_DIR"), rig_.runtime);
        env.insert(QStringLiteral("XDG_CONFIG_HOME"), rig_.tmp.filePath(QStringLiteral("config")));  // its QSettings
        gui_.setProcessEnvironment(env);
        gui_.setProgram(gui_test::bin(QStringLiteral("pilogger-gui")));
        gui_.setArguments({QStringLiteral("--config"), rig_.config, QStringLiteral("--trace-latency"), trace,
                           QStringLiteral("--size"), QStringLiteral("1024x640")});
        gui_.setStandardOutputFile(rig_.tmp.filePath(QStringLiteral("gui.out")));
        gui_.setStandardErrorFile(rig_.tmp.filePath(QStringLiteral("gui.out")), QIODevice::Append);
        gui_.start();
        QVERIFY(gui_.waitForStarted());

        // No supervisor runs: the window starts one with the config.
        qputenv("XDG_RUNTIME_DIR", rig_.runtime.toUtf8());
        QTRY_VERIFY_WITH_TIMEOUT(rig_.status().has_value(), 20000);
        QTRY_VERIFY_WITH_TIMEOUT(gui_test::allModules(*rig_.status(), "ready"), 30000);
        json status = *rig_.status();
        QVERIFY(status["session"].is_object());
        supervisor_pid_ = status["supervisor"]["pid"].get<qint64>();
        QVERIFY(sessionOf(supervisor_pid_) > 0);
        QVERIFY2(sessionOf(supervisor_pid_) != sessionOf(gui_.processId()),
                 "the supervisor shares the window's session: a hang-up would reach it");

        // Once the window is subscribed, a trial; wait until the window has drawn it.
        auto traced = [&](const char* what) {
            QFile f(trace);
            return f.open(QIODevice::ReadOnly) && f.readAll().contains(QByteArray("\"what\":\"") + what + "\"");
        };
        QTRY_VERIFY_WITH_TIMEOUT(traced("subscribed"), 15000);
        rig_.request("trial_start", json{{"label", "kill test"}});
        QTRY_VERIFY_WITH_TIMEOUT(traced("trial"), 10000);
        QTest::qWait(1000);

        // kill -9 the window.
        ::kill(static_cast<pid_t>(gui_.processId()), SIGKILL);
        QVERIFY(gui_.waitForFinished(10000));
        QCOMPARE(gui_.exitStatus(), QProcess::CrashExit);

        // The recording goes on: same trial, modules recording, bytes still growing. Checked once
        // the supervisor has seen the window's connection go (only the status client is left).
        QTRY_COMPARE_WITH_TIMEOUT(rig_.controlClients(), int64_t{1}, 10000);
        status = *rig_.status();
        QVERIFY2(status["trial"].is_object(), "the trial ended with the window");
        QCOMPARE(status["trial"]["number"].get<int>(), 1);
        const auto [bytes_before, recording] = written(status);
        QVERIFY(recording >= 1);
        const double elapsed_before = status["trial"]["elapsed_s"].get<double>();
        // Until the trial has run on 1.5 s more on the supervisor's clock.
        QTRY_VERIFY_WITH_TIMEOUT((status = *rig_.status(), !status["trial"].is_object() ||
                                  status["trial"]["elapsed_s"].get<double>() > elapsed_before + 1.5), 15000);
        QVERIFY(alive(supervisor_pid_));
        QVERIFY(status["trial"].is_object());
        QVERIFY(status["trial"]["elapsed_s"].get<double>() > elapsed_before + 1.5);
        const auto [bytes_after, recording_after] = written(status);
        QCOMPARE(recording_after, recording);
        if (bytes_before > 0) QVERIFY2(bytes_after > bytes_before, "nothing was written after the window died");

        // Stop and shut down; the files are whole.
        rig_.request("trial_stop");
        rig_.request("shutdown");
        QTRY_VERIFY_WITH_TIMEOUT(!alive(supervisor_pid_), 60000);
        const QString dir = rig_.sessionDir();
        QVERIFY(!dir.isEmpty());
        const json events = gui_test::readCsvWithPython(dir + QStringLiteral("/events.csv"));
        int starts = 0, stops = 0;
        for (const auto& row : events) {
            starts += row.value("event", std::string()) == "trial_start" ? 1 : 0;
            stops += row.value("event", std::string()) == "trial_stop" ? 1 : 0;
        }
        QCOMPARE(starts, 1);
        QCOMPARE(stops, 1);
        for (const auto& m : status["modules"]) {
            if (m.value("type", std::string()) != "camera") continue;
            const QString video = QStringLiteral("%1/camera/%2/trial_001.mp4").arg(dir, QString::fromStdString(m["name"].get<std::string>()));
            QVERIFY2(QFileInfo(video).size() > 0, qPrintable(video));
        }
    }

    void cleanupTestCase() {
        if (gui_.state() != QProcess::NotRunning) {
            gui_.kill();
            gui_.waitForFinished(5000);
        }
        // A supervisor left by a failed check: ask it to stop, then make sure.
        if (auto status = rig_.status()) supervisor_pid_ = (*status)["supervisor"]["pid"].get<qint64>();
        if (alive(supervisor_pid_)) {
            try {
                rig_.request("shutdown");
            } catch (const std::exception&) {
            }
            for (int i = 0; i < 100 && alive(supervisor_pid_); ++i) QTest::qWait(100);
            if (alive(supervisor_pid_)) ::kill(static_cast<pid_t>(supervisor_pid_), SIGKILL);
        }
    }

private:
    gui_test::Rig rig_;
    QProcess gui_;
    qint64 supervisor_pid_ = 0;
};

QTEST_MAIN(GuiKill)
#include "test_kill.moc"

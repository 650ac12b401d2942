// End to end, in this process: a real supervisor with config/demo.yaml, and the main window
// driving it the way a user does. Record a trial with the Record button, type a note and press
// Enter, close the window in the middle of the trial and open it again (the trial and the note
// are still there), stop with the button; then the session's files must be on disk and the note
// must read back with Python's csv module. The event loop is watched the whole time, from the
// moment each window is shown (its first layout and paint and the first status filling every
// panel included): no gap between two 10 ms timer runs may reach 100 ms.
#include "event_loop_watch.hpp"
#include "json_util.hpp"
#include "main_window.hpp"
#include "notes_panel.hpp"
#include "preview_panel.hpp"
#include "session_bar.hpp"
#include "state_model.hpp"
#include "support.hpp"

#include <QCoreApplication>
#include <QPushButton>
#include <QStandardPaths>
#include <QTreeWidget>

#include <algorithm>
#include <csignal>

using namespace pilogger;
using namespace pilogger::gui;

namespace {
const QString kNoteLine1 = QStringLiteral("GUI note, with \"quotes\"");
const QString kNoteLine2 = QStringLiteral("and a second line");
const QString kNote = kNoteLine1 + QLatin1Char('\n') + kNoteLine2;

bool modulesUp(const StateModel& m) {
    if (m.modules().empty()) return false;
    for (const auto& mod : m.modules()) {
        if (flag(mod, "enabled", true) && str(mod, "state") != "ready") return false;
    }
    return true;
}

bool hasNote(const StateModel& m, const QString& text) {
    for (const auto& n : m.notes()) {
        if (n.text == text) return true;
    }
    return false;
}
}  // namespace

class GuiSession : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        const QString problem = rig_.make();
        QVERIFY2(problem.isEmpty(), qPrintable(problem));
        qputenv("XDG_RUNTIME_DIR", rig_.runtime.toUtf8());
        // Through pilogger-spawn: SIGKILL if this test dies half-way, so no supervisor records on.
        const QString pilogger = gui_test::bin(QStringLiteral("pilogger"));
        supervisor_.setProgram(gui_test::bin(QStringLiteral("pilogger-spawn")));
        supervisor_.setArguments({QString::number(SIGKILL), QString::number(QCoreApplication::applicationPid()), pilogger,
                                  pilogger, QStringLiteral("run"), QStringLiteral("--config"), rig_.config});
        supervisor_.setStandardOutputFile(rig_.tmp.filePath(QStringLiteral("supervisor.out")));
        supervisor_.setStandardErrorFile(rig_.tmp.filePath(QStringLiteral("supervisor.out")), QIODevice::Append);
        supervisor_.start();
        QVERIFY(supervisor_.waitForStarted());
        QTRY_VERIFY_WITH_TIMEOUT(QFileInfo::exists(rig_.socket), 15000);
    }

    void recordNoteAndStopFromTheWindow() {
        GuiOptions options;
        options.socket_path = rig_.socket;
        options.start_supervisor = false;
        options.watch_event_loop = true;
        options.window_size = QSize(1024, 640);

        auto window = std::make_unique<MainWindow>(options);
        window->show();
        QVERIFY(QTest::qWaitForWindowExposed(window.get()));
        QTRY_VERIFY_WITH_TIMEOUT(window->model()->connected(), 10000);
        QTRY_VERIFY_WITH_TIMEOUT(window->model()->session().is_object(), 10000);  // `pilogger run` opened one
        QTRY_VERIFY_WITH_TIMEOUT(modulesUp(*window->model()), 30000);
        QVERIFY(!window->model()->recording());

        // Record, with a label.
        window->sessionBar()->setTrialLabel(QStringLiteral("gui trial"));
        QPushButton* record = window->sessionBar()->recordButton();
        QTRY_VERIFY_WITH_TIMEOUT(record->isEnabled(), 5000);  // the bar follows the model within a few turns
        QTest::mouseClick(record, Qt::LeftButton);
        QTRY_VERIFY_WITH_TIMEOUT(window->model()->recording(), 10000);
        QTRY_VERIFY_WITH_TIMEOUT(record->isEnabled() && record->text() == QStringLiteral("Stop trial"), 20000);
        QCOMPARE(integer(window->model()->trial(), "number"), int64_t{1});

        // Camera previews arrive (when the demo has cameras).
        // A copy: the model replaces its modules while QTRY runs the event loop.
        const json modules = window->model()->modules();
        for (const auto& m : modules) {
            if (!PreviewPanel::hasPreview(m)) continue;
            const QString name = qstr(m, "name");
            QTRY_VERIFY_WITH_TIMEOUT(window->previewPanel()->tile(name) != nullptr, 5000);
            QTRY_VERIFY_WITH_TIMEOUT(window->previewPanel()->tile(name) != nullptr &&
                                         window->previewPanel()->tile(name)->framesShown() >= 3,
                                     15000);
        }
        // Not a wait for an event: the window runs on with its previews for a while, its event loop
        // watched (the check below covers the window's whole run).
        QTest::qWait(1500);

        // A note: Shift+Enter for the second line, Enter adds it.
        NoteEdit* edit = window->notesPanel()->edit();
        edit->setFocus();
        QTest::keyClicks(edit, kNoteLine1);
        QTest::keyClick(edit, Qt::Key_Return, Qt::ShiftModifier);
        QTest::keyClicks(edit, kNoteLine2);
        QTest::keyClick(edit, Qt::Key_Return);
        QVERIFY(edit->toPlainText().isEmpty());
        QTRY_VERIFY_WITH_TIMEOUT(hasNote(*window->model(), kNote), 10000);
        QTreeWidget* history = window->notesPanel()->history();
        // The panels follow the model within a few event-loop turns.
        QTRY_VERIFY_WITH_TIMEOUT(history->topLevelItem(0) != nullptr && history->topLevelItem(0)->toolTip(3) == kNote, 5000);
        QCOMPARE(history->topLevelItem(0)->text(2), QStringLiteral("1"));  // made during trial 1
        QTest::qWait(1000);  // the window runs on, watched

        checkEventLoop(*window, "first window");
        if (QTest::currentTestFailed()) return;

        // Close the window in the middle of the trial: the recording goes on.
        window->quitWithoutAsking();
        window.reset();
        // Once the supervisor has seen the window's connection go, only the status client is left.
        QTRY_VERIFY_WITH_TIMEOUT(rig_.controlClients() == 1, 10000);
        auto status = rig_.status();
        QVERIFY(status);
        QVERIFY2((*status)["trial"].is_object(), "the trial stopped with the window");

        // Open it again: it shows the session as it is, the note read back from the session's file.
        auto again = std::make_unique<MainWindow>(options);
        again->show();
        QVERIFY(QTest::qWaitForWindowExposed(again.get()));
        QTRY_VERIFY_WITH_TIMEOUT(again->model()->connected(), 10000);
        QVERIFY(again->model()->recording());
        QTRY_VERIFY_WITH_TIMEOUT(hasNote(*again->model(), kNote), 10000);
        QTreeWidget* again_history = again->notesPanel()->history();
        QTRY_VERIFY_WITH_TIMEOUT(again_history->topLevelItem(0) != nullptr && again_history->topLevelItem(0)->toolTip(3) == kNote,
                                 5000);
        record = again->sessionBar()->recordButton();
        QTRY_VERIFY_WITH_TIMEOUT(record->text() == QStringLiteral("Stop trial"), 5000);
        QTest::qWait(1000);  // the window runs on, watched

        // Stop.
        QTest::mouseClick(record, Qt::LeftButton);
        QTRY_VERIFY_WITH_TIMEOUT(!again->model()->recording(), 10000);
        QTRY_VERIFY_WITH_TIMEOUT(record->isEnabled() && record->text() == QStringLiteral("Record"), 20000);
        QTest::qWait(500);  // the window runs on, watched
        checkEventLoop(*again, "second window");
        if (QTest::currentTestFailed()) return;
        again->quitWithoutAsking();
    }

    void theSessionFilesAreThere() {
        try {
            rig_.request("shutdown");
        } catch (const std::exception& e) {
            QFile out(rig_.tmp.filePath(QStringLiteral("supervisor.out")));
            QString tail;
            if (out.open(QIODevice::ReadOnly)) {
                out.seek(std::max<qint64>(0, out.size() - 2000));
                tail = QString::fromUtf8(out.readAll());
            }
            QFAIL(qPrintable(QStringLiteral("the supervisor did not take shutdown (%1); it is %2 (exit code %3); its output ends:\n%4")
                                 .arg(QString::fromStdString(e.what()))
                                 .arg(supervisor_.state() == QProcess::NotRunning ? QStringLiteral("gone")
                                                                                   : QStringLiteral("running"))
                                 .arg(supervisor_.exitCode())
                                 .arg(tail)));
        }
        QVERIFY(supervisor_.waitForFinished(60000));
        QCOMPARE(supervisor_.exitStatus(), QProcess::NormalExit);
        QCOMPARE(supervisor_.exitCode(), 0);

        const QString dir = rig_.sessionDir();
        QVERIFY2(!dir.isEmpty(), "no session folder");
        for (const char* file : {"session.json", "events.csv", "clocks.csv", "notes/notes.csv"}) {
            QVERIFY2(QFileInfo(dir + QLatin1Char('/') + QLatin1String(file)).size() > 0, file);
        }
        // Every camera of the demo recorded trial 1.
        QFile config(rig_.config);
        QVERIFY(config.open(QIODevice::ReadOnly));
        const QString yaml = QString::fromUtf8(config.readAll());
        for (const QString& cam : {QStringLiteral("cam0"), QStringLiteral("cam1")}) {
            if (!yaml.contains(QStringLiteral("  %1:").arg(cam))) continue;
            const QString video = QStringLiteral("%1/camera/%2/trial_001.mp4").arg(dir, cam);
            QVERIFY2(QFileInfo(video).size() > 0, qPrintable(video));
        }

        const json notes = gui_test::readCsvWithPython(dir + QStringLiteral("/notes/notes.csv"));
        QVERIFY(notes.is_array());
        bool found = false;
        for (const auto& row : notes) {
            if (QString::fromStdString(row.value("text", std::string())) != kNote) continue;
            found = true;
            QCOMPARE(row.value("trial", std::string()), std::string("1"));
        }
        QVERIFY2(found, notes.dump().c_str());

        const json events = gui_test::readCsvWithPython(dir + QStringLiteral("/events.csv"));
        bool labelled = false;
        for (const auto& row : events) {
            if (row.value("event", std::string()) == "trial_start" && row.value("detail", std::string()) == "label=gui trial") {
                labelled = true;
            }
        }
        QVERIFY2(labelled, "events.csv has no trial_start with the label typed in the window");
    }

    void cleanupTestCase() {
        if (supervisor_.state() != QProcess::NotRunning) {
            supervisor_.kill();
            supervisor_.waitForFinished(10000);
        }
    }

private:
    // The longest gap of the window's whole run so far, from the moment it was shown. What the
    // GUI answers for is the gap without the time its thread was ready but found no free CPU: a
    // starved machine (a loaded CI host) stalls every program, and that says nothing of the GUI.
    // On a machine with a CPU to spare the two are the same (the log shows both).
    static void checkEventLoop(const MainWindow& window, const char* which) {
        const EventLoopWatch* watch = window.eventLoopWatch();
        QVERIFY(watch != nullptr && watch->started());
        const double gap = watch->maxGapMs();
        const double own = watch->maxOwnGapMs();
        qInfo("%s: longest event-loop gap %.1f ms (GUI thread busy %.1f ms of it, waiting for a CPU %.1f ms, "
              "preempted %lld times, slept %lld times) over %.1f s from the window shown, %lld gaps over 100 ms; "
              "it was: %s. Longest not counting waits for a CPU: %.1f ms",
              which, gap, watch->maxGapBusyMs(), watch->maxGapCpuWaitMs(), static_cast<long long>(watch->maxGapPreempted()),
              static_cast<long long>(watch->maxGapBlocked()), watch->watchedSeconds(),
              static_cast<long long>(watch->stalls()), qPrintable(watch->maxGapWhat()), own);
        QVERIFY2(own < 100, qPrintable(QStringLiteral("%1: the event loop stalled for %2 ms (not counting waits for a "
                                                      "CPU): %3")
                                           .arg(QLatin1String(which))
                                           .arg(own, 0, 'f', 1)
                                           .arg(watch->maxOwnGapWhat())));
    }

    gui_test::Rig rig_;
    QProcess supervisor_;
};

QTEST_MAIN(GuiSession)
#include "test_session.moc"

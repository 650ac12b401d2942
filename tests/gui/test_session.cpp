// End to end, in this process: a real supervisor with config/demo.yaml, and the main window
// driving it the way a user does. Record a trial with the Record button, type a note and press
// Enter, close the window in the middle of the trial and open it again (the trial and the note
// are still there), stop with the button; then the session's files must be on disk and the note
// must read back with Python's csv module. The event loop is watched the whole time: no gap
// between two 10 ms timer runs may reach 100 ms.
#include "event_loop_watch.hpp"
#include "json_util.hpp"
#include "main_window.hpp"
#include "notes_panel.hpp"
#include "preview_panel.hpp"
#include "session_bar.hpp"
#include "state_model.hpp"
#include "support.hpp"

#include <QPushButton>
#include <QStandardPaths>
#include <QTreeWidget>

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
        supervisor_.setProgram(gui_test::bin(QStringLiteral("pilogger")));
        supervisor_.setArguments({QStringLiteral("run"), QStringLiteral("--config"), rig_.config});
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
        // From here on the watch measures the window at work (start-up is reported apart).
        QTRY_VERIFY_WITH_TIMEOUT(window->startupOver(), 5000);

        // Record, with a label.
        window->sessionBar()->setTrialLabel(QStringLiteral("gui trial"));
        QPushButton* record = window->sessionBar()->recordButton();
        QTest::mouseClick(record, Qt::LeftButton);
        QTRY_VERIFY_WITH_TIMEOUT(window->model()->recording(), 10000);
        QTRY_VERIFY_WITH_TIMEOUT(record->isEnabled() && record->text() == QStringLiteral("Stop trial"), 20000);
        QCOMPARE(integer(window->model()->trial(), "number"), int64_t{1});

        // Camera previews arrive (when the demo has cameras).
        for (const auto& m : window->model()->modules()) {
            if (!PreviewPanel::hasPreview(m)) continue;
            PreviewTile* tile = window->previewPanel()->tile(qstr(m, "name"));
            QVERIFY(tile);
            QTRY_VERIFY_WITH_TIMEOUT(tile->framesShown() >= 3, 15000);
        }
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
        QCOMPARE(history->topLevelItem(0)->toolTip(3), kNote);
        QCOMPARE(history->topLevelItem(0)->text(2), QStringLiteral("1"));  // made during trial 1
        QTest::qWait(1000);

        const double first_gap = window->maxEventLoopGapMs();
        qInfo("first window: longest event-loop gap %.1f ms over %.1f s (start-up: %.1f ms)", first_gap,
              window->eventLoopWatch()->watchedSeconds(), window->startupGapMs());
        QVERIFY2(first_gap < 100, qPrintable(QStringLiteral("the event loop stalled for %1 ms").arg(first_gap)));

        // Close the window in the middle of the trial: the recording goes on.
        window->quitWithoutAsking();
        window.reset();
        QTest::qWait(1000);
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
        QCOMPARE(again->notesPanel()->history()->topLevelItem(0)->toolTip(3), kNote);
        record = again->sessionBar()->recordButton();
        QTRY_VERIFY_WITH_TIMEOUT(record->text() == QStringLiteral("Stop trial"), 5000);
        QTRY_VERIFY_WITH_TIMEOUT(again->startupOver(), 5000);
        QTest::qWait(1000);

        // Stop.
        QTest::mouseClick(record, Qt::LeftButton);
        QTRY_VERIFY_WITH_TIMEOUT(!again->model()->recording(), 10000);
        QTRY_VERIFY_WITH_TIMEOUT(record->isEnabled() && record->text() == QStringLiteral("Record"), 20000);
        QTest::qWait(500);
        const double second_gap = again->maxEventLoopGapMs();
        qInfo("second window: longest event-loop gap %.1f ms over %.1f s (start-up: %.1f ms)", second_gap,
              again->eventLoopWatch()->watchedSeconds(), again->startupGapMs());
        QVERIFY2(second_gap < 100, qPrintable(QStringLiteral("the event loop stalled for %1 ms").arg(second_gap)));
        again->quitWithoutAsking();
    }

    void theSessionFilesAreThere() {
        rig_.request("shutdown");
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
    gui_test::Rig rig_;
    QProcess supervisor_;
};

QTEST_MAIN(GuiSession)
#include "test_session.moc"

// The GUI's parts one at a time: the model, the panels, the client's framing against a fake
// supervisor, the event-loop watch, and that the window fits an 800x480 touch screen. The preview
// reader and tiles: test_preview.cpp.
#include "units_support.hpp"

#include "clock.hpp"
#include "data_rate.hpp"
#include "event_loop_watch.hpp"
#include "log_view.hpp"
#include "main_window.hpp"
#include "module_table.hpp"
#include "notes_file.hpp"
#include "notes_panel.hpp"
#include "pico_panel.hpp"
#include "preview_panel.hpp"
#include "session_bar.hpp"
#include "settings_dialog.hpp"
#include "state_model.hpp"
#include "supervisor_client.hpp"

#include <QComboBox>
#include <QElapsedTimer>
#include <QLocalServer>
#include <QLocalSocket>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSignalSpy>
#include <QTabWidget>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTest>
#include <QTimer>
#include <QTreeWidget>

#include <unistd.h>

using namespace pilogger;
using namespace pilogger::gui;
using namespace gui_test;

class GuiUnits : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { QVERIFY(isolate(runtime_)); }

    void dataRate() {
        DataRate r;
        QVERIFY(!r.bytesPerSecond());
        r.add("cam0", 1000, 0);  // baseline only
        r.add("cam0", 2'001'000, 1'000'000'000);
        r.add("cam1", 500, 1'000'000'000);
        r.add("cam0", 4'001'000, 2'000'000'000);
        QVERIFY(r.bytesPerSecond());
        QCOMPARE(*r.bytesPerSecond(), 2'000'000.0);
        // A restarted module starts again from 0: what it reports is new, never negative.
        r.add("cam0", 1'000'000, 3'000'000'000);
        QCOMPARE(*r.bytesPerSecond(), 5'000'000.0 / 3.0);
        auto left = r.secondsLeft(1'000'000'000 + 200'000'000, 200'000'000);
        QVERIFY(left);
        QVERIFY(std::abs(*left - 1e9 / (5e6 / 3)) < 1);
        QVERIFY(!DataRate().secondsLeft(1, 0));
    }

    void notesCsv() {
        const QByteArray data =
            "note_id,mono_ns,wall_time_utc,session_elapsed_s,trial,recording_modules,text\n"
            "1,100,2026-01-01T00:00:00Z,0.5,,,plain\n"
            "2,200,2026-01-01T00:00:01Z,1.5,1,cam0;cam1,\"comma, \"\"quote\"\"\nand a new line\"\n"
            "3,300,2026-01-01T00:00:02Z,2.5,1,cam0,torn without its newl";
        int skipped = -1;
        auto notes = parseNotesCsv(data, &skipped);
        QCOMPARE(skipped, 0);
        QCOMPARE(notes.size(), size_t{2});
        QCOMPARE(notes[0].id, int64_t{1});
        QCOMPARE(notes[0].trial, 0);
        QCOMPARE(notes[0].text, QStringLiteral("plain"));
        QCOMPARE(notes[1].trial, 1);
        QCOMPARE(notes[1].session_elapsed_s, 1.5);
        QCOMPARE(notes[1].text, QStringLiteral("comma, \"quote\"\nand a new line"));
    }

    void notesFromSessionFolder() {
        QTemporaryDir dir;
        QVERIFY(QDir(dir.path()).mkpath(QStringLiteral("notes")));
        QFile f(dir.filePath(QStringLiteral("notes/notes.csv")));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("note_id,mono_ns,wall_time_utc,session_elapsed_s,trial,recording_modules,text\n2,2,w,1,,,b\n1,1,w,0,,,a\n");
        f.close();
        std::vector<NoteEntry> got;
        bool done = false;
        loadSessionNotes(dir.path(), this, [&](std::vector<NoteEntry> notes, const QString& problem) {
            QVERIFY(problem.isEmpty());
            got = std::move(notes);
            done = true;
        });
        QTRY_VERIFY(done);
        QCOMPARE(got.size(), size_t{2});
        QCOMPARE(got[0].text, QStringLiteral("a"));  // ordered by id
    }

    void modelFollowsStatusAndEvents() {
        StateModel m;
        QSignalSpy connected(&m, &StateModel::connectionChanged);
        QSignalSpy history(&m, &StateModel::historyWanted);
        QSignalSpy reset(&m, &StateModel::notesReset);
        m.applyStatus(sampleStatus("/data/s1"));
        QVERIFY(m.connected());
        QCOMPARE(connected.count(), 1);
        QCOMPARE(history.count(), 1);
        QCOMPARE(history.at(0).at(0).toString(), QStringLiteral("/data/s1"));
        QCOMPARE(m.modules().size(), size_t{2});

        m.applyEvent(json{{"event", "trial"}, {"active", true}, {"trial", 1}, {"label", "a"}, {"start_at_mono_ns", 5}}, 10);
        QVERIFY(m.recording());
        QCOMPARE(m.session().at("trials").get<int>(), 1);
        m.applyEvent(json{{"event", "module_state"}, {"name", "notes"}, {"type", "notes"}, {"state", "restarting"},
                          {"enabled", true}, {"restarts", 1}, {"last_error", "hung"}},
                     11);
        QCOMPARE(m.module("notes")->at("state").get<std::string>(), std::string("restarting"));
        m.applyEvent(json{{"event", "stats"}, {"module", "cam0"}, {"fps", 30.0}, {"bytes_written", 6000000}}, 12);
        QCOMPARE(m.module("cam0")->at("stats").at("fps").get<double>(), 30.0);
        QVERIFY(!m.module("cam0")->at("stats").contains("event"));

        QSignalSpy added(&m, &StateModel::noteAdded);
        m.applyEvent(json{{"event", "note"}, {"note_id", 2}, {"text", "second"}, {"mono_ns", 7}, {"trial", 1}}, 13);
        m.applyEvent(json{{"event", "note"}, {"note_id", 1}, {"text", "first"}, {"mono_ns", 6}}, 13);
        m.applyEvent(json{{"event", "note"}, {"note_id", 2}, {"text", "second"}}, 13);  // seen already
        QCOMPARE(added.count(), 2);
        QCOMPARE(m.notes().front().text, QStringLiteral("first"));
        // The history from the file merges in; notes of another session are ignored.
        m.addNotesFromFile(QStringLiteral("/data/other"), {NoteEntry{9, 0, 0, 0, QStringLiteral("x")}});
        QCOMPARE(m.notes().size(), size_t{2});
        m.addNotesFromFile(QStringLiteral("/data/s1"), {NoteEntry{1, 6, 0, 0, QStringLiteral("first")},
                                                        NoteEntry{0, 1, 0, 0, QStringLiteral("zero")}});
        QCOMPARE(m.notes().size(), size_t{3});

        // Problems land in the log; the supervisor's routine events only as info.
        QSignalSpy logged(&m, &StateModel::logAdded);
        m.applyEvent(json{{"event", "supervisor_event"}, {"name", "module_crash"}, {"module", "cam0"},
                          {"detail", "signal 9"}, {"at_mono_ns", 20}},
                     21);
        m.applyEvent(json{{"event", "supervisor_event"}, {"name", "module_start"}, {"module", "cam0"}, {"detail", "pid 3"}}, 22);
        QCOMPARE(logged.count(), 2);
        QCOMPARE(m.log().at(m.log().size() - 2).level, QStringLiteral("error"));
        QCOMPARE(m.log().back().level, QStringLiteral("info"));

        m.applyEvent(json{{"event", "trial"}, {"active", false}, {"trial", 1}}, 30);
        QVERIFY(!m.recording());
        const auto resets = reset.count();
        m.applyEvent(json{{"event", "session"}, {"active", false}, {"dir", "/data/s1"}}, 31);
        QVERIFY(m.session().is_null());
        QCOMPARE(reset.count(), resets + 1);
        QVERIFY(m.notes().empty());

        m.setDisconnected(QStringLiteral("gone"));
        QVERIFY(!m.connected());
    }

    void modelSurvivesOddJson() {
        // Fields of unexpected types, missing or null: shown as unknown, never an exception.
        StateModel m;
        json odd = json::object();
        odd["supervisor"] = 3;
        odd["session"] = "x";
        odd["modules"] = json::array({json{{"name", 5}, {"state", nullptr}, {"stats", "?"}}});
        odd["disk"] = json{{"free_bytes", "many"}};
        odd["pico"] = json{{"state", 1}, {"fit", "none"}};
        m.applyStatus(odd);
        m.applyEvent(json{{"event", "stats"}, {"module", nullptr}}, 1);
        m.applyEvent(json{{"event", "note"}, {"note_id", "one"}, {"text", 3}}, 1);
        m.applyEvent(json{{"event", "trial"}, {"active", "yes"}}, 1);
        m.applyEvent(json::array(), 1);
        SessionBar bar(m);
        bar.refresh();
        ModuleTable table(m);
        table.refresh();
        PicoPanel pico(m);
        pico.refresh();
        QVERIFY(true);
    }

    void moduleTable() {
        StateModel m;
        m.applyStatus(sampleStatus(""));
        ModuleTable t(m);
        t.refresh();
        QTableWidget* table = t.table();
        QCOMPARE(table->rowCount(), 2);
        QCOMPARE(table->item(1, ModuleTable::State)->text(), QStringLiteral("recording"));
        QCOMPARE(table->item(1, ModuleTable::Rate)->text(), QStringLiteral("30.0 fps"));
        QCOMPARE(table->item(1, ModuleTable::Drops)->text(), QStringLiteral("4"));
        QCOMPARE(table->item(1, ModuleTable::Restarts)->text(), QStringLiteral("1"));
        QCOMPARE(table->item(1, ModuleTable::LastError)->text(), QStringLiteral("crashed: exit status 1"));
        QCOMPARE(table->item(0, ModuleTable::Rate)->text(), QStringLiteral("2 note(s)"));
        QSignalSpy enable(&t, &ModuleTable::enableRequested);
        QSignalSpy restart(&t, &ModuleTable::restartRequested);
        table->item(1, ModuleTable::Enabled)->setCheckState(Qt::Unchecked);
        QCOMPARE(enable.count(), 1);
        QCOMPARE(enable.at(0).at(0).toString(), QStringLiteral("cam0"));
        QCOMPARE(enable.at(0).at(1).toBool(), false);
        qobject_cast<QPushButton*>(table->cellWidget(1, ModuleTable::Action))->click();
        QCOMPARE(restart.count(), 1);
        // A refresh from the model (still enabled) does not count as a request.
        t.refresh();
        QCOMPARE(enable.count(), 1);
        QCOMPARE(table->item(1, ModuleTable::Enabled)->checkState(), Qt::Checked);
    }

    void picoPanel() {
        StateModel m;
        PicoPanel p(m);
        json status = sampleStatus("");
        m.applyStatus(status);
        p.refresh();
        QCOMPARE(p.rowText(QStringLiteral("link")), QString());  // no pico: the panel says so instead
        status["pico"] = json::parse(R"({"device":"emulator","path":"/run/x/pico","state":"connected","connected":true,
            "firmware":"psync 1.0","board":"pico_w","fit":{"points":40,"offset_us":4200001.7,"drift_ppm":23.47,
            "residual_us":85.2,"rtt_us":900},"led":"on","lines_lost":2,"last_error":""})");
        m.applyStatus(status);
        p.refresh();
        QCOMPARE(p.rowText(QStringLiteral("link")), QStringLiteral("connected"));
        QCOMPARE(p.rowText(QStringLiteral("firmware")), QStringLiteral("psync 1.0 on pico_w"));
        QCOMPARE(p.rowText(QStringLiteral("offset")), QStringLiteral("4.200002 s"));
        QCOMPARE(p.rowText(QStringLiteral("drift")), QStringLiteral("23.47 ppm"));
        QCOMPARE(p.rowText(QStringLiteral("led")), QStringLiteral("on"));
        QCOMPARE(p.rowText(QStringLiteral("lost")), QStringLiteral("2"));
    }

    void logViewFilters() {
        StateModel m;
        LogView v(m);
        connect(&m, &StateModel::logAdded, &v, &LogView::addEntry);
        m.addLog(QStringLiteral("error"), QStringLiteral("cam0"), QStringLiteral("crashed"), 1);
        m.addLog(QStringLiteral("warning"), QStringLiteral("notes"), QStringLiteral("slow"), 2);
        m.addLog(QStringLiteral("info"), QStringLiteral("cam0"), QStringLiteral("started"), 3);
        QCOMPARE(v.visibleCount(), 2);  // info only with "Show events"
        QCOMPARE(v.list()->topLevelItem(0)->text(3), QStringLiteral("slow"));  // newest first
        v.moduleFilter()->setCurrentIndex(v.moduleFilter()->findData(QStringLiteral("cam0")));
        QCOMPARE(v.visibleCount(), 1);
        QCOMPARE(v.list()->topLevelItem(0)->text(3), QStringLiteral("crashed"));
    }

    void noteEditKeys() {
        NoteEdit edit;
        edit.show();
        QSignalSpy spy(&edit, &NoteEdit::submitted);
        QTest::keyClick(&edit, Qt::Key_Return);  // nothing typed: nothing sent
        QCOMPARE(spy.count(), 0);
        QTest::keyClicks(&edit, QStringLiteral("line one"));
        QTest::keyClick(&edit, Qt::Key_Return, Qt::ShiftModifier);
        QTest::keyClicks(&edit, QStringLiteral("line two"));
        QCOMPARE(spy.count(), 0);
        const qint64 before = mono_ns();
        QTest::keyClick(&edit, Qt::Key_Return);
        QCOMPARE(spy.count(), 1);
        QCOMPARE(spy.at(0).at(0).toString(), QStringLiteral("line one\nline two"));
        const qint64 typed = spy.at(0).at(1).toLongLong();
        QVERIFY(typed >= before && typed <= mono_ns());
    }

    void notesPanelPutsFailedNoteBack() {
        StateModel m;
        NotesPanel panel(m);
        QSignalSpy spy(&panel, &NotesPanel::noteSubmitted);
        panel.show();
        QTest::keyClicks(panel.edit(), QStringLiteral("hello"));
        QTest::keyClick(panel.edit(), Qt::Key_Enter);
        QCOMPARE(spy.count(), 1);
        QVERIFY(panel.edit()->toPlainText().isEmpty());
        panel.noteFailed(QStringLiteral("hello"), QStringLiteral("no session is open"));
        QCOMPARE(panel.edit()->toPlainText(), QStringLiteral("hello"));
    }

    void settingsDialogValidatesWithTheLoader() {
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("c.yaml"));
        QFile f(path);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("data_dir: /tmp/x\nmodules:\n  notes:\n    enabled: true\n");
        f.close();
        // Reading, checking and saving run on a pool thread; each answers with a signal.
        SettingsDialog d(path, QString());
        QSignalSpy checked(&d, &SettingsDialog::checked);
        QSignalSpy finished(&d, &SettingsDialog::saveFinished);
        QSignalSpy saved(&d, &SettingsDialog::configSaved);
        QTRY_COMPARE(checked.count(), 1);
        QVERIFY(checked.last().at(0).toBool());
        QVERIFY(d.valid());
        QCOMPARE(d.editor()->toPlainText(), QStringLiteral("data_dir: /tmp/x\nmodules:\n  notes:\n    enabled: true\n"));
        d.editor()->setPlainText(QStringLiteral("data_dir: /tmp/x\nmodules:\n  notes:\n    enabld: true\n"));
        d.validate();
        QTRY_COMPARE(checked.count(), 2);
        QVERIFY(!checked.last().at(0).toBool());
        QVERIFY(!d.valid());
        QVERIFY2(d.message().contains(QStringLiteral("c.yaml:4:5: modules.notes.enabld: unknown key")), qPrintable(d.message()));
        QCOMPARE(SettingsDialog::lineOf(d.message()), 4);
        d.save();
        QTRY_COMPARE(finished.count(), 1);
        QVERIFY(!finished.last().at(0).toBool());  // never saved while invalid
        QCOMPARE(saved.count(), 0);
        d.editor()->setPlainText(QStringLiteral("data_dir: /tmp/y\nmodules:\n  notes: {}\n"));
        d.save();
        QTRY_COMPARE(finished.count(), 2);
        QVERIFY(finished.last().at(0).toBool());
        QCOMPARE(saved.count(), 1);
        QVERIFY(f.open(QIODevice::ReadOnly));
        QCOMPARE(f.readAll(), QByteArray("data_dir: /tmp/y\nmodules:\n  notes: {}\n"));
    }

    void clientSpeaksTheProtocol() {
        // A fake supervisor: answers subscribe, pushes an event, refuses status, then hangs up.
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("control.sock"));
        QLocalServer server;
        QVERIFY(server.listen(path));
        SupervisorClient client(path);
        client.setRetryInterval(50);
        QSignalSpy subscribed(&client, &SupervisorClient::subscribed);
        QSignalSpy events(&client, &SupervisorClient::eventReceived);
        QSignalSpy dropped(&client, &SupervisorClient::disconnected);
        client.start();
        QTRY_VERIFY(server.hasPendingConnections());
        QLocalSocket* peer = server.nextPendingConnection();
        QTRY_VERIFY(peer->canReadLine());
        json line = json::parse(peer->readLine().toStdString());
        QCOMPARE(line["cmd"].get<std::string>(), std::string("subscribe"));
        const int64_t id = line["id"].get<int64_t>();
        // The answer and an event in one write, the event split across two writes.
        peer->write(QByteArray::fromStdString(make_ok(id, json{{"supervisor", {{"pid", 7}}}}) + "\n" +
                                              R"({"event":"note","note_id":1,)"));
        peer->flush();
        QTRY_COMPARE(subscribed.count(), 1);
        QVERIFY(client.isConnected());
        peer->write("\"text\":\"hi\"}\n");
        QTRY_COMPARE(events.count(), 1);
        QCOMPARE(events.at(0).at(0).value<json>()["text"].get<std::string>(), std::string("hi"));

        CommandReply reply;
        bool answered = false;
        client.request("status", json::object(), [&](const CommandReply& r) {
            reply = r;
            answered = true;
        });
        QTRY_VERIFY(peer->canReadLine());
        line = json::parse(peer->readLine().toStdString());
        peer->write(QByteArray::fromStdString(make_error(line["id"].get<int64_t>(), "bad_state", "no session is open") + "\n"));
        QTRY_VERIFY(answered);
        QVERIFY(!reply.ok);
        QCOMPARE(reply.code, QStringLiteral("bad_state"));
        QCOMPARE(reply.message, QStringLiteral("no session is open"));

        // A command whose answer never comes fails when the link drops, and the client reconnects.
        answered = false;
        client.request("trial_start", json{{"label", "x"}}, [&](const CommandReply& r) {
            reply = r;
            answered = true;
        });
        QTRY_VERIFY(peer->canReadLine());
        peer->disconnectFromServer();
        QTRY_COMPARE(dropped.count(), 1);
        QTRY_VERIFY(answered);
        QVERIFY(!reply.ok);
        QVERIFY(!client.isConnected());
        QTRY_VERIFY(server.hasPendingConnections());
    }

    void clientAnswersLaterWhenDown() {
        SupervisorClient client(runtime_.filePath(QStringLiteral("nobody.sock")));
        QSignalSpy failed(&client, &SupervisorClient::connectFailed);
        client.start();
        QTRY_COMPARE(failed.count(), 1);
        QVERIFY(failed.at(0).at(1).toBool());  // not running
        bool answered = false;
        client.request("status", json::object(), [&](const CommandReply& r) {
            QVERIFY(!r.ok);
            answered = true;
        });
        QVERIFY(!answered);  // never from inside request()
        QTRY_VERIFY(answered);
    }

    void eventLoopWatchSaysWhatTookTheGap() {
        EventLoopWatch watch(10);
        watch.start();
        QTest::qWait(50);
        // A timer that holds the loop for 150 ms: the longest gap, and named as its cause.
        QTimer blocker;
        blocker.setObjectName(QStringLiteral("blocker"));
        blocker.setSingleShot(true);
        connect(&blocker, &QTimer::timeout, this, [] {
            QElapsedTimer t;
            t.start();
            while (t.elapsed() < 150) {
            }
        });
        blocker.start(0);
        QTRY_VERIFY(watch.maxGapMs() >= 150);
        QVERIFY2(watch.maxGapMs() < 1000, qPrintable(QString::number(watch.maxGapMs())));
        QVERIFY2(watch.maxGapWhat().contains(QStringLiteral("QTimer(blocker) Timer")), qPrintable(watch.maxGapWhat()));
        QVERIFY(watch.maxGapBusyMs() > 50);  // it spun: the thread was busy, not waiting
        QVERIFY(watch.stalls() >= 1);
        // Busy time is the GUI's own: only waits for a CPU are left out of the own gap.
        QVERIFY2(watch.maxOwnGapMs() >= watch.maxGapBusyMs() - 5,
                 qPrintable(QStringLiteral("own %1 ms, busy %2 ms").arg(watch.maxOwnGapMs()).arg(watch.maxGapBusyMs())));
        QVERIFY(watch.maxGapCpuWaitMs() <= watch.maxGapMs() - watch.maxGapBusyMs() + 5);
        watch.stop();
    }

    void eventLoopWatchCountsABlockingCallAsTheGuisOwn() {
        EventLoopWatch watch(10);
        watch.start();
        QTest::qWait(50);
        // Asleep in a call, the thread waits for no CPU: all of the gap is the GUI's.
        QTimer::singleShot(0, this, [] { ::usleep(150'000); });
        QTRY_VERIFY(watch.maxGapMs() >= 150);
        QVERIFY2(watch.maxOwnGapMs() >= 140, qPrintable(QString::number(watch.maxOwnGapMs())));
        watch.stop();
    }

    void windowFitsA800x480Screen() {
        GuiOptions options;
        options.socket_path = runtime_.filePath(QStringLiteral("nobody.sock"));
        options.start_supervisor = false;
        options.window_size = QSize(800, 480);
        MainWindow w(options);
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        // A status with three preview modules, the most the demo shows.
        json status = sampleStatus("/data/s1");
        status["modules"].push_back(json{{"name", "cam1"}, {"type", "camera"}, {"enabled", true}, {"state", "ready"},
                                         {"capabilities", {"snapshot", "preview"}}});
        status["modules"].push_back(json{{"name", "eyetracker"}, {"type", "eyetracker"}, {"enabled", true}, {"state", "ready"},
                                         {"capabilities", {"preview", "gaze"}}});
        w.model()->applyStatus(status);
        // The panels are redrawn in the turns that follow, one part (and one new tile) per turn.
        QTRY_VERIFY(!w.refreshPending() && !w.previewPanel()->creating());
        QCOMPARE(w.previewPanel()->tileCount(), 3);
        QVERIFY2(w.minimumSizeHint().width() <= 800 && w.minimumSizeHint().height() <= 480,
                 qPrintable(QStringLiteral("%1x%2").arg(w.minimumSizeHint().width()).arg(w.minimumSizeHint().height())));
        QCOMPARE(w.size(), QSize(800, 480));
        // The controls are on screen and big enough for a finger.
        QPushButton* record = w.sessionBar()->recordButton();
        const QRect r(record->mapTo(&w, QPoint(0, 0)), record->size());
        QVERIFY(w.rect().contains(r));
        QVERIFY(record->height() >= 36);
        QVERIFY(w.notesPanel()->edit()->isVisible());
        QVERIFY(w.notesPanel()->edit()->height() >= 40);

        // Ctrl+N goes to the note box from anywhere in the window.
        w.activateWindow();
        QVERIFY(QTest::qWaitForWindowActive(&w));
        w.tabs()->setCurrentIndex(3);
        w.sessionBar()->recordButton()->setFocus();
        QTest::keyClick(&w, Qt::Key_N, Qt::ControlModifier);
        QTRY_VERIFY(w.notesPanel()->edit()->hasFocus());
        QCOMPARE(w.tabs()->currentIndex(), 0);
    }

private:
    QTemporaryDir runtime_;
};

QTEST_MAIN(GuiUnits)
#include "test_units.moc"

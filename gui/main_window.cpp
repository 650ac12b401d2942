#include "main_window.hpp"

#include "clock.hpp"
#include "config.hpp"
#include "event_loop_watch.hpp"
#include "json_util.hpp"
#include "latency_trace.hpp"
#include "log_view.hpp"
#include "module_table.hpp"
#include "notes_file.hpp"
#include "notes_panel.hpp"
#include "off_thread.hpp"
#include "paths.hpp"
#include "pico_panel.hpp"
#include "preview_panel.hpp"
#include "session_bar.hpp"
#include "settings_dialog.hpp"
#include "state_model.hpp"
#include "supervisor_client.hpp"
#include "supervisor_launcher.hpp"
#include "x11_frame_gate.hpp"

#include <QAction>
#include <QCoreApplication>
#include <QCloseEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QSettings>
#include <QSplitter>
#include <QStatusBar>
#include <QTabWidget>
#include <QTreeWidget>
#include <QVBoxLayout>

#include <cstdio>

namespace pilogger::gui {

namespace {
enum Tab { NotesTab, ModulesTab, PicoTab, LogTab };

QString defaultSocketPath(QString* problem) {
    try {
        return QString::fromStdString(control_socket_path());
    } catch (const std::exception& e) {
        *problem = QString::fromStdString(e.what());
        return {};
    }
}
}  // namespace

MainWindow::MainWindow(GuiOptions options, QWidget* parent) : QMainWindow(parent), options_(std::move(options)) {
    setObjectName(QStringLiteral("mainWindow"));
    QString socket_problem;
    const QString socket = options_.socket_path.isEmpty() ? defaultSocketPath(&socket_problem) : options_.socket_path;

    model_ = new StateModel(this);
    client_ = new SupervisorClient(socket, this);
    launcher_ = new SupervisorLauncher(this);

    // Layout: session bar; below it previews | tabs, in a splitter so a small screen can give
    // the space to either side.
    auto* central = new QWidget(this);
    auto* layout = new QVBoxLayout(central);
    layout->setContentsMargins(2, 2, 2, 2);
    layout->setSpacing(2);
    session_bar_ = new SessionBar(*model_, central);
    layout->addWidget(session_bar_);
    splitter_ = new QSplitter(Qt::Horizontal, central);
    splitter_->setChildrenCollapsible(false);
    previews_ = new PreviewPanel(*model_, splitter_);
    previews_->setMinimumWidth(160);
    tabs_ = new QTabWidget(splitter_);
    tabs_->setObjectName(QStringLiteral("tabs"));
    notes_ = new NotesPanel(*model_, tabs_);
    modules_ = new ModuleTable(*model_, tabs_);
    pico_ = new PicoPanel(*model_, tabs_);
    log_ = new LogView(*model_, tabs_);
    tabs_->insertTab(NotesTab, notes_, tr("Notes"));
    tabs_->insertTab(ModulesTab, modules_, tr("Modules"));
    tabs_->insertTab(PicoTab, pico_, tr("Pico W"));
    tabs_->insertTab(LogTab, log_, tr("Log"));
    tabs_->setMinimumWidth(300);
    splitter_->addWidget(previews_);
    splitter_->addWidget(tabs_);
    splitter_->setStretchFactor(0, 3);
    splitter_->setStretchFactor(1, 2);
    previews_->hide();  // until a module publishes a preview
    layout->addWidget(splitter_, 1);
    setCentralWidget(central);

    connection_ = new QLabel(this);
    connection_->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Preferred);
    statusBar()->addWidget(connection_, 1);
    // A message (an error in words, or what is going on) shows in its place for a while.
    message_timer_.setSingleShot(true);
    connect(&message_timer_, &QTimer::timeout, this, &MainWindow::updateConnectionLabel);
    setMinimumSize(640, 400);

    buildMenus();
    wireModel();

    // Named, so the event-loop watch can say which one ran.
    status_timer_.setObjectName(QStringLiteral("statusTimer"));
    clock_timer_.setObjectName(QStringLiteral("clockTimer"));
    message_timer_.setObjectName(QStringLiteral("messageTimer"));
    refresh_timer_.setObjectName(QStringLiteral("refreshTimer"));
    status_timer_.setInterval(1000);
    connect(&status_timer_, &QTimer::timeout, this, &MainWindow::requestStatus);
    clock_timer_.setInterval(250);
    connect(&clock_timer_, &QTimer::timeout, session_bar_, &SessionBar::refresh);

    refresh_timer_.setSingleShot(true);
    refresh_timer_.setInterval(0);
    connect(&refresh_timer_, &QTimer::timeout, this, &MainWindow::refreshNext);

    // Qt's raster engine waits for pieces of large fills on its thread pool: have its threads
    // ready before the first paint, not made in the middle of it.
    keepPaintThreadsStarted();

    // Started when the window is shown (setVisible).
    if (options_.watch_event_loop) watch_ = new EventLoopWatch(10, this);
    // Repaints wait for the X server without blocking the event loop; so do the panel updates that
    // show or hide widgets (Qt asks the server where the pointer is then).
    frame_gate_ = X11FrameGate::install(this);
    if (frame_gate_ != nullptr) {
        previews_->setFrameGate(frame_gate_);
        connect(frame_gate_, &X11FrameGate::idle, this, [this] {
            if (pending_parts_ != 0 && !refresh_timer_.isActive()) refresh_timer_.start();
        });
    }
    if (!options_.trace_file.isEmpty()) trace_ = new LatencyTrace(options_.trace_file, this);

    restoreSettings();
    if (!options_.config_file.isEmpty()) setChosenConfig(options_.config_file);
    auto_start_pending_ = options_.start_supervisor && !options_.config_file.isEmpty();
    if (options_.window_size.isValid()) resize(options_.window_size);

    if (socket.isEmpty()) {
        showProblem(tr("No control socket: %1").arg(socket_problem));
    } else {
        client_->start();
    }
    if (!options_.screenshot_file.isEmpty()) {
        QTimer::singleShot(static_cast<int>(options_.screenshot_after_s * 1000), this, &MainWindow::takeScreenshot);
    }
    if (options_.quit_after_s > 0) {
        QTimer::singleShot(static_cast<int>(options_.quit_after_s * 1000), this, &MainWindow::quitWithoutAsking);
    }
    updateTitle();
    updateConnectionLabel();
}

MainWindow::~MainWindow() {
    if (watch_ != nullptr) {
        std::fprintf(stderr,
                     "pilogger-gui: event loop: longest gap %.1f ms (GUI thread busy %.1f ms of it, waiting for a CPU "
                     "%.1f ms, preempted %lld times, slept %lld times, ended at mono_ns %lld), longest not counting "
                     "waits for a CPU %.1f ms, mean %.2f ms, %lld gaps over 100 ms, in %.1f s from the window first "
                     "shown; the longest gap: %s\n",
                     watch_->maxGapMs(), watch_->maxGapBusyMs(), watch_->maxGapCpuWaitMs(),
                     static_cast<long long>(watch_->maxGapPreempted()),
                     static_cast<long long>(watch_->maxGapBlocked()), static_cast<long long>(watch_->maxGapEndMonoNs()),
                     watch_->maxOwnGapMs(), watch_->meanGapMs(), static_cast<long long>(watch_->stalls()), watch_->watchedSeconds(),
                     qPrintable(watch_->maxGapWhat()));
        if (frame_gate_ != nullptr) {
            std::fprintf(stderr, "pilogger-gui: %lld repaints waited for the X server without blocking, the longest %.1f ms\n",
                         static_cast<long long>(frame_gate_->heldRepaints()), frame_gate_->longestHoldMs());
        }
    }
}

double MainWindow::maxEventLoopGapMs() const { return watch_ ? watch_->maxGapMs() : 0; }

void MainWindow::setVisible(bool visible) {
    // The watch measures from the moment the window is first shown: Qt's first layout and paint
    // count like everything after them.
    if (visible && watch_ != nullptr && !watch_->started()) watch_->start();
    QMainWindow::setVisible(visible);
}

void MainWindow::schedule(unsigned parts) {
    pending_parts_ |= parts;
    if (!refresh_timer_.isActive()) refresh_timer_.start();
}

void MainWindow::refreshNext() {
    if (pending_parts_ == 0) return;
    // Not while the X server is still taking the last frame: the gate says when it has.
    if (frame_gate_ != nullptr && !frame_gate_->ready()) return;
    // The part nearest the top of the window first.
    static constexpr Part order[] = {PartHeader, PartSessionBar, PartModules, PartPico, PartPreviews, PartNotes};
    for (Part part : order) {
        if ((pending_parts_ & part) == 0) continue;
        pending_parts_ &= ~static_cast<unsigned>(part);
        switch (part) {
            case PartHeader:
                updateTitle();
                updateConnectionLabel();
                break;
            case PartSessionBar: session_bar_->refresh(); break;
            case PartModules: modules_->refresh(); break;
            case PartPico: pico_->refresh(); break;
            case PartPreviews: previews_->sync(); break;
            case PartNotes: notes_->reload(); break;
        }
        break;
    }
    if (pending_parts_ != 0) refresh_timer_.start();  // the next part in the next turn
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    QAction* settings = file->addAction(tr("&Settings…"), this, &MainWindow::openSettings);
    settings->setShortcut(QKeySequence(QStringLiteral("Ctrl+,")));
    file->addAction(tr("Choose &config…"), this, &MainWindow::chooseConfig);
    file->addAction(tr("S&tart supervisor"), this, &MainWindow::startSupervisor);
    file->addAction(tr("Shut &down supervisor…"), this, &MainWindow::shutdownSupervisor);
    file->addSeparator();
    QAction* quit = file->addAction(tr("&Quit"), this, &QWidget::close);
    quit->setShortcut(QKeySequence(QStringLiteral("Ctrl+Q")));
    quit->setShortcutContext(Qt::ApplicationShortcut);

    QMenu* rec = menuBar()->addMenu(tr("&Recording"));
    QAction* record = rec->addAction(tr("&Record / stop trial"), this, &MainWindow::toggleRecording);
    record->setShortcut(QKeySequence(QStringLiteral("Ctrl+R")));
    record->setShortcutContext(Qt::ApplicationShortcut);
    record->setObjectName(QStringLiteral("recordAction"));
    rec->addAction(tr("Start / stop &session"), this, &MainWindow::toggleSession);
    QAction* note = rec->addAction(tr("Add a &note"), this, &MainWindow::focusNotes);
    note->setShortcut(QKeySequence(QStringLiteral("Ctrl+N")));
    note->setShortcutContext(Qt::ApplicationShortcut);
}

void MainWindow::wireModel() {
    connect(client_, &SupervisorClient::subscribed, this, &MainWindow::onSubscribed);
    connect(client_, &SupervisorClient::eventReceived, this, &MainWindow::onEvent);
    connect(client_, &SupervisorClient::disconnected, this, [this](const QString& why) {
        status_timer_.stop();
        model_->setDisconnected(why);
        connect_problem_ = why;
        updateConnectionLabel();
    });
    connect(client_, &SupervisorClient::connectFailed, this, [this](const QString& why, bool not_running) {
        connect_problem_ = why;
        updateConnectionLabel();
        if (auto_start_pending_ && not_running) {
            auto_start_pending_ = false;
            startSupervisor();
        }
    });
    connect(launcher_, &SupervisorLauncher::failed, this, [this](const QString& why) {
        session_bar_->setStarting(false);
        showProblem(why);
    });
    connect(launcher_, &SupervisorLauncher::launched, this, [this](const QString& log_path) {
        if (model_->connected()) return;
        showStatus(tr("Starting pilogger run --config %1 (output: %2)").arg(chosen_config_, log_path), 10000);
    });

    connect(model_, &StateModel::connectionChanged, this,
            [this] { schedule(PartHeader | PartSessionBar | PartModules | PartPico); });
    connect(model_, &StateModel::sessionChanged, this, [this] {
        schedule(PartHeader | PartSessionBar);
        if (model_->session().is_object()) {
            if (!clock_timer_.isActive()) clock_timer_.start();
        } else {
            clock_timer_.stop();
        }
    });
    // The data rate in the session bar moves with the modules' counters.
    connect(model_, &StateModel::modulesChanged, this, [this] { schedule(PartModules | PartPreviews | PartSessionBar); });
    connect(model_, &StateModel::picoChanged, this, [this] { schedule(PartPico); });
    connect(model_, &StateModel::diskChanged, this, [this] { schedule(PartSessionBar); });
    connect(model_, &StateModel::notesReset, this, [this] { schedule(PartNotes); });
    // One note is one row: added at once (a pending reload redraws the list from the model anyway).
    connect(model_, &StateModel::noteAdded, notes_, &NotesPanel::addNote);
    connect(model_, &StateModel::logAdded, this, [this](const LogEntry& e) {
        log_->addEntry(e);
        if (e.level == QLatin1String("error") && tabs_->currentIndex() != LogTab) {
            ++unseen_errors_;
            tabs_->setTabText(LogTab, tr("Log (%1)").arg(unseen_errors_));
        }
    });
    connect(tabs_, &QTabWidget::currentChanged, this, [this](int index) {
        if (index == LogTab && unseen_errors_ > 0) {
            unseen_errors_ = 0;
            tabs_->setTabText(LogTab, tr("Log"));
        }
    });
    connect(model_, &StateModel::historyWanted, this, [this](const QString& dir) {
        loadSessionNotes(dir, this, [this, dir](std::vector<NoteEntry> notes, const QString& problem) {
            model_->addNotesFromFile(dir, notes);
            if (!problem.isEmpty()) model_->addLog(QStringLiteral("warning"), QStringLiteral("gui"), problem);
        });
    });
    connect(model_, &StateModel::refreshWanted, this, &MainWindow::requestStatus);

    connect(session_bar_, &SessionBar::recordToggleClicked, this, &MainWindow::toggleRecording);
    connect(session_bar_, &SessionBar::sessionToggleClicked, this, &MainWindow::toggleSession);
    connect(session_bar_, &SessionBar::startSupervisorClicked, this, &MainWindow::startSupervisor);
    connect(session_bar_, &SessionBar::chooseConfigClicked, this, &MainWindow::chooseConfig);
    connect(notes_, &NotesPanel::noteSubmitted, this, &MainWindow::addNote);
    connect(previews_, &PreviewPanel::tilesChanged, this, [this](int count) { previews_->setVisible(count > 0); });
    connect(previews_, &PreviewPanel::snapshotRequested, this, [this](const QString& module) {
        command("module_command", json{{"name", module.toStdString()}, {"cmd", "snapshot"}, {"args", json::object()}},
                tr("Snapshot of %1").arg(module), [this, module](const CommandReply& r) {
                    if (r.ok) showStatus(tr("Snapshot of %1 saved: %2").arg(module, qstr(r.result, "path")), 8000);
                });
    });
    connect(modules_, &ModuleTable::enableRequested, this, [this](const QString& module, bool enable) {
        modules_->setPending(module, true);
        command(enable ? "module_enable" : "module_disable", json{{"name", module.toStdString()}},
                enable ? tr("Enabling %1").arg(module) : tr("Disabling %1").arg(module),
                [this, module](const CommandReply&) { modules_->setPending(module, false); });
    });
    connect(modules_, &ModuleTable::restartRequested, this, [this](const QString& module) {
        command("module_restart", json{{"name", module.toStdString()}}, tr("Restarting %1").arg(module));
    });
}

// ---- the link ----

void MainWindow::onSubscribed(const json& status) {
    launcher_->connected();
    session_bar_->setStarting(false);
    auto_start_pending_ = false;
    connect_problem_.clear();
    model_->applyStatus(status);
    status_timer_.start();
    showStatus(tr("Connected to the supervisor"), 3000);
    if (trace_ != nullptr) {
        trace_->applied(json{{"what", "subscribed"}, {"trial", model_->recording() ? integer(model_->trial(), "number") : 0}},
                        mono_ns(), session_bar_->trialStateLabel());
    }
}

void MainWindow::onEvent(const json& event, qint64 received_ns) {
    model_->applyEvent(event, received_ns);
    if (trace_ == nullptr) return;
    // The benchmark's view of supervisor-to-screen latency: which widget shows the change.
    const std::string name = str(event, "event");
    if (name == "note") {
        trace_->applied(json{{"what", "note"}, {"note_id", integer(event, "note_id")}, {"event_mono_ns", integer(event, "mono_ns")}},
                        received_ns, notes_->history()->viewport());
    } else if (name == "trial") {
        trace_->applied(json{{"what", "trial"}, {"trial", integer(event, "trial")}, {"active", flag(event, "active")}},
                        received_ns, session_bar_->trialStateLabel());
    }
}

void MainWindow::requestStatus() {
    // Disk space and the Pico W come with the status only; it also heals any event lost on the way.
    if (!client_->isConnected() || status_in_flight_) return;
    status_in_flight_ = true;
    client_->request("status", json::object(), [this](const CommandReply& r) {
        status_in_flight_ = false;
        if (r.ok) model_->applyStatus(r.result);
    }, 5000);
}

void MainWindow::command(const std::string& cmd, const json& args, const QString& doing,
                         std::function<void(const CommandReply&)> then) {
    client_->request(cmd, args, [this, doing, then = std::move(then)](const CommandReply& r) {
        if (!r.ok) showProblem(tr("%1 failed: %2").arg(doing, r.message));
        if (then) then(r);
    });
}

// Session and trial commands wait for each other: one at a time, the buttons say so.
void MainWindow::sessionCommand(const std::string& cmd, const json& args, const QString& doing,
                                std::function<void()> then) {
    busy_ = true;
    session_bar_->setBusy(true);
    showStatus(doing + QStringLiteral("…"), 30000);
    command(cmd, args, doing, [this, then = std::move(then)](const CommandReply& r) {
        busy_ = false;
        session_bar_->setBusy(false);
        if (r.ok) {
            message_timer_.stop();
            updateConnectionLabel();
        }
        if (r.ok && then) then();
    });
}

void MainWindow::showProblem(const QString& text) {
    showStatus(text, 15000, true);
    model_->addLog(QStringLiteral("error"), QStringLiteral("gui"), text);
}

// ---- actions ----

void MainWindow::toggleRecording() {
    if (!client_->isConnected()) return showProblem(tr("Cannot record: not connected to the supervisor"));
    if (busy_) return;
    const json trial_args{{"label", session_bar_->trialLabel().toStdString()}};
    if (model_->recording()) {
        sessionCommand("trial_stop", json::object(), tr("Stopping the trial"));
    } else if (!model_->session().is_object()) {
        // Record without a session: open one first, then the trial.
        sessionCommand("session_start", json{{"label", session_bar_->sessionLabel().toStdString()}},
                       tr("Starting a session"), [this, trial_args] {
                           sessionCommand("trial_start", trial_args, tr("Starting a trial"));
                       });
    } else {
        sessionCommand("trial_start", trial_args, tr("Starting a trial"));
    }
}

void MainWindow::toggleSession() {
    if (!client_->isConnected()) return showProblem(tr("Not connected to the supervisor"));
    if (busy_) return;
    if (!model_->session().is_object()) {
        sessionCommand("session_start", json{{"label", session_bar_->sessionLabel().toStdString()}}, tr("Starting a session"));
        return;
    }
    if (model_->recording() &&
        QMessageBox::question(this, tr("Stop the session?"),
                              tr("A trial is recording. Stopping the session stops the trial too.")) != QMessageBox::Yes) {
        return;
    }
    sessionCommand("session_stop", json::object(), tr("Stopping the session"));
}

void MainWindow::addNote(const QString& text, qint64 typed_mono_ns) {
    client_->request("note", json{{"text", text.toStdString()}, {"mono_ns", typed_mono_ns}},
                     [this, text](const CommandReply& r) {
                         if (!r.ok) {
                             notes_->noteFailed(text, r.message);
                             model_->addLog(QStringLiteral("error"), QStringLiteral("gui"), tr("note not added: %1").arg(r.message));
                         } else if (flag(r.result, "queued")) {
                             showStatus(tr("Note %1 is kept until the notes module is back").arg(integer(r.result, "note_id")), 8000);
                         }
                     });
}

void MainWindow::focusNotes() {
    tabs_->setCurrentIndex(NotesTab);
    notes_->focusEntry();
}

void MainWindow::startSupervisor() {
    if (client_->isConnected()) return showStatus(tr("A supervisor is already running"), 5000);
    QString why;
    // The config is checked and the process started off the GUI thread; a failure comes back
    // through the launcher's failed signal.
    if (!launcher_->start(chosen_config_, &why)) return showProblem(tr("Cannot start a supervisor: %1").arg(why));
    session_bar_->setStarting(true);
    showStatus(tr("Starting pilogger run --config %1").arg(chosen_config_) + QStringLiteral("…"), 10000);
}

void MainWindow::shutdownSupervisor() {
    if (!client_->isConnected()) return showProblem(tr("Not connected to the supervisor"));
    const QString question = model_->recording() ? tr("A trial is recording. Shut the supervisor down? It stops the trial "
                                                      "and the session and closes every file.")
                                                 : tr("Shut the supervisor down? It closes the session and every file.");
    if (QMessageBox::question(this, tr("Shut down"), question) != QMessageBox::Yes) return;
    command("shutdown", json::object(), tr("Shutting down"));
}

void MainWindow::setChosenConfig(const QString& path) {
    chosen_config_ = path;
    session_bar_->setChosenConfig(path);
}

void MainWindow::chooseConfig() {
    const QString path = QFileDialog::getOpenFileName(this, tr("Config to start the supervisor with"), chosen_config_,
                                                      tr("YAML (*.yaml *.yml)"));
    if (path.isEmpty()) return;
    // Read and checked with the CLI's loader on a pool thread: a file on a slow disk never holds the window.
    runOffThread(
        this,
        [path] {
            try {
                load_config_file(path.toStdString());
                return QString();
            } catch (const std::exception& e) {
                return QString::fromStdString(e.what());
            }
        },
        [this, path](const QString& problem) {
            if (!problem.isEmpty()) return showProblem(problem);
            setChosenConfig(path);
        });
}

void MainWindow::openSettings() {
    const QString running = model_->connected() ? qstr(model_->supervisor(), "config_file") : QString();
    auto* dialog = new SettingsDialog(running.isEmpty() ? chosen_config_ : running, running, this);
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    connect(dialog, &SettingsDialog::configSaved, this, &MainWindow::setChosenConfig);
    dialog->open();  // window-modal, without a nested event loop
}

void MainWindow::quitWithoutAsking() {
    quit_without_asking_ = true;
    close();
}

void MainWindow::closeEvent(QCloseEvent* event) {
    if (model_->recording() && !quit_without_asking_) {
        const auto answer = QMessageBox::question(
            this, tr("Quit pilogger-gui?"),
            tr("Trial %1 is recording. It goes on without the window; open pilogger-gui again to see it or stop it.\n\n"
               "Quit the window?")
                .arg(integer(model_->trial(), "number")));
        if (answer != QMessageBox::Yes) {
            event->ignore();
            return;
        }
    }
    saveSettings();
    event->accept();
}

// ---- decoration ----

void MainWindow::updateTitle() {
    // Latin-1 only: on X11 a title with any other character is also set as COMPOUND_TEXT, and Xlib
    // asks the X server for that atom with a round trip the first time, which blocked the loop for
    // 20-200 ms on a busy machine.
    QString title = QStringLiteral("pilogger");
    if (model_->connected() && model_->session().is_object()) {
        title += QStringLiteral(" - ") + qstr(model_->session(), "name");
        if (model_->recording()) title += tr(" - recording trial %1").arg(integer(model_->trial(), "number"));
    }
    if (title != windowTitle()) setWindowTitle(title);
}

void MainWindow::showStatus(const QString& text, int ms, bool problem) {
    connection_->setText(text);
    connection_->setToolTip(text);
    connection_->setStyleSheet(problem ? QStringLiteral("color: #c62828;") : QString());
    message_timer_.start(ms);
}

void MainWindow::updateConnectionLabel() {
    if (message_timer_.isActive()) return;  // the message stays its time; the state comes after
    connection_->setStyleSheet(QString());
    QString text;
    if (model_->connected()) {
        const json& sup = model_->supervisor();
        text = tr("Connected to pilogger %1 (pid %2)").arg(qstr(sup, "version")).arg(integer(sup, "pid"));
    } else if (launcher_->starting()) {
        text = tr("Starting a supervisor…");
    } else {
        text = connect_problem_.isEmpty() ? tr("Connecting to %1…").arg(client_->socketPath())
                                          : connect_problem_ + tr("; retrying");
    }
    connection_->setText(text);
    connection_->setToolTip(client_->socketPath());
}

void MainWindow::takeScreenshot() {
    const bool ok = grab().save(options_.screenshot_file, "PNG");
    std::fprintf(stderr, "pilogger-gui: %s %s (%dx%d)\n", ok ? "saved" : "could not save",
                 qPrintable(options_.screenshot_file), width(), height());
    quitWithoutAsking();
}

void MainWindow::restoreSettings() {
    QSettings s;
    restoreGeometry(s.value(QStringLiteral("window/geometry")).toByteArray());
    splitter_->restoreState(s.value(QStringLiteral("window/splitter")).toByteArray());
    tabs_->setCurrentIndex(s.value(QStringLiteral("window/tab"), 0).toInt());
    if (!geometry().isValid() || s.value(QStringLiteral("window/geometry")).isNull()) resize(1024, 640);
    setChosenConfig(s.value(QStringLiteral("config_file")).toString());
    session_bar_->setSessionLabel(s.value(QStringLiteral("labels/session")).toString());
}

void MainWindow::saveSettings() {
    // Screenshots and benchmarks resize the window on purpose: they must not change a user's layout.
    if (!options_.screenshot_file.isEmpty() || options_.quit_after_s > 0) return;
    // Written on a pool thread (QSettings writes a file); the application waits for it at exit.
    const std::vector<std::pair<QString, QVariant>> values = {
        {QStringLiteral("window/geometry"), saveGeometry()},
        {QStringLiteral("window/splitter"), splitter_->saveState()},
        {QStringLiteral("window/tab"), tabs_->currentIndex()},
        {QStringLiteral("config_file"), chosen_config_},
        {QStringLiteral("labels/session"), session_bar_->sessionLabel()},
    };
    const QString organization = QCoreApplication::organizationName();
    const QString application = QCoreApplication::applicationName();
    runOffThread(
        QCoreApplication::instance(),
        [values, organization, application] {
            QSettings s(organization, application);
            for (const auto& [key, value] : values) s.setValue(key, value);
            s.sync();
            return 0;
        },
        [](int) {});
}

}  // namespace pilogger::gui

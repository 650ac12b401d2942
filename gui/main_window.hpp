// The main window: the session bar on top, previews on the left, and tabs for notes, modules,
// the Pico W and the log on the right. It wires the supervisor client to the state model and
// the model to the panels, and turns buttons and shortcuts into control commands.
#pragma once

#include "app_options.hpp"
#include "ndjson.hpp"

#include <QMainWindow>
#include <QTimer>

#include <functional>
#include <string>

class QLabel;
class QSplitter;
class QTabWidget;

namespace pilogger::gui {

struct CommandReply;
class EventLoopWatch;
class LatencyTrace;
class LogView;
class ModuleTable;
class NotesPanel;
class PicoPanel;
class PreviewPanel;
class SessionBar;
class StateModel;
class SupervisorClient;
class SupervisorLauncher;
class X11FrameGate;

class MainWindow : public QMainWindow {
    Q_OBJECT
    Q_PROPERTY(double maxEventLoopGapMs READ maxEventLoopGapMs)
public:
    explicit MainWindow(GuiOptions options, QWidget* parent = nullptr);
    ~MainWindow() override;

    SupervisorClient* client() const { return client_; }
    StateModel* model() const { return model_; }
    SessionBar* sessionBar() const { return session_bar_; }
    NotesPanel* notesPanel() const { return notes_; }
    ModuleTable* moduleTable() const { return modules_; }
    PreviewPanel* previewPanel() const { return previews_; }
    PicoPanel* picoPanel() const { return pico_; }
    LogView* logView() const { return log_; }
    QTabWidget* tabs() const { return tabs_; }
    // Longest time the event loop went without running a 10 ms timer (--watch-event-loop), else 0.
    // The watch runs from the moment the window is first shown: its first layout and paint, the
    // first status filling every panel and everything after count.
    double maxEventLoopGapMs() const;
    EventLoopWatch* eventLoopWatch() const { return watch_; }
    // Holds repaints until the X server has taken the last frame (null off X11).
    X11FrameGate* frameGate() const { return frame_gate_; }
    // Panels still to be redrawn from the model (each gets an event-loop turn of its own).
    bool refreshPending() const { return pending_parts_ != 0; }
    // The config a supervisor would be started with.
    const QString& chosenConfig() const { return chosen_config_; }

    // The actions behind the buttons and shortcuts.
    void toggleRecording();
    void toggleSession();
    void addNote(const QString& text, qint64 typed_mono_ns);
    void startSupervisor();
    void focusNotes();
    // Quits without asking, even while recording (the recording goes on).
    void quitWithoutAsking();

    void setVisible(bool visible) override;

protected:
    void closeEvent(QCloseEvent* event) override;

private:
    // What the window redraws from the model. A change asks for the parts it touches; they are
    // redrawn soon after, one part per event-loop turn, so a whole status (the first one fills
    // every panel) never holds the loop for the sum of them, and a burst of events redraws once.
    enum Part : unsigned {
        PartHeader = 1,  // title and connection line
        PartSessionBar = 2,
        PartModules = 4,
        PartPico = 8,
        PartPreviews = 16,
        PartNotes = 32,
    };
    void schedule(unsigned parts);
    void refreshNext();
    void buildMenus();
    void wireModel();
    void onSubscribed(const json& status);
    void onEvent(const json& event, qint64 received_ns);
    void requestStatus();
    // Sends a command; a failure is shown in words (status bar and log), never as a dialog.
    void command(const std::string& cmd, const json& args, const QString& doing,
                 std::function<void(const CommandReply&)> then = {});
    void sessionCommand(const std::string& cmd, const json& args, const QString& doing,
                        std::function<void()> then = {});
    void showProblem(const QString& text);
    // Shows text in the status line for ms, then the connection state again.
    void showStatus(const QString& text, int ms, bool problem = false);
    void setChosenConfig(const QString& path);
    void chooseConfig();
    void openSettings();
    void shutdownSupervisor();
    void updateTitle();
    void updateConnectionLabel();
    void takeScreenshot();
    void restoreSettings();
    void saveSettings();

    GuiOptions options_;
    StateModel* model_;
    SupervisorClient* client_;
    SupervisorLauncher* launcher_;
    SessionBar* session_bar_;
    PreviewPanel* previews_;
    QTabWidget* tabs_;
    NotesPanel* notes_;
    ModuleTable* modules_;
    PicoPanel* pico_;
    LogView* log_;
    QSplitter* splitter_;
    QLabel* connection_;
    EventLoopWatch* watch_ = nullptr;
    X11FrameGate* frame_gate_ = nullptr;
    LatencyTrace* trace_ = nullptr;
    QTimer status_timer_;
    QTimer clock_timer_;
    QTimer message_timer_;
    QTimer refresh_timer_;
    unsigned pending_parts_ = 0;
    QString chosen_config_;
    QString connect_problem_;
    bool status_in_flight_ = false;
    bool busy_ = false;
    bool auto_start_pending_ = false;
    bool quit_without_asking_ = false;
    int unseen_errors_ = 0;
};

}  // namespace pilogger::gui

// Edits a YAML config file. Every change is checked with the loader the CLI and the supervisor
// use (logger_core/config/config.hpp), so the messages are the same as `pilogger config check`: file,
// line, column, key and what was expected. An invalid file is never saved. Reading, checking and
// writing the file run on a pool thread: the window never waits for the disk or the parser.
#pragma once

#include <QDialog>
#include <QTimer>

#include <string>

class QLabel;
class QPlainTextEdit;
class QPushButton;

namespace pilogger::gui {

class SettingsDialog : public QDialog {
    Q_OBJECT
public:
    // running_config: the file the connected supervisor runs with (empty if none), to say when a
    // change takes effect. The file is read on a pool thread; the editor waits for it.
    SettingsDialog(const QString& path, const QString& running_config, QWidget* parent = nullptr);

    const QString& path() const { return path_; }
    QPlainTextEdit* editor() const { return editor_; }
    // Checks the text now, with the loader on a pool thread: checked follows (an edit or a newer
    // check drops an older answer).
    void validate();
    // The last answer: whether the loader accepted the text, and what it said.
    bool valid() const { return valid_; }
    const QString& message() const { return message_; }
    // The 1-based line a message points at, or 0.
    static int lineOf(const QString& message);
    // Checks the text and, only when the loader accepts it, writes it whole; both on a pool
    // thread. saveFinished follows (and configSaved when written).
    void save();

Q_SIGNALS:
    void checked(bool ok);
    void saveFinished(bool saved);
    // A file was saved (possibly under another name): the window starts supervisors with it.
    void configSaved(const QString& path);

private:
    // What the loader said of a text; runs on a pool thread.
    struct Check {
        bool ok = false;
        bool same_as_running = false;  // the file is the one the supervisor runs with
        QString message;
    };
    static Check check(const std::string& text, const QString& path, const QString& running_config);
    void load(const QString& path);
    void showResult(const Check& result);
    void saveAs();
    void openFile();

    QString path_;
    QString running_config_;
    QString message_;
    bool valid_ = false;
    quint64 generation_ = 0;  // bumped by every edit and check: older answers are dropped
    QPlainTextEdit* editor_;
    QLabel* status_;
    QPushButton* save_;
    QTimer check_timer_;
};

}  // namespace pilogger::gui

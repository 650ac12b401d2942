// Edits a YAML config file. Every change is checked with the loader the CLI and the supervisor
// use (logger_core/config.hpp), so the messages are the same as `pilogger config check`: file,
// line, column, key and what was expected. An invalid file is never saved.
#pragma once

#include <QDialog>
#include <QTimer>

class QLabel;
class QPlainTextEdit;
class QPushButton;

namespace pilogger::gui {

class SettingsDialog : public QDialog {
    Q_OBJECT
public:
    // running_config: the file the connected supervisor runs with (empty if none), to say when a
    // change takes effect.
    SettingsDialog(const QString& path, const QString& running_config, QWidget* parent = nullptr);

    const QString& path() const { return path_; }
    QPlainTextEdit* editor() const { return editor_; }
    // Checks the text now; true when the loader accepts it. message() says what it found.
    bool validate();
    const QString& message() const { return message_; }
    // The 1-based line a message points at, or 0.
    static int lineOf(const QString& message);
    bool save();

Q_SIGNALS:
    // A file was saved (possibly under another name): the window starts supervisors with it.
    void configSaved(const QString& path);

private:
    bool load(const QString& path);
    void showResult(bool ok);
    void saveAs();
    void openFile();

    QString path_;
    QString running_config_;
    QString message_;
    QPlainTextEdit* editor_;
    QLabel* status_;
    QPushButton* save_;
    QTimer check_timer_;
};

}  // namespace pilogger::gui

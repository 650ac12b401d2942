// Notes: an entry box (Enter adds, Shift+Enter starts a new line) and the session's history,
// newest first. A note is stamped when Enter is pressed, not when it reaches the supervisor.
#pragma once

#include "notes_file.hpp"

#include <QPlainTextEdit>
#include <QWidget>

class QLabel;
class QPushButton;
class QTreeWidget;
class QTreeWidgetItem;

namespace pilogger::gui {

class StateModel;

class NoteEdit : public QPlainTextEdit {
    Q_OBJECT
public:
    explicit NoteEdit(QWidget* parent = nullptr);
    QSize sizeHint() const override;

Q_SIGNALS:
    // typed_mono_ns: CLOCK_MONOTONIC at the key press.
    void submitted(const QString& text, qint64 typed_mono_ns);

protected:
    void keyPressEvent(QKeyEvent* event) override;
};

class NotesPanel : public QWidget {
    Q_OBJECT
public:
    explicit NotesPanel(const StateModel& model, QWidget* parent = nullptr);

    NoteEdit* edit() const { return edit_; }
    QTreeWidget* history() const { return history_; }
    // Puts the cursor in the entry box.
    void focusEntry();
    // A note that could not be added comes back into the box, with the reason under it.
    void noteFailed(const QString& text, const QString& why);
    void clearProblem();

    // Redraws the whole history (another session, or older notes read from its file).
    void reload();
    void addNote(const NoteEntry& note);

Q_SIGNALS:
    void noteSubmitted(const QString& text, qint64 typed_mono_ns);

private:
    void submit(const QString& text, qint64 typed_mono_ns);
    QTreeWidgetItem* makeItem(const NoteEntry& note) const;

    const StateModel& model_;
    NoteEdit* edit_;
    QPushButton* add_;
    QLabel* problem_;
    QTreeWidget* history_;
};

}  // namespace pilogger::gui

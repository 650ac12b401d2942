#include "notes_panel.hpp"

#include "clock.hpp"
#include "format.hpp"
#include "state_model.hpp"

#include <QHBoxLayout>
#include <QHeaderView>
#include <QKeyEvent>
#include <QLabel>
#include <QPushButton>
#include <QTreeWidget>
#include <QVBoxLayout>

namespace pilogger::gui {

// ---- NoteEdit ----

NoteEdit::NoteEdit(QWidget* parent) : QPlainTextEdit(parent) {
    setObjectName(QStringLiteral("noteEdit"));
    setPlaceholderText(tr("Type a note: Enter adds it, Shift+Enter starts a new line (Ctrl+N comes here)"));
    setTabChangesFocus(true);
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
}

QSize NoteEdit::sizeHint() const {
    // Three lines: room for a sentence, small enough for an 800x480 screen.
    const int lines = 3;
    return {300, fontMetrics().lineSpacing() * lines + 2 * frameWidth() + 12};
}

void NoteEdit::keyPressEvent(QKeyEvent* event) {
    const bool enter = event->key() == Qt::Key_Return || event->key() == Qt::Key_Enter;
    if (enter && !(event->modifiers() & Qt::ShiftModifier)) {
        // The moment of the key press is the note's time, whatever the link does afterwards.
        const qint64 typed = mono_ns();
        const QString text = toPlainText().trimmed();
        if (!text.isEmpty()) Q_EMIT submitted(text, typed);
        event->accept();
        return;
    }
    if (enter) {
        insertPlainText(QStringLiteral("\n"));
        event->accept();
        return;
    }
    QPlainTextEdit::keyPressEvent(event);
}

// ---- NotesPanel ----

NotesPanel::NotesPanel(const StateModel& model, QWidget* parent) : QWidget(parent), model_(model) {
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    auto* entry = new QHBoxLayout;
    edit_ = new NoteEdit(this);
    add_ = new QPushButton(tr("Add note"), this);
    add_->setObjectName(QStringLiteral("addNoteButton"));
    add_->setMinimumSize(90, 40);
    entry->addWidget(edit_, 1);
    entry->addWidget(add_, 0, Qt::AlignTop);
    layout->addLayout(entry);
    problem_ = new QLabel(this);
    problem_->setStyleSheet(QStringLiteral("color: #c62828;"));
    problem_->setWordWrap(true);
    problem_->hide();
    layout->addWidget(problem_);

    history_ = new QTreeWidget(this);
    history_->setObjectName(QStringLiteral("noteHistory"));
    history_->setColumnCount(4);
    history_->setHeaderLabels({tr("#"), tr("Time"), tr("Trial"), tr("Note")});
    history_->setRootIsDecorated(false);
    history_->setUniformRowHeights(true);
    history_->setSelectionMode(QAbstractItemView::NoSelection);
    history_->header()->setSectionResizeMode(QHeaderView::ResizeToContents);
    history_->header()->setStretchLastSection(true);
    layout->addWidget(history_, 1);

    connect(edit_, &NoteEdit::submitted, this, &NotesPanel::submit);
    connect(add_, &QPushButton::clicked, this, [this] {
        const QString text = edit_->toPlainText().trimmed();
        if (!text.isEmpty()) submit(text, mono_ns());
    });
}

void NotesPanel::focusEntry() {
    edit_->setFocus(Qt::ShortcutFocusReason);
}

void NotesPanel::submit(const QString& text, qint64 typed_mono_ns) {
    // The box empties at once so the next note can be typed; a failure puts the text back.
    edit_->clear();
    clearProblem();
    Q_EMIT noteSubmitted(text, typed_mono_ns);
}

void NotesPanel::noteFailed(const QString& text, const QString& why) {
    if (edit_->toPlainText().trimmed().isEmpty()) edit_->setPlainText(text);
    problem_->setText(tr("The note was not added: %1").arg(why));
    problem_->show();
}

void NotesPanel::clearProblem() { problem_->hide(); }

QTreeWidgetItem* NotesPanel::makeItem(const NoteEntry& note) const {
    auto* item = new QTreeWidgetItem;
    item->setText(0, QString::number(note.id));
    item->setText(1, formatDuration(note.session_elapsed_s));
    item->setToolTip(1, tr("%1 s into the session").arg(note.session_elapsed_s, 0, 'f', 3));
    item->setText(2, note.trial > 0 ? QString::number(note.trial) : QString());
    QString shown = note.text;
    shown.replace(QLatin1Char('\n'), QStringLiteral(" ⏎ "));
    item->setText(3, shown);
    item->setToolTip(3, note.text);
    item->setData(0, Qt::UserRole, QVariant::fromValue<qlonglong>(note.id));
    return item;
}

void NotesPanel::addNote(const NoteEntry& note) {
    // Newest first: a later id goes above every older one.
    int at = 0;
    while (at < history_->topLevelItemCount() &&
           history_->topLevelItem(at)->data(0, Qt::UserRole).toLongLong() > note.id) {
        ++at;
    }
    history_->insertTopLevelItem(at, makeItem(note));
}

void NotesPanel::reload() {
    // All rows in one insertion: the columns are sized to their contents once, not per row.
    history_->clear();
    QList<QTreeWidgetItem*> items;
    items.reserve(static_cast<qsizetype>(model_.notes().size()));
    for (auto it = model_.notes().rbegin(); it != model_.notes().rend(); ++it) items.append(makeItem(*it));
    history_->addTopLevelItems(items);
}

}  // namespace pilogger::gui

// The note history of a session that was open before the GUI connected: read back from
// <session>/notes/notes*.csv (RFC 4180, as the notes module writes it), off the GUI thread.
#pragma once

#include <QByteArray>
#include <QObject>
#include <QString>

#include <cstdint>
#include <functional>
#include <vector>

namespace pilogger::gui {

struct NoteEntry {
    int64_t id = 0;
    int64_t mono_ns = 0;
    double session_elapsed_s = 0;
    int trial = 0;  // 0: outside a trial
    QString text;
};

// Rows of one notes CSV (header row first); rows that do not parse are skipped and counted.
std::vector<NoteEntry> parseNotesCsv(const QByteArray& data, int* skipped = nullptr);

// Reads every notes*.csv of the session on a pool thread; done runs on the GUI thread, unless
// context is gone by then.
void loadSessionNotes(const QString& session_dir, QObject* context,
                      std::function<void(std::vector<NoteEntry> notes, QString problem)> done);

}  // namespace pilogger::gui

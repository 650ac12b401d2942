#include "notes_file.hpp"

#include "off_thread.hpp"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QPointer>
#include <QThreadPool>

#include <algorithm>
#include <map>

namespace pilogger::gui {

namespace {

// Splits RFC 4180 text into rows of fields: quoted fields may hold commas, quotes ("") and
// line breaks.
std::vector<std::vector<QString>> csvRows(const QByteArray& data) {
    std::vector<std::vector<QString>> rows;
    std::vector<QString> row;
    QByteArray field;
    bool quoted = false;
    bool field_started = false;
    auto end_field = [&] {
        row.push_back(QString::fromUtf8(field));
        field.clear();
        field_started = false;
    };
    auto end_row = [&] {
        end_field();
        rows.push_back(std::move(row));
        row.clear();
    };
    for (qsizetype i = 0; i < data.size(); ++i) {
        const char c = data[i];
        if (quoted) {
            if (c == '"') {
                if (i + 1 < data.size() && data[i + 1] == '"') {
                    field += '"';
                    ++i;
                } else {
                    quoted = false;
                }
            } else {
                field += c;
            }
        } else if (c == '"' && !field_started) {
            quoted = true;
            field_started = true;
        } else if (c == ',') {
            end_field();
        } else if (c == '\n') {
            end_row();
        } else if (c != '\r') {
            field += c;
            field_started = true;
        }
    }
    // A last line without its newline was torn by a crash: leave it out.
    return rows;
}

}  // namespace

std::vector<NoteEntry> parseNotesCsv(const QByteArray& data, int* skipped) {
    std::vector<NoteEntry> notes;
    int bad = 0;
    auto rows = csvRows(data);
    if (rows.empty()) return notes;
    std::map<QString, size_t> column;
    for (size_t i = 0; i < rows[0].size(); ++i) column[rows[0][i]] = i;
    auto index = [&](const char* name) -> long {
        auto it = column.find(QString::fromLatin1(name));
        return it == column.end() ? -1 : static_cast<long>(it->second);
    };
    const long id = index("note_id"), mono = index("mono_ns"), elapsed = index("session_elapsed_s"),
               trial = index("trial"), text = index("text");
    if (id < 0 || text < 0) {
        if (skipped) *skipped = static_cast<int>(rows.size()) - 1;
        return notes;
    }
    for (size_t r = 1; r < rows.size(); ++r) {
        const auto& row = rows[r];
        auto field = [&](long i) { return i >= 0 && static_cast<size_t>(i) < row.size() ? row[static_cast<size_t>(i)] : QString(); };
        bool ok = false;
        NoteEntry n;
        n.id = field(id).toLongLong(&ok);
        if (!ok || static_cast<size_t>(text) >= row.size()) {
            ++bad;
            continue;
        }
        n.mono_ns = field(mono).toLongLong();
        n.session_elapsed_s = field(elapsed).toDouble();
        n.trial = field(trial).toInt();
        n.text = field(text);
        notes.push_back(std::move(n));
    }
    if (skipped) *skipped = bad;
    return notes;
}

void loadSessionNotes(const QString& session_dir, QObject* context,
                      std::function<void(std::vector<NoteEntry> notes, QString problem)> done) {
    QPointer<QObject> guard(context);
    ioThreadPool()->start([session_dir, guard, done = std::move(done)] {
        std::vector<NoteEntry> notes;
        QString problem;
        QDir dir(session_dir + QStringLiteral("/notes"));
        // notes.csv, then notes_p2.csv ... (a file whose last line was torn is continued in a part)
        const QStringList files = dir.entryList({QStringLiteral("notes*.csv")}, QDir::Files, QDir::Name);
        for (const QString& name : files) {
            QFile f(dir.filePath(name));
            if (!f.open(QIODevice::ReadOnly)) {
                problem = QStringLiteral("cannot read %1: %2").arg(f.fileName(), f.errorString());
                continue;
            }
            auto part = parseNotesCsv(f.readAll());
            notes.insert(notes.end(), part.begin(), part.end());
        }
        std::sort(notes.begin(), notes.end(), [](const NoteEntry& a, const NoteEntry& b) { return a.id < b.id; });
        // Back on the GUI thread through the application object, which outlives the pool's work.
        QMetaObject::invokeMethod(
            QCoreApplication::instance(),
            [guard, done, notes = std::move(notes), problem]() mutable {
                if (guard) done(std::move(notes), problem);
            },
            Qt::QueuedConnection);
    });
}

}  // namespace pilogger::gui

// What the GUI shows, mirrored from the supervisor: the last status (subscribe's answer and the
// periodic refresh) with the event stream applied on top. The GUI keeps no truth of its own;
// the panels read from here and redraw on the signals.
#pragma once

#include "data_rate.hpp"
#include "notes_file.hpp"
#include "ndjson.hpp"

#include <QObject>
#include <QString>

#include <cstdint>
#include <deque>
#include <vector>

namespace pilogger::gui {

struct LogEntry {
    int64_t mono_ns = 0;
    QString level;   // error, warning, info
    QString module;  // "" for the supervisor, "gui" for the GUI's own failures
    QString text;
};

class StateModel : public QObject {
    Q_OBJECT
public:
    static constexpr size_t kMaxLogEntries = 2000;

    explicit StateModel(QObject* parent = nullptr) : QObject(parent) {}

    bool connected() const { return connected_; }
    // Each is null until known.
    const json& supervisor() const { return supervisor_; }
    const json& session() const { return session_; }
    const json& trial() const { return trial_; }
    const json& pico() const { return pico_; }
    const json& disk() const { return disk_; }
    // Array of module statuses (name, type, enabled, state, pid, restarts, last_error, stats ...).
    const json& modules() const { return modules_; }
    const json* module(const std::string& name) const;
    bool recording() const { return trial_.is_object(); }
    QString sessionDir() const;

    // Notes of the current session, ordered by id.
    const std::vector<NoteEntry>& notes() const { return notes_; }
    // Newest last.
    const std::deque<LogEntry>& log() const { return log_; }
    const DataRate& dataRate() const { return rate_; }

    void setDisconnected(const QString& why);
    // The whole state: the answer to subscribe or status.
    void applyStatus(const json& status);
    // One event of the stream (its body, with "event" naming it).
    void applyEvent(const json& event, int64_t received_ns);
    // The history read from the session's notes files; ignored if that session is no longer open.
    void addNotesFromFile(const QString& session_dir, const std::vector<NoteEntry>& notes);
    void addLog(const QString& level, const QString& module, const QString& text, int64_t mono_ns = 0);

Q_SIGNALS:
    void connectionChanged(bool connected);
    // Session or trial opened, closed or relabelled; counters of either.
    void sessionChanged();
    // A module appeared, went, or changed state or stats.
    void modulesChanged();
    void picoChanged();
    void diskChanged();
    void supervisorChanged();
    // A different session (or none): the note history starts over.
    void notesReset();
    void noteAdded(const pilogger::gui::NoteEntry& note);
    void logAdded(const pilogger::gui::LogEntry& entry);
    // A session whose earlier notes are on disk only; the window reads them off the GUI thread.
    void historyWanted(const QString& session_dir);
    // An event left the state incomplete (a new session's details): ask for a status now.
    void refreshWanted();

private:
    void setSession(const json& session);
    bool insertNote(const NoteEntry& note);
    void feedRate(const json& module_status, int64_t now_ns);

    bool connected_ = false;
    json supervisor_;
    json session_;
    json trial_;
    json modules_ = json::array();
    json pico_;
    json disk_;
    QString notes_session_;  // the session the notes belong to
    std::vector<NoteEntry> notes_;
    std::deque<LogEntry> log_;
    DataRate rate_;
};

}  // namespace pilogger::gui

#include "state_model.hpp"

#include "clock.hpp"
#include "json_util.hpp"

#include <algorithm>
#include <set>

namespace pilogger::gui {

namespace {

// supervisor_event names worth a line in the log view, with their weight. The modules' own
// warning and error events arrive as module_warning / module_error here too, so they are
// taken from this stream only (never twice).
QString severityOf(const std::string& name) {
    static const std::set<std::string> errors = {"module_crash", "module_hung", "module_error", "disk_low",
                                                 "module_protocol_error", "note_undelivered"};
    static const std::set<std::string> warnings = {"module_warning", "ack_timeout", "module_stop_escalation",
                                                   "module_restart_scheduled"};
    if (errors.count(name)) return QStringLiteral("error");
    if (warnings.count(name)) return QStringLiteral("warning");
    return QStringLiteral("info");
}

}  // namespace

const json* StateModel::module(const std::string& name) const {
    for (const auto& m : modules_) {
        if (str(m, "name") == name) return &m;
    }
    return nullptr;
}

QString StateModel::sessionDir() const { return qstr(session_, "dir"); }

void StateModel::setDisconnected(const QString& why) {
    const bool was = connected_;
    connected_ = false;
    if (was) {
        addLog(QStringLiteral("warning"), QStringLiteral("gui"), QStringLiteral("lost the supervisor: ") + why);
        Q_EMIT connectionChanged(false);
    }
}

void StateModel::applyStatus(const json& status) {
    if (!status.is_object()) return;
    const bool was_connected = connected_;
    connected_ = true;
    // After a (re)connect the note history is read again: notes made meanwhile are in the file.
    if (!was_connected) notes_session_.clear();
    supervisor_ = field(status, "supervisor");
    setSession(field(status, "session"));
    trial_ = field(status, "trial");
    modules_ = field(status, "modules");
    if (!modules_.is_array()) modules_ = json::array();
    // The data rate is fed from stats events only: a status repeats the last counters at a later
    // time, which would read as a pause in writing.
    pico_ = field(status, "pico");
    disk_ = field(status, "disk");
    if (!was_connected) Q_EMIT connectionChanged(true);
    Q_EMIT supervisorChanged();
    Q_EMIT sessionChanged();
    Q_EMIT modulesChanged();
    Q_EMIT picoChanged();
    Q_EMIT diskChanged();
}

void StateModel::setSession(const json& session) {
    session_ = session.is_object() ? session : json();
    const QString dir = sessionDir();
    if (dir == notes_session_) return;
    notes_session_ = dir;
    notes_.clear();
    rate_.reset();
    Q_EMIT notesReset();
    if (!dir.isEmpty()) Q_EMIT historyWanted(dir);
}

void StateModel::applyEvent(const json& event, int64_t received_ns) {
    if (!event.is_object()) return;
    const std::string name = str(event, "event");
    if (name == "stats") {
        const std::string module = str(event, "module");
        for (auto& m : modules_) {
            if (str(m, "name") != module) continue;
            json stats = event;
            stats.erase("event");
            stats.erase("module");
            m["stats"] = std::move(stats);
            feedRate(m, received_ns);
            Q_EMIT modulesChanged();
            return;
        }
        Q_EMIT refreshWanted();  // a module we have not seen yet
    } else if (name == "module_state") {
        json status = event;
        status.erase("event");
        const std::string module = str(status, "name");
        for (auto& m : modules_) {
            if (str(m, "name") == module) {
                m = std::move(status);
                Q_EMIT modulesChanged();
                return;
            }
        }
        modules_.push_back(std::move(status));
        Q_EMIT modulesChanged();
    } else if (name == "session") {
        if (flag(event, "active")) {
            // The event names the session; its start instant and label come with the next status.
            setSession(json{{"name", str(event, "name")}, {"dir", str(event, "dir")}, {"trials", 0}});
            Q_EMIT refreshWanted();
        } else {
            setSession(json());
            trial_ = json();
        }
        Q_EMIT sessionChanged();
    } else if (name == "trial") {
        if (flag(event, "active")) {
            const int64_t number = integer(event, "trial");
            trial_ = json{{"number", number},
                          {"label", str(event, "label")},
                          {"start_at_mono_ns", integer(event, "start_at_mono_ns")}};
            if (session_.is_object()) session_["trials"] = std::max(integer(session_, "trials"), number);
        } else {
            trial_ = json();
        }
        Q_EMIT sessionChanged();
    } else if (name == "note") {
        NoteEntry n;
        n.id = integer(event, "note_id");
        n.mono_ns = integer(event, "mono_ns");
        n.session_elapsed_s = real(event, "session_elapsed_s");
        n.trial = static_cast<int>(integer(event, "trial"));
        n.text = qstr(event, "text");
        if (insertNote(n)) Q_EMIT noteAdded(n);
    } else if (name == "supervisor_event") {
        const std::string what = str(event, "name");
        QString detail = qstr(event, "detail");
        QString text = QString::fromStdString(what);
        if (!detail.isEmpty()) text += QStringLiteral(": ") + detail;
        addLog(severityOf(what), qstr(event, "module"), text, integer(event, "at_mono_ns", received_ns));
    } else if (name == "log") {
        // Modules send warnings and errors as their own events (seen above as supervisor events);
        // a log event is shown only at those levels.
        const QString level = qstr(event, "level");
        if (level == QLatin1String("warning") || level == QLatin1String("error")) {
            addLog(level, qstr(event, "module"), qstr(event, "message"), received_ns);
        }
    }
}

void StateModel::feedRate(const json& module_status, int64_t now_ns) {
    const json& bytes = field(field(module_status, "stats"), "bytes_written");
    if (bytes.is_number()) rate_.add(str(module_status, "name"), integer(field(module_status, "stats"), "bytes_written"), now_ns);
}

bool StateModel::insertNote(const NoteEntry& note) {
    auto at = std::lower_bound(notes_.begin(), notes_.end(), note.id,
                               [](const NoteEntry& n, int64_t id) { return n.id < id; });
    if (at != notes_.end() && at->id == note.id) return false;
    notes_.insert(at, note);
    return true;
}

void StateModel::addNotesFromFile(const QString& session_dir, const std::vector<NoteEntry>& notes) {
    if (session_dir != notes_session_) return;
    bool added = false;
    for (const auto& n : notes) added = insertNote(n) || added;
    // Older notes go below the ones already shown: redraw the whole list once.
    if (added) Q_EMIT notesReset();
}

void StateModel::addLog(const QString& level, const QString& module, const QString& text, int64_t mono) {
    LogEntry e{mono != 0 ? mono : mono_ns(), level, module, text};
    log_.push_back(e);
    while (log_.size() > kMaxLogEntries) log_.pop_front();
    Q_EMIT logAdded(e);
}

}  // namespace pilogger::gui

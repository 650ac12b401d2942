// Notes: stamped when they arrive, queued while the notes module (the module with the capability
// "note") is down, delivered in order, and kept in events.csv if it never comes back.
#include "supervisor.hpp"
#include "supervisor_detail.hpp"

#include "clock.hpp"
#include "json_read.hpp"

#include <algorithm>
#include <cstdlib>

namespace pilogger {

using supervisor_detail::ok_result;

namespace {
constexpr size_t kMaxQueuedNotes = 1000;
// Each note waiting for the notes module is held twice (its arguments and the line to the module):
// 40 clients sending 64 KiB notes as fast as they can were +44 MB.
constexpr size_t kMaxNoteBytesWaiting = 2 * 1024 * 1024;

size_t note_text_bytes(const json& args) {
    const json& text = read::field(args, "text");
    return text.is_string() ? text.get_ref<const std::string&>().size() : 0;
}
}  // namespace

Supervisor::Entry* Supervisor::notes_module() {
    for (auto& e : modules_) {
        if (e.process->config().has_capability("note") && e.process->enabled()) return &e;
    }
    return nullptr;
}

std::vector<std::string> Supervisor::recording_modules() const {
    std::vector<std::string> names;
    for (const auto& e : modules_) {
        if (!e.process->config().has_capability("note") && e.process->state() == ModuleProcess::State::Recording) {
            names.push_back(e.process->name());
        }
    }
    return names;
}

void Supervisor::add_note(const std::string& text, std::optional<int64_t> client_mono_ns, ResultCallback done) {
    if (!session_ || session_closing_) {
        return done(CommandResult::failure(errc::kBadState, "no session is open; notes are kept in a session's folder"));
    }
    Entry* notes = notes_module();
    if (notes == nullptr) {
        return done(CommandResult::failure(errc::kUnavailable, "no notes module is enabled (no enabled module in " +
                                                                   config_.source_file + " has the capability 'note')"));
    }
    if (queued_notes_.size() >= kMaxQueuedNotes || note_bytes_waiting_ + text.size() > kMaxNoteBytesWaiting) {
        ++notes_dropped_;
        std::string why = "too many notes waiting for the notes module (" + std::to_string(queued_notes_.size()) +
                          " queued, " + std::to_string(note_bytes_waiting_ / 1024) + " KiB; limits " +
                          std::to_string(kMaxQueuedNotes) + " and " + std::to_string(kMaxNoteBytesWaiting / 1024) +
                          " KiB); try again";
        if (refusal_limit_.allow(mono_ns())) record_event("note_refused", notes->process->name(), why);
        return done(CommandResult::failure(errc::kUnavailable, why));
    }
    note_bytes_waiting_ += text.size();
    int64_t now = mono_ns();
    // A client on this host may stamp the moment the note was typed; trust it within reason.
    int64_t at = client_mono_ns && std::llabs(*client_mono_ns - now) < 10'000'000'000LL ? *client_mono_ns : now;
    int64_t note_id = next_note_id_++;
    // Before the trial's start instant nothing records yet, even if every module has acknowledged.
    bool in_trial = trial_ && at >= trial_->start_at_mono_ns;
    json args{{"note_id", note_id},
              {"mono_ns", at},
              {"wall_time_utc", format_utc(realtime_ns() - (now - at))},
              {"session_elapsed_s", static_cast<double>(at - session_->start_mono_ns()) / 1e9},
              {"trial", in_trial ? trial_->number : 0},
              {"recording_modules", in_trial ? recording_modules() : std::vector<std::string>{}},
              {"text", text}};
    broadcast("note", args);
    bool deliverable = notes->process->connected() && notes->phase.session_generation == session_generation_;
    if (!deliverable) {
        log("warning", "note " + std::to_string(note_id) + " queued until the notes module is back");
        done(ok_result(json{{"note_id", note_id}, {"queued", true}}));
        queued_notes_.push_back(PendingNote{std::move(args), nullptr});
        return;
    }
    queued_notes_.push_back(PendingNote{std::move(args), std::move(done)});
    deliver_notes();
}

void Supervisor::deliver_notes() {
    Entry* notes = notes_module();
    if (notes == nullptr || !notes->process->connected() || notes->phase.session_generation != session_generation_ ||
        session_generation_ == 0 || session_closing_) {
        return;
    }
    while (!queued_notes_.empty()) {
        PendingNote note = std::move(queued_notes_.front());
        queued_notes_.pop_front();
        json args = note.args;
        notes->process->send("note", args, [this, args, done = std::move(note.done)](const CommandResult& r) {
            if (!r.ok && (r.code == errc::kUnavailable || r.code == errc::kTimeout)) {
                // The module went away with the note: send it again to the next process.
                queued_notes_.push_front(PendingNote{args, nullptr});
                if (done) done(ok_result(json{{"note_id", args["note_id"]}, {"queued", true}}));
                return;
            }
            note_bytes_waiting_ -= std::min(note_bytes_waiting_, note_text_bytes(args));
            if (!r.ok) log("error", "note " + args["note_id"].dump() + ": " + r.message);
            if (done) done(r);
        });
    }
}

void Supervisor::record_undelivered_notes() {
    // Notes that never reached the notes module are kept in events.csv rather than lost.
    const Entry* notes = notes_module();
    const std::string notes_name = notes != nullptr ? notes->process->name() : "";
    for (auto& pending : queued_notes_) {
        note_bytes_waiting_ -= std::min(note_bytes_waiting_, note_text_bytes(pending.args));
        record_event("note_undelivered", notes_name, pending.args.dump());
        if (pending.done) pending.done(CommandResult::failure(errc::kUnavailable, "the notes module never came back"));
    }
    queued_notes_.clear();
}

}  // namespace pilogger

#include "notes_module.hpp"

#include "clock.hpp"

#include <uv.h>

namespace pilogger {

const ModuleKind& notes_kind() {
    static const ModuleKind kind = [] {
        ModuleKind k;
        k.kind = "notes";
        k.summary = "timestamped notes typed by the researcher (GUI, `pilogger note`, or stdin standalone)";
        k.files = "`notes/notes.csv`";
        k.capabilities = {"note"};
        return k;
    }();
    return kind;
}

void NotesModule::configure(const json&, Reply reply) { reply.ok(); }

void NotesModule::start_session(const SessionInfo& session, Reply reply) {
    notes_dir_ = session.session_dir + "/notes";
    session_start_mono_ns_ = session.session_start_mono_ns;
    // The folder may exist (restart in the middle of a session): then the file is continued.
    auto* req = new uv_fs_t{};
    struct Pending {
        NotesModule* self;
        Reply reply;
    };
    req->data = new Pending{this, std::move(reply)};
    int rc = uv_fs_mkdir(runtime_.loop().get(), req, notes_dir_.c_str(), 0755, [](uv_fs_t* r) {
        auto* pending = static_cast<Pending*>(r->data);
        ssize_t result = r->result;
        uv_fs_req_cleanup(r);
        delete r;
        NotesModule* self = pending->self;
        Reply answer = std::move(pending->reply);
        delete pending;
        if (result < 0 && result != UV_EEXIST) {
            answer.error(errc::kIoError, "cannot create " + self->notes_dir_ + ": " +
                                            uv_strerror(static_cast<int>(result)));
            return;
        }
        FileWriterOptions options;
        options.mode = FileWriterOptions::Mode::Append;
        self->writer_ = std::make_unique<AsyncFileWriter>(
            self->runtime_.loop(), self->notes_dir_ + "/notes.csv", kNotesColumns, options,
            [self](const std::string& message) {
                self->last_error_ = message;
                self->runtime_.log("error", message);
            });
        answer.ok(json{{"file", self->writer_->path()}});
    });
    if (rc < 0) {
        auto* pending = static_cast<Pending*>(req->data);
        pending->reply.error(errc::kIoError, "cannot create " + notes_dir_ + ": " + uv_strerror(rc));
        delete pending;
        delete req;
    }
}

void NotesModule::start_recording(const RecordingInfo& recording, Reply reply) {
    trial_ = recording.trial;
    reply.ok();
}

void NotesModule::stop_recording(int64_t, Reply reply) {
    trial_ = 0;
    reply.ok();
}

void NotesModule::close_file(std::function<void()> done) {
    if (!writer_) {
        done();
        return;
    }
    writer_->close([this, done = std::move(done)] {
        writer_.reset();
        done();
    });
}

void NotesModule::stop_session(Reply reply) {
    auto shared = std::make_shared<Reply>(std::move(reply));
    close_file([shared] { shared->ok(); });
}

void NotesModule::finish(std::function<void()> done) { close_file(std::move(done)); }

bool NotesModule::command(const std::string& name, const json& args, Reply& reply) {
    if (name != "note") return false;
    add_note(args, std::move(reply));
    return true;
}

void NotesModule::add_note(const json& args, Reply reply) {
    if (!writer_) {
        reply.error(errc::kBadState, "no session is open: notes need a session folder");
        return;
    }
    auto text = args.find("text");
    if (text == args.end() || !text->is_string()) {
        reply.error(errc::kBadRequest, "note needs \"text\" (a string)");
        return;
    }
    // The supervisor stamps notes when it receives them; standalone, this module does.
    int64_t now = mono_ns();
    int64_t note_id = args.value("note_id", next_note_id_);
    int64_t at = args.value("mono_ns", now);
    std::string wall = args.value("wall_time_utc", format_utc(realtime_ns() - (now - at)));
    double elapsed = args.value("session_elapsed_s", static_cast<double>(at - session_start_mono_ns_) / 1e9);
    int trial = args.value("trial", trial_);
    std::string recording;
    for (const auto& m : args.value("recording_modules", json::array())) {
        if (!m.is_string()) continue;
        if (!recording.empty()) recording += ";";
        recording += m.get<std::string>();
    }
    next_note_id_ = std::max(next_note_id_, note_id + 1);

    CsvRow row;
    row.add(note_id).add(at).add(wall).add(elapsed, 3);
    if (trial > 0) {
        row.add(trial);
    } else {
        row.empty();
    }
    row.add(recording).add(text->get<std::string>());
    if (!writer_->write_row(row)) {
        reply.error(errc::kIoError, "note " + std::to_string(note_id) + " could not be queued for " +
                                        writer_->path() + (last_error_.empty() ? "" : ": " + last_error_));
        return;
    }
    ++notes_written_;
    // Answer only once the note is on the disk: an ACK means it survives a crash or power cut.
    auto pending = std::make_shared<Reply>(std::move(reply));
    writer_->flush(/*sync=*/true, [this, pending, note_id, file = writer_->path()](bool ok) {
        if (ok) {
            pending->ok(json{{"note_id", note_id}, {"file", file}});
        } else {
            pending->error(errc::kIoError, "note " + std::to_string(note_id) + " could not be saved to " + file +
                                               (last_error_.empty() ? "" : ": " + last_error_));
        }
    });
}

void NotesModule::standalone_input(const std::string& line) {
    add_note(json{{"text", line}}, Reply(&runtime_, -1, "note"));
}

json NotesModule::stats() {
    json s{{"notes", notes_written_}, {"trial", trial_}};
    if (writer_) {
        FileWriterStats w = writer_->stats();
        s["rows_written"] = w.rows_written;
        s["drops"] = w.rows_dropped;
        s["queue_depth"] = w.rows_queued;
        s["bytes_written"] = w.bytes_written;
        s["file"] = writer_->path();
    }
    if (!last_error_.empty()) s["last_error"] = last_error_;
    return s;
}

}  // namespace pilogger

// Notes: every `note` command becomes one row of <session>/notes/notes.csv, written and
// fdatasync'd at once because a researcher's note is typed once and never again.
#pragma once

#include "csv_writer.hpp"
#include "module_runtime.hpp"

#include <memory>

namespace pilogger {

inline const std::vector<std::string> kNotesColumns = {
    "note_id", "mono_ns", "wall_time_utc", "session_elapsed_s", "trial", "recording_modules", "text"};

// The notes kind: no settings of its own.
const ModuleKind& notes_kind();

class NotesModule : public Module {
public:
    explicit NotesModule(ModuleRuntime& runtime) : runtime_(runtime) {}

    void configure(const json& settings, Reply reply) override;
    void start_session(const SessionInfo& session, Reply reply) override;
    void start_recording(const RecordingInfo& recording, Reply reply) override;
    void stop_recording(int64_t stop_at_mono_ns, Reply reply) override;
    void stop_session(Reply reply) override;
    bool command(const std::string& name, const json& args, Reply& reply) override;
    json stats() override;
    void finish(std::function<void()> done) override;
    void standalone_input(const std::string& line) override;

private:
    void add_note(const json& args, Reply reply);
    void close_file(std::function<void()> done);

    ModuleRuntime& runtime_;
    std::unique_ptr<AsyncFileWriter> writer_;
    std::string notes_dir_;
    int64_t session_start_mono_ns_ = 0;
    int trial_ = 0;  // 0: no trial recording
    int64_t next_note_id_ = 1;
    uint64_t notes_written_ = 0;
    std::string last_error_;
};

}  // namespace pilogger

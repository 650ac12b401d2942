// One recording session on disk: the folder, session.json (rewritten atomically), events.csv,
// clocks.csv and logs/. Everything is written without blocking the supervisor's loop.
#pragma once

#include "csv_writer.hpp"
#include "ndjson.hpp"
#include "uv.hpp"

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace pilogger {

inline const std::vector<std::string> kEventColumns = {"mono_ns", "wall_time_utc", "event", "module", "trial", "detail"};
inline const std::vector<std::string> kClockColumns = {"realtime_ns", "monotonic_ns", "boottime_ns", "uncertainty_ns"};

// Folder-safe label: letters, digits, '-', '_' and '.', at most 64 characters, never "..".
std::string sanitize_label(const std::string& label);

// Writes a whole file atomically (temp file, fsync, rename, fsync of the folder) on the thread
// pool. Writes are coalesced: while one is in flight only the newest content waits.
class AtomicFileWriter {
public:
    AtomicFileWriter(uv::Loop& loop, std::string path) : loop_(loop), requests_(loop), path_(std::move(path)) {}
    void write(std::string content);
    // done runs once nothing is in flight or waiting.
    void drain(std::function<void()> done);
    const std::string& last_error() const { return last_error_; }

private:
    void start(std::string content);
    uv::Loop& loop_;
    uv::Requests requests_;
    std::string path_;
    bool busy_ = false;
    bool has_waiting_ = false;
    std::string waiting_;
    std::vector<std::function<void()>> drained_;
    std::string last_error_;
};

inline constexpr uint64_t kMaxLogBytes = 64ull * 1024 * 1024;

class Session {
public:
    using Created = std::function<void(std::unique_ptr<Session> session, const std::string& error)>;
    using ErrorSink = std::function<void(const std::string& message)>;

    // Creates <data_dir>/session_YYYYMMDDTHHMMSSZ[_label] (with _2, _3 ... if taken) and logs/,
    // on the thread pool through the caller's requests: done never runs once they are gone.
    static void create(uv::Loop& loop, uv::Requests& requests, const std::string& data_dir, const std::string& label,
                       int64_t clock_interval_ms, ErrorSink on_error, Created done);
    ~Session();

    const std::string& dir() const { return dir_; }
    const std::string& name() const { return name_; }
    // As given (any UTF-8); the folder name holds its folder-safe form.
    const std::string& label() const { return label_; }
    int64_t start_mono_ns() const { return start_mono_ns_; }
    int64_t start_realtime_ns() const { return start_realtime_ns_; }

    // One row of events.csv; trial 0 leaves the column empty.
    void event(int64_t at_mono_ns, std::string_view event, std::string_view module, int trial,
               std::string_view detail);
    void write_json(const json& content);
    // A line of logs/<name>.log (newline added). Each log holds at most kMaxLogBytes per session.
    void log_line(const std::string& name, std::string_view line);
    uint64_t log_lines_dropped(const std::string& name) const;
    void record_clocks();
    // Flushes and closes every file of the session, then calls done.
    void close(std::function<void()> done);

    FileWriterStats event_stats() const { return events_->stats(); }

private:
    Session(uv::Loop& loop, std::string dir, std::string name, std::string label, ErrorSink on_error);

    uv::Loop& loop_;
    std::string dir_;
    std::string name_;
    std::string label_;
    int64_t start_mono_ns_ = 0;
    int64_t start_realtime_ns_ = 0;
    ErrorSink on_error_;
    std::unique_ptr<AsyncFileWriter> events_;
    std::unique_ptr<AsyncFileWriter> clocks_;
    struct Log {
        std::unique_ptr<AsyncFileWriter> writer;
        uint64_t bytes = 0;
        uint64_t lines_dropped = 0;
    };
    std::map<std::string, Log> logs_;
    AtomicFileWriter json_;
    uv::Timer clock_timer_;
    bool closing_ = false;
};

}  // namespace pilogger

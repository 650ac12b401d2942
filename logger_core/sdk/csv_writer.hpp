// CSV rows (RFC 4180 quoting) and an asynchronous, ordered, bounded file writer for CSV and logs.
//
// The writer never blocks its loop: rows are formatted into a bounded in-memory queue and written
// by uv_fs requests, one at a time so rows land in order. The queue is flushed at least every
// flush_interval_ms, and every byte is fdatasync'd within sync_interval_ms of its write (the
// writer aims at 1.5 ticks less, so a late tick still keeps the promise). A full queue drops
// the row and counts it; capture is never stalled by the disk.
#pragma once

#include "uv.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pilogger {

// Quotes a field only when it needs it (comma, quote, CR or LF); inner quotes are doubled.
std::string csv_quote(std::string_view field);

// Builds one row. Numbers are written in full (no exponent) so they read back exactly.
class CsvRow {
public:
    CsvRow& add(std::string_view text);
    CsvRow& add(const char* text) { return add(std::string_view(text)); }
    CsvRow& add(const std::string& text) { return add(std::string_view(text)); }
    CsvRow& add(int64_t value);
    CsvRow& add(int value) { return add(static_cast<int64_t>(value)); }
    CsvRow& add(uint64_t value);
    CsvRow& add(double value, int decimals);
    CsvRow& empty();
    // The finished line, newline included.
    std::string line() const { return text_ + "\n"; }
    size_t fields() const { return fields_; }

private:
    void separator();
    std::string text_;
    size_t fields_ = 0;
};

std::string csv_header(const std::vector<std::string>& columns);

struct FileWriterOptions {
    enum class Mode {
        CreateNew,  // fail if the file exists: never overwrite data
        // Continue an existing file; the header goes only into an empty file. A file whose last
        // byte is not a newline (torn by a power cut) is left alone and the writer continues in
        // the first free part file instead: name_p2.csv, name_p3.csv, ...
        Append,
    };
    Mode mode = Mode::CreateNew;
    size_t max_queued_bytes = 4 * 1024 * 1024;
    uint64_t flush_interval_ms = 200;
    uint64_t sync_interval_ms = 1000;  // the longest a written byte waits for its fdatasync
    // Start a write as soon as this much is queued, without waiting for the timer.
    size_t eager_write_bytes = 64 * 1024;
    // The clock of the sync rule and of the stats' times; empty: mono_ns. A test passes its own to
    // drive time instead of waiting for it.
    std::function<int64_t()> clock;
};

struct FileWriterStats {
    uint64_t rows_queued = 0;   // accepted, not yet written
    uint64_t rows_written = 0;  // handed to the kernel
    uint64_t rows_dropped = 0;  // refused because the queue was full or the file failed
    uint64_t bytes_written = 0;
    uint64_t syncs = 0;
    int64_t last_sync_mono_ns = 0;          // when the last fdatasync returned
    int64_t last_sync_started_mono_ns = 0;  // when it was issued
};

class AsyncFileWriter {
public:
    using ErrorCallback = std::function<void(const std::string& message)>;

    // Opens the file at once (asynchronously); rows written before it is open are queued.
    // header: CSV column names, written first into a new (or empty, in append mode) file.
    AsyncFileWriter(uv::Loop& loop, std::string path, const std::vector<std::string>& header,
                    FileWriterOptions options = {}, ErrorCallback on_error = {});
    // Without a prior close(): finishes writing and closes in the background.
    ~AsyncFileWriter();
    AsyncFileWriter(const AsyncFileWriter&) = delete;
    AsyncFileWriter& operator=(const AsyncFileWriter&) = delete;

    // False when the row was dropped (queue full, file failed or closing).
    bool write_row(const CsvRow& row) { return write_text(row.line()); }
    // Raw text (a log line, newline included) counted as one row.
    bool write_text(std::string_view text);
    // Writes (and, with sync, fdatasyncs) what is queued now instead of at the next tick.
    // on_done(ok) runs once all of it is written (and synced): the moment it is safe to ACK.
    void flush(bool sync = false, std::function<void(bool ok)> on_done = {});
    // Writes everything, fdatasyncs, closes; then calls on_closed. Later rows are dropped.
    void close(std::function<void()> on_closed);

    // The file actually written (a part file after a torn file in append mode).
    std::string path() const;
    FileWriterStats stats() const;
    bool failed() const;

    struct Core;

private:
    std::shared_ptr<Core> core_;
    uv::Timer timer_;
};

}  // namespace pilogger

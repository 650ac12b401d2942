#include "csv_writer.hpp"

#include "clock.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace pilogger {

std::string csv_quote(std::string_view field) {
    if (field.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(field);
    std::string out;
    out.reserve(field.size() + 2);
    out.push_back('"');
    for (char c : field) {
        if (c == '"') out.push_back('"');
        out.push_back(c);
    }
    out.push_back('"');
    return out;
}

void CsvRow::separator() {
    if (fields_++ > 0) text_.push_back(',');
}

CsvRow& CsvRow::add(std::string_view text) {
    separator();
    text_ += csv_quote(text);
    return *this;
}

CsvRow& CsvRow::add(int64_t value) {
    separator();
    text_ += std::to_string(value);
    return *this;
}

CsvRow& CsvRow::add(uint64_t value) {
    separator();
    text_ += std::to_string(value);
    return *this;
}

CsvRow& CsvRow::add(double value, int decimals) {
    separator();
    char buf[64];
    snprintf(buf, sizeof buf, "%.*f", decimals, value);
    text_ += buf;
    return *this;
}

CsvRow& CsvRow::empty() {
    separator();
    return *this;
}

std::string csv_header(const std::vector<std::string>& columns) {
    CsvRow row;
    for (const auto& c : columns) row.add(c);
    return row.line();
}

// Shared with in-flight uv_fs requests so a request finishing after the writer object is gone
// still has valid state to finish the close with.
struct AsyncFileWriter::Core : std::enable_shared_from_this<AsyncFileWriter::Core> {
    uv_loop_t* loop = nullptr;
    std::string path;
    std::string header;
    FileWriterOptions options;
    ErrorCallback on_error;

    uv_file fd = -1;
    bool opening = true;
    bool failed = false;
    bool closing = false;
    bool closed = false;
    bool busy = false;   // a write, sync or close request is in flight
    bool dirty = false;  // written since the last fdatasync
    int64_t dirty_since_ns = 0;  // when the first write not covered by a sync was issued
    bool sync_requested = false;
    std::function<void()> on_closed;

    std::string pending;
    uint64_t pending_rows = 0;
    uint64_t accepted_bytes = 0;  // everything ever queued, header included
    uint64_t synced_bytes = 0;    // bytes_written as of the start of the last completed sync
    uint64_t sync_started_at_bytes = 0;
    struct Waiter {
        uint64_t target_bytes;
        bool need_sync;
        std::function<void(bool)> cb;
    };
    std::vector<Waiter> waiters;

    void notify_waiters() {
        std::vector<Waiter> ready;
        for (auto it = waiters.begin(); it != waiters.end();) {
            bool done = failed || (it->need_sync ? synced_bytes >= it->target_bytes
                                                 : stats.bytes_written >= it->target_bytes);
            if (done) {
                ready.push_back(std::move(*it));
                it = waiters.erase(it);
            } else {
                ++it;
            }
        }
        for (auto& w : ready) w.cb(!failed);
    }

    void queue_text(std::string_view text, bool at_front) {
        if (at_front) {
            pending.insert(0, text);
        } else {
            pending.append(text);
        }
        accepted_bytes += text.size();
    }
    std::string in_flight;
    size_t in_flight_done = 0;
    uint64_t in_flight_rows = 0;
    FileWriterStats stats;

    struct Request {
        uv_fs_t req{};
        std::shared_ptr<Core> core;
    };

    Request* request() {
        auto* r = new Request{};
        r->core = shared_from_this();
        r->req.data = r;
        return r;
    }

    static std::shared_ptr<Core> finish(uv_fs_t* req, ssize_t* result) {
        auto* r = static_cast<Request*>(req->data);
        *result = req->result;
        auto core = std::move(r->core);
        uv_fs_req_cleanup(req);
        delete r;
        return core;
    }

    void fail(const std::string& what, ssize_t code) {
        if (!failed) {
            failed = true;
            stats.rows_dropped += pending_rows + in_flight_rows;
            pending.clear();
            pending_rows = 0;
            in_flight.clear();
            in_flight_rows = 0;
            if (on_error) on_error(what + " " + path + ": " + uv_strerror(static_cast<int>(code)));
        }
        notify_waiters();
    }

    int part = 1;  // > 1 once a torn file made us move to a part file

    std::string part_path() const {
        if (part <= 1) return path;
        size_t slash = path.find_last_of('/');
        size_t dot = path.find_last_of('.');
        if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) dot = path.size();
        return path.substr(0, dot) + "_p" + std::to_string(part) + path.substr(dot);
    }

    void open() {
        bool append = options.mode == FileWriterOptions::Mode::Append && part == 1;
        // Append mode reads the last byte back to spot a torn file, hence O_RDWR.
        int flags = O_CREAT | O_CLOEXEC | (append ? O_RDWR | O_APPEND : O_WRONLY | O_EXCL);
        auto* r = request();
        int rc = uv_fs_open(loop, &r->req, part_path().c_str(), flags, 0644, [](uv_fs_t* req) {
            ssize_t result = 0;
            auto core = finish(req, &result);
            core->opened(result);
        });
        if (rc < 0) {
            delete r;
            opened(rc);
        }
    }

    void opened(ssize_t result) {
        if (result == UV_EEXIST && part > 1) {
            ++part;  // that part exists already: try the next one
            open();
            return;
        }
        if (result < 0) {
            opening = false;
            fail("cannot create", result);
            maybe_finish_close();
            return;
        }
        fd = static_cast<uv_file>(result);
        if (options.mode == FileWriterOptions::Mode::Append && part == 1) {
            check_existing_tail();
            return;
        }
        opening = false;
        queue_text(header, true);
        kick();
    }

    // Append mode: header only into an empty file; a torn last line sends us to a part file.
    void check_existing_tail() {
        auto* r = request();
        int rc = uv_fs_fstat(loop, &r->req, fd, [](uv_fs_t* req) {
            int64_t size = req->result == 0 ? static_cast<int64_t>(req->statbuf.st_size) : -1;
            ssize_t result = 0;
            auto core = finish(req, &result);
            if (size == 0) {
                core->opening = false;
                core->queue_text(core->header, true);
                core->kick();
            } else if (size < 0) {
                core->opening = false;
                core->fail("cannot stat", result);
            } else {
                core->read_last_byte(size - 1);
            }
        });
        if (rc < 0) {
            delete r;
            opening = false;
            fail("cannot stat", rc);
        }
    }

    char last_byte = 0;
    void read_last_byte(int64_t offset) {
        auto* r = request();
        uv_buf_t buf = uv_buf_init(&last_byte, 1);
        int rc = uv_fs_read(loop, &r->req, fd, &buf, 1, offset, [](uv_fs_t* req) {
            ssize_t result = 0;
            auto core = finish(req, &result);
            if (result == 1 && core->last_byte == '\n') {
                core->opening = false;
                core->kick();
                return;
            }
            // Leave the damaged file exactly as it is and continue in a fresh part file.
            // Nothing was written through this descriptor, so close() has nothing to flush.
            ::close(core->fd);
            core->fd = -1;
            core->part = 2;
            core->open();
        });
        if (rc < 0) {
            delete r;
            opening = false;
            fail("cannot read", rc);
        }
    }

    // How long the oldest byte not yet covered by a sync has waited (from the issue of its write).
    int64_t unsynced_age_ms() const { return dirty ? (options.clock() - dirty_since_ns) / 1'000'000 : 0; }

    // Starts the next request if none is in flight: write pending data, else sync, else close.
    void kick() {
        busy = false;
        if (opening || fd < 0 || failed) {
            maybe_finish_close();
            return;
        }
        if (!pending.empty()) {
            in_flight.swap(pending);
            pending.clear();
            in_flight_rows = pending_rows;
            pending_rows = 0;
            in_flight_done = 0;
            write_in_flight();
            return;
        }
        // Every byte is fdatasync'd within sync_interval_ms of its write: due when waiting for
        // the next tick could pass that, with half a tick to spare for a late tick on a busy
        // loop (checking ">= interval" on 200 ms ticks made bytes wait 1.2 s; counting from the
        // last sync instead of from the write let a byte written just after it wait 1.0 s).
        const auto tick = static_cast<int64_t>(options.flush_interval_ms);
        bool sync_due = dirty && (sync_requested || closing ||
                                  unsynced_age_ms() + tick + tick / 2 >= static_cast<int64_t>(options.sync_interval_ms));
        if (sync_due) {
            sync();
            return;
        }
        maybe_finish_close();
    }

    void write_in_flight() {
        busy = true;
        if (!dirty) {
            dirty = true;  // counted from the issue: the kernel may hold the bytes from now on
            dirty_since_ns = options.clock();
        }
        auto* r = request();
        uv_buf_t buf = uv_buf_init(in_flight.data() + in_flight_done,
                                   static_cast<unsigned>(in_flight.size() - in_flight_done));
        int rc = uv_fs_write(loop, &r->req, fd, &buf, 1, -1, [](uv_fs_t* req) {
            ssize_t result = 0;
            auto core = finish(req, &result);
            core->written(result);
        });
        if (rc < 0) {
            delete r;
            written(rc);
        }
    }

    void written(ssize_t result) {
        if (result < 0) {
            fail("cannot write", result);
            busy = false;
            maybe_finish_close();
            return;
        }
        in_flight_done += static_cast<size_t>(result);
        stats.bytes_written += static_cast<uint64_t>(result);
        dirty = true;
        if (in_flight_done < in_flight.size()) {
            write_in_flight();  // short write: continue where it stopped
            return;
        }
        stats.rows_written += in_flight_rows;
        in_flight_rows = 0;
        in_flight.clear();
        notify_waiters();
        kick();
    }

    void sync() {
        busy = true;
        sync_requested = false;
        sync_started_at_bytes = stats.bytes_written;
        stats.last_sync_started_mono_ns = options.clock();
        auto* r = request();
        int rc = uv_fs_fdatasync(loop, &r->req, fd, [](uv_fs_t* req) {
            ssize_t result = 0;
            auto core = finish(req, &result);
            core->synced(result);
        });
        if (rc < 0) {
            delete r;
            synced(rc);
        }
    }

    void synced(ssize_t result) {
        if (result < 0) {
            fail("cannot fdatasync", result);
        } else {
            dirty = false;
            ++stats.syncs;
            stats.last_sync_mono_ns = options.clock();
            synced_bytes = sync_started_at_bytes;
        }
        notify_waiters();
        kick();
    }

    void maybe_finish_close() {
        if (!closing || closed || busy || opening) return;
        if (!failed && (!pending.empty() || dirty)) return;
        closed = true;
        if (fd >= 0) {
            busy = true;
            auto* r = request();
            int rc = uv_fs_close(loop, &r->req, fd, [](uv_fs_t* req) {
                ssize_t result = 0;
                auto core = finish(req, &result);
                core->busy = false;
                core->notify_closed();
            });
            fd = -1;
            if (rc < 0) {
                delete r;
                busy = false;
                notify_closed();
            }
            return;
        }
        notify_closed();
    }

    void notify_closed() {
        if (auto cb = std::move(on_closed)) cb();
    }
};

AsyncFileWriter::AsyncFileWriter(uv::Loop& loop, std::string path,
                               const std::vector<std::string>& header, FileWriterOptions options,
                               ErrorCallback on_error)
    : core_(std::make_shared<Core>()), timer_(loop) {
    core_->loop = loop.get();
    core_->path = std::move(path);
    core_->header = header.empty() ? std::string() : csv_header(header);
    core_->options = options;
    if (!core_->options.clock) core_->options.clock = mono_ns;
    core_->on_error = std::move(on_error);
    core_->stats.last_sync_mono_ns = core_->stats.last_sync_started_mono_ns = core_->options.clock();
    core_->open();
    timer_.start(options.flush_interval_ms, options.flush_interval_ms, [core = core_.get()] {
        if (!core->busy) core->kick();
    });
}

AsyncFileWriter::~AsyncFileWriter() {
    timer_.close();
    if (!core_->closing) {
        core_->on_error = nullptr;
        core_->closing = true;
        if (!core_->busy) core_->kick();
    }
}

bool AsyncFileWriter::write_text(std::string_view line) {
    Core& c = *core_;
    if (c.closing || c.failed || c.pending.size() + line.size() > c.options.max_queued_bytes) {
        ++c.stats.rows_dropped;
        return false;
    }
    c.queue_text(line, false);
    ++c.pending_rows;
    if (c.pending.size() >= c.options.eager_write_bytes && !c.busy) c.kick();
    return true;
}

void AsyncFileWriter::flush(bool sync, std::function<void(bool ok)> on_done) {
    Core& c = *core_;
    if (on_done) {
        c.waiters.push_back(Core::Waiter{c.accepted_bytes, sync, std::move(on_done)});
        c.notify_waiters();  // nothing queued, or already failed: answer now
    }
    if (sync) c.sync_requested = true;
    if (!c.busy) c.kick();
}

void AsyncFileWriter::close(std::function<void()> on_closed) {
    Core& c = *core_;
    timer_.stop();
    if (c.closing) {
        if (on_closed) {
            if (c.closed && !c.busy) {
                on_closed();
            } else {
                c.on_closed = std::move(on_closed);
            }
        }
        return;
    }
    c.closing = true;
    c.on_closed = std::move(on_closed);
    if (!c.busy) c.kick();
}

std::string AsyncFileWriter::path() const { return core_->part_path(); }

FileWriterStats AsyncFileWriter::stats() const {
    FileWriterStats s = core_->stats;
    s.rows_queued = core_->pending_rows + core_->in_flight_rows;
    return s;
}

bool AsyncFileWriter::failed() const { return core_->failed; }

}  // namespace pilogger

#include "session.hpp"

#include "clock.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pilogger {

std::string sanitize_label(const std::string& label) {
    std::string out;
    for (unsigned char c : label) {
        bool keep = std::isalnum(c) || c == '-' || c == '_' || c == '.';
        char next = keep ? static_cast<char>(c) : '_';
        if (next == '_' && !out.empty() && out.back() == '_') continue;
        out.push_back(next);
        if (out.size() >= 64) break;
    }
    // No hidden names and no "..": dots only inside the label.
    while (!out.empty() && (out.front() == '.' || out.front() == '_')) out.erase(out.begin());
    while (!out.empty() && (out.back() == '.' || out.back() == '_')) out.pop_back();
    for (size_t pos; (pos = out.find("..")) != std::string::npos;) out.replace(pos, 2, "_");
    for (size_t pos; (pos = out.find("__")) != std::string::npos;) out.erase(pos, 1);
    return out;
}

// ---- AtomicFileWriter ----

namespace {
std::string errno_text(const std::string& what, const std::string& path) {
    return what + " " + path + ": " + std::strerror(errno);
}

// Runs on the thread pool.
std::string write_file_atomically(const std::string& path, const std::string& content) {
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errno_text("cannot create", tmp);
    size_t done = 0;
    // On any failure (a full disk) the temporary goes: the last good file stays, alone.
    auto fail = [&](const char* what) {
        std::string err = errno_text(what, tmp);
        if (fd >= 0) ::close(fd);
        ::unlink(tmp.c_str());
        return err;
    };
    while (done < content.size()) {
        ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail("cannot write");
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) return fail("cannot fsync");
    if (::close(fd) != 0) {
        fd = -1;
        return fail("cannot close");
    }
    fd = -1;
    if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename to its place");
    std::string folder = path.substr(0, path.find_last_of('/'));
    int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        ::fsync(dir);
        ::close(dir);
    }
    return {};
}
}  // namespace

void AtomicFileWriter::write(std::string content) {
    if (busy_) {
        waiting_ = std::move(content);
        has_waiting_ = true;
        return;
    }
    start(std::move(content));
}

void AtomicFileWriter::start(std::string content) {
    busy_ = true;
    requests_.work(
        [path = path_, content = std::move(content)] { return write_file_atomically(path, content); },
        [this](const std::string& error) {
            last_error_ = error;
            busy_ = false;
            if (has_waiting_) {
                has_waiting_ = false;
                start(std::move(waiting_));
                return;
            }
            auto callbacks = std::move(drained_);
            drained_.clear();
            for (auto& cb : callbacks) cb();
        });
}

void AtomicFileWriter::drain(std::function<void()> done) {
    if (!busy_) {
        done();
        return;
    }
    drained_.push_back(std::move(done));
}

// ---- Session ----

Session::Session(uv::Loop& loop, std::string dir, std::string name, std::string label, ErrorSink on_error)
    : loop_(loop),
      dir_(std::move(dir)),
      name_(std::move(name)),
      label_(std::move(label)),
      on_error_(std::move(on_error)),
      json_(loop, dir_ + "/session.json"),
      clock_timer_(loop) {}

Session::~Session() = default;

void Session::create(uv::Loop& loop, uv::Requests& requests, const std::string& data_dir, const std::string& label,
                     int64_t clock_interval_ms, ErrorSink on_error, Created done) {
    int64_t start_real = realtime_ns();
    int64_t start_mono = mono_ns();
    std::string clean = sanitize_label(label);
    std::string base = "session_" + format_utc_compact(start_real) + (clean.empty() ? "" : "_" + clean);
    auto chosen = std::make_shared<std::string>();
    requests.work(
        [data_dir, base, chosen]() -> std::string {
            // mkdir -p for data_dir, then a session folder that did not exist before.
            std::string path;
            for (size_t pos = 0; pos != std::string::npos;) {
                pos = data_dir.find('/', pos + 1);
                path = data_dir.substr(0, pos);
                if (!path.empty() && ::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
                    return errno_text("cannot create the data folder", path);
                }
            }
            for (int n = 1; n < 1000; ++n) {
                std::string name = n == 1 ? base : base + "_" + std::to_string(n);
                std::string dir = data_dir + "/" + name;
                if (::mkdir(dir.c_str(), 0755) == 0) {
                    if (::mkdir((dir + "/logs").c_str(), 0755) != 0) return errno_text("cannot create", dir + "/logs");
                    *chosen = name;
                    return {};
                }
                if (errno != EEXIST) return errno_text("cannot create the session folder", dir);
            }
            return "too many sessions named " + base + " in " + data_dir;
        },
        [&loop, data_dir, label, chosen, clock_interval_ms, start_mono, start_real, on_error,
         done = std::move(done)](const std::string& error) {
            if (!error.empty()) {
                done(nullptr, error);
                return;
            }
            // The folder name has the folder-safe form; the label itself is kept as typed.
            std::unique_ptr<Session> s(
                new Session(loop, data_dir + "/" + *chosen, *chosen, label, on_error));
            s->start_mono_ns_ = start_mono;
            s->start_realtime_ns_ = start_real;
            auto report = [sink = on_error](const std::string& m) {
                if (sink) sink(m);
            };
            s->events_ = std::make_unique<AsyncFileWriter>(loop, s->dir_ + "/events.csv", kEventColumns,
                                                           FileWriterOptions{}, report);
            s->clocks_ = std::make_unique<AsyncFileWriter>(loop, s->dir_ + "/clocks.csv", kClockColumns,
                                                           FileWriterOptions{}, report);
            s->record_clocks();
            Session* raw = s.get();
            s->clock_timer_.start(static_cast<uint64_t>(clock_interval_ms),
                                  static_cast<uint64_t>(clock_interval_ms), [raw] { raw->record_clocks(); });
            done(std::move(s), {});
        });
}

void Session::record_clocks() {
    if (closing_) return;
    ClockTriple t = read_clock_triple();
    clocks_->write_row(CsvRow().add(t.realtime_ns).add(t.mono_ns).add(t.boottime_ns).add(t.uncertainty_ns));
}

void Session::event(int64_t at_mono_ns, std::string_view event, std::string_view module, int trial,
                    std::string_view detail) {
    if (closing_) return;
    int64_t wall = realtime_ns() - (mono_ns() - at_mono_ns);
    CsvRow row;
    row.add(at_mono_ns).add(format_utc(wall)).add(event).add(module);
    if (trial > 0) {
        row.add(trial);
    } else {
        row.empty();
    }
    row.add(detail);
    events_->write_row(row);
    // Events are rare and precious: get them to the disk now rather than at the next tick.
    events_->flush();
}

void Session::write_json(const json& content) {
    json_.write(content.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
}

void Session::log_line(const std::string& name, std::string_view line) {
    if (closing_) return;
    Log& log = logs_[name];
    if (!log.writer) {
        FileWriterOptions options;
        options.mode = FileWriterOptions::Mode::Append;
        log.writer = std::make_unique<AsyncFileWriter>(loop_, dir_ + "/logs/" + name + ".log",
                                                       std::vector<std::string>{}, options);
    }
    // A process that never stops talking must not fill the disk the recording needs.
    if (log.bytes >= kMaxLogBytes) {
        ++log.lines_dropped;
        return;
    }
    std::string text(line);
    text.push_back('\n');
    log.bytes += text.size();
    if (log.bytes >= kMaxLogBytes) {
        text += "[pilogger: " + name + ".log reached " + std::to_string(kMaxLogBytes >> 20) +
                " MiB; later lines of this session are dropped and counted]\n";
    }
    log.writer->write_text(text);
}

uint64_t Session::log_lines_dropped(const std::string& name) const {
    auto it = logs_.find(name);
    return it == logs_.end() ? 0 : it->second.lines_dropped;
}

void Session::close(std::function<void()> done) {
    closing_ = true;
    clock_timer_.stop();
    ClockTriple t = read_clock_triple();
    clocks_->write_row(CsvRow().add(t.realtime_ns).add(t.mono_ns).add(t.boottime_ns).add(t.uncertainty_ns));
    auto remaining = std::make_shared<size_t>(2 + logs_.size() + 1);
    auto one_done = [remaining, done = std::move(done)] {
        if (--*remaining == 0) done();
    };
    events_->close(one_done);
    clocks_->close(one_done);
    for (auto& [name, log] : logs_) log.writer->close(one_done);
    json_.drain(one_done);
}

}  // namespace pilogger

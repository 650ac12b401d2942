#include "child_process.hpp"

#include <utility>

namespace pilogger {

ChildProcess::ChildProcess(uv::Loop& loop) : loop_(loop), stop_timer_(loop) {}

ChildProcess::~ChildProcess() { abandon(); }

void ChildProcess::abandon() {
    if (!running()) return;
    // The handle must outlive the child: closed now, libuv would never reap it (a zombie).
    // It deletes itself from its own exit callback, which libuv runs after the SIGKILL.
    uv::Process* orphan = process_.release();
    orphan->set_exit_callback([orphan](int64_t, int) { delete orphan; });
    orphan->kill(SIGKILL);
}

void ChildProcess::spawn(const Options& options, Output out, Output err, ExitCallback on_exit) {
    abandon();  // one child at a time: a running one would otherwise lose its owner
    stop_timer_.stop();
    stopping_ = false;
    on_exit_ = std::move(on_exit);
    process_ = std::make_unique<uv::Process>(loop_);
    stdin_ = options.with_stdin ? std::make_unique<uv::Stream>(loop_) : nullptr;
    for (auto [reader, output] : {std::pair{&out_, &out}, std::pair{&err_, &err}}) {
        reader->output = std::move(*output);
        reader->framer = LineFramer(reader->output.max_line_bytes);
        reader->pipe = std::make_unique<uv::Stream>(loop_);
        reader->open = false;
        reader->reading = false;
    }
    uv::ProcessOptions spawn_options;
    spawn_options.file = options.file;
    spawn_options.args = options.args;
    spawn_options.env = options.env;
    spawn_options.stdin_pipe = stdin_.get();
    spawn_options.stdout_pipe = out_.pipe.get();
    spawn_options.stderr_pipe = err_.pipe.get();
    spawn_options.detached = options.detached;
    spawn_options.parent_death_signal = options.parent_death_signal;
    try {
        process_->spawn(spawn_options, [this](int64_t status, int signal) {
            stop_timer_.stop();
            stopping_ = false;
            stdin_.reset();
            // Copied: the owner may spawn again (or go) from its exit callback.
            ExitCallback cb = on_exit_;
            if (cb) cb(status, signal);
        });
    } catch (...) {
        process_.reset();
        stdin_.reset();
        out_.pipe.reset();
        err_.pipe.reset();
        throw;
    }
    start_reading(out_);
    start_reading(err_);
}

void ChildProcess::start_reading(Reader& reader) {
    if (!reader.pipe) return;
    reader.open = true;
    reader.reading = true;
    reader.pipe->start_read([this, &reader](std::string_view chunk) { on_chunk(reader, chunk); },
                            [this, &reader](int) { on_end(reader); });
}

namespace {
LineFramer::LineCallback line_sink(const ChildProcess::Output& o) {
    return [&o](std::string_view line) { if (o.on_line) o.on_line(line); };
}
LineFramer::OverflowCallback overlong_sink(const ChildProcess::Output& o) {
    return [&o](size_t dropped) { if (o.on_overlong) o.on_overlong(dropped); };
}
}  // namespace

void ChildProcess::on_chunk(Reader& reader, std::string_view chunk) {
    const Output& o = reader.output;
    if (o.on_chunk) return o.on_chunk(chunk);
    reader.framer.feed(chunk, line_sink(o), overlong_sink(o));
}

void ChildProcess::on_end(Reader& reader) {
    if (!reader.open) return;
    reader.open = false;
    const Output& o = reader.output;
    if (!o.on_chunk) reader.framer.finish(line_sink(o), overlong_sink(o));
    // Copied: on_end may destroy this object.
    auto cb = o.on_end;
    if (cb) cb();
}

int ChildProcess::kill(int signum) { return process_ ? process_->kill(signum) : UV_ESRCH; }

bool ChildProcess::write(std::string data) { return stdin_ && stdin_->write(std::move(data)); }

void ChildProcess::pause(Reader& reader) {
    if (!reader.open || !reader.reading) return;
    reader.reading = false;
    reader.pipe->stop_read();
}

void ChildProcess::resume(Reader& reader) {
    if (reader.open && !reader.reading) start_reading(reader);
}

void ChildProcess::stop(uint64_t term_after_ms, uint64_t kill_after_ms, std::function<void(int signal)> on_step) {
    if (!running() || stopping_) return;
    stopping_ = true;
    stdin_.reset();
    stop_timer_.start(term_after_ms, 0, [this, kill_after_ms, on_step = std::move(on_step)] {
        if (on_step) on_step(SIGTERM);
        kill(SIGTERM);
        stop_timer_.start(kill_after_ms, 0, [this, on_step] {
            if (on_step) on_step(SIGKILL);
            kill(SIGKILL);
        });
    });
}

}  // namespace pilogger

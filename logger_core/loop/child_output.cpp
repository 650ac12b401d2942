#include "child_output.hpp"

#include <algorithm>
#include <csignal>
#include <exception>
#include <utility>

namespace pilogger {

ChildOutput::ChildOutput(uv::Loop& loop, size_t max_output_bytes)
    : loop_(loop), max_output_bytes_(max_output_bytes) {}

ChildOutput::~ChildOutput() {
    if (process_ && process_->running()) process_->kill(SIGKILL);
}

void ChildOutput::start(const std::string& file, std::vector<std::string> args, uint64_t timeout_ms, Done done) {
    result_ = Result{};
    exited_ = false;
    outputs_open_ = 0;
    done_ = std::move(done);
    stdout_ = std::make_unique<uv::Stream>(loop_);
    stderr_ = std::make_unique<uv::Stream>(loop_);
    process_ = std::make_unique<uv::Process>(loop_);
    timer_ = std::make_unique<uv::Timer>(loop_);
    uv::ProcessOptions options;
    options.file = file;
    options.args = std::move(args);
    options.stdout_pipe = stdout_.get();
    options.stderr_pipe = stderr_.get();
    try {
        process_->spawn(options, [this](int64_t status, int signal) {
            result_.exit_status = status;
            result_.term_signal = signal;
            exited_ = true;
            finish_if_done();
        });
    } catch (const std::exception& e) {
        // Reported from the loop, like every other outcome, so callers need no second path.
        result_.error = e.what();
        exited_ = true;
        finish_if_done();
        return;
    }
    collect(*stdout_, result_.out);
    collect(*stderr_, result_.err);
    timer_->start(timeout_ms, 0, [this] {
        if (process_ && process_->running()) {
            result_.timed_out = true;
            process_->kill(SIGKILL);
        }
    });
}

void ChildOutput::collect(uv::Stream& stream, std::string& into) {
    ++outputs_open_;
    stream.start_read(
        [this, &into](std::string_view chunk) {
            const size_t room = max_output_bytes_ - std::min(max_output_bytes_, into.size());
            if (chunk.size() > room) result_.truncated = true;
            into.append(chunk.substr(0, room));
        },
        [this](int) {
            --outputs_open_;
            finish_if_done();
        });
}

void ChildOutput::finish_if_done() {
    if (!exited_ || outputs_open_ > 0 || !done_) return;
    // From a timer callback, which may destroy its timer: done may destroy this object.
    timer_->start(0, 0, [this] {
        Done done = std::move(done_);
        done_ = nullptr;
        done(std::move(result_));
    });
}

}  // namespace pilogger

#include "child_output.hpp"

#include <algorithm>
#include <csignal>
#include <exception>
#include <utility>

namespace pilogger {

ChildOutput::ChildOutput(uv::Loop& loop, size_t max_output_bytes)
    : loop_(loop), max_output_bytes_(max_output_bytes) {}

ChildOutput::~ChildOutput() = default;

void ChildOutput::start(const std::string& file, std::vector<std::string> args, uint64_t timeout_ms, Done done) {
    result_ = Result{};
    exited_ = false;
    outputs_open_ = 2;
    done_ = std::move(done);
    child_ = std::make_unique<ChildProcess>(loop_);
    timer_ = std::make_unique<uv::Timer>(loop_);
    ChildProcess::Options options;
    options.file = file;
    options.args = std::move(args);
    try {
        child_->spawn(options, collect(result_.out), collect(result_.err), [this](int64_t status, int signal) {
            result_.exit_status = status;
            result_.term_signal = signal;
            exited_ = true;
            finish_if_done();
        });
    } catch (const std::exception& e) {
        // Reported from the loop, like every other outcome, so callers need no second path.
        result_.error = e.what();
        exited_ = true;
        outputs_open_ = 0;
        finish_if_done();
        return;
    }
    timer_->start(timeout_ms, 0, [this] {
        if (child_->running()) {
            result_.timed_out = true;
            child_->kill(SIGKILL);
        }
    });
}

ChildProcess::Output ChildOutput::collect(std::string& into) {
    ChildProcess::Output output;
    output.on_chunk = [this, &into](std::string_view chunk) {
        const size_t room = max_output_bytes_ - std::min(max_output_bytes_, into.size());
        if (chunk.size() > room) result_.truncated = true;
        into.append(chunk.substr(0, room));
    };
    output.on_end = [this] {
        --outputs_open_;
        finish_if_done();
    };
    return output;
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

// pilogger-test: a module for the supervisor's own tests and benchmarks. It follows the
// lifecycle like any module and writes nothing; on command it misbehaves the ways real modules
// can: crash, hang, print garbage, stop answering.
#include "module_runtime.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

#include <csignal>
#include <cstdlib>
#include <thread>

namespace {

using pilogger::json;
using pilogger::Reply;

class TestModule : public pilogger::Module {
public:
    explicit TestModule(pilogger::ModuleRuntime& runtime) : runtime_(runtime) {}

    void configure(const json&, Reply reply) override { answer(std::move(reply)); }
    void start_session(const pilogger::SessionInfo&, Reply reply) override { answer(std::move(reply)); }
    void start_recording(const pilogger::RecordingInfo& r, Reply reply) override {
        trial_ = r.trial;
        part_ = r.part;
        answer(std::move(reply), json{{"trial", r.trial}, {"part", r.part}});
    }
    void stop_recording(int64_t, Reply reply) override {
        trial_ = 0;
        answer(std::move(reply));
    }
    void stop_session(Reply reply) override { answer(std::move(reply)); }
    void finish(std::function<void()> done) override {
        muted_.clear();
        done();
    }
    json stats() override { return json{{"trial", trial_}, {"part", part_}, {"pings", pings_}}; }

    bool command(const std::string& name, const json& args, Reply& reply) override {
        if (name == "ping") {
            ++pings_;
            answer(std::move(reply), json{{"pong", args.value("n", 0)}});
            return true;
        }
        if (name != "misbehave") return false;
        std::string mode = args.value("mode", "");
        if (mode == "crash") std::abort();
        if (mode == "exit") std::_Exit(args.value("code", 3));
        if (mode == "hang") {
            reply.ok();
            // Blocks the loop: no heartbeat, no answers, like a module stuck in a driver call.
            for (;;) pause();
        }
        if (mode == "mute") {
            mute_ = true;
            reply.ok();
            return true;
        }
        if (mode == "garbage") {
            reply.ok();
            std::string big(10 * 1024 * 1024, 'x');
            const std::string lines = "this is not json\n[1,2,3]\n{\"id\":99999,\"ok\":true}\n{\"event\":7}\n\n" +
                                      std::string("{\"event\":\"log\",") + big + "\n{\"ok\":\"maybe\"}\n";
            write_fully(lines);
            return true;
        }
        reply.error(pilogger::errc::kBadRequest, "unknown mode '" + mode + "'");
        return true;
    }

private:
    // stdout is non-blocking (the runtime's pipe); push the whole text through anyway.
    static void write_fully(const std::string& text) {
        size_t done = 0;
        while (done < text.size()) {
            ssize_t n = ::write(STDOUT_FILENO, text.data() + done, text.size() - done);
            if (n > 0) {
                done += static_cast<size_t>(n);
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                return;
            } else {
                pollfd p{STDOUT_FILENO, POLLOUT, 0};
                ::poll(&p, 1, 1000);
            }
        }
    }

    void answer(Reply reply, const json& result = json::object()) {
        if (mute_) {
            muted_.push_back(std::move(reply));  // never answered while muted
            return;
        }
        reply.ok(result);
    }

    pilogger::ModuleRuntime& runtime_;
    bool mute_ = false;
    std::vector<Reply> muted_;
    int trial_ = 0;
    int part_ = 0;
    uint64_t pings_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
    pilogger::ModuleKind kind;
    kind.kind = "test";
    kind.summary = "a module for the supervisor's own tests and benchmarks: it follows the lifecycle, writes nothing, "
                   "and misbehaves on command (crash, hang, garbage output, no answers)";
    kind.files = "nothing";
    kind.capabilities = {"test"};
    return pilogger::run_module(argc, argv, kind, "pilogger test module (for tests and benchmarks only)",
                                [](pilogger::ModuleRuntime& rt) { return std::make_unique<TestModule>(rt); });
}

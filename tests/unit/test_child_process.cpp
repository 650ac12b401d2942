// ChildProcess and Requests on a real libuv loop: bounded lines, the escalating stop, reaping a
// child whose owner went first, and request callbacks that never outlive their owner.
#include "child_process.hpp"
#include "helpers.hpp"

#include <doctest/doctest.h>

#include <sys/wait.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <optional>
#include <thread>

using pilogger::ChildProcess;

namespace {

ChildProcess::Options shell(const std::string& script) {
    ChildProcess::Options o;
    o.file = "sh";
    o.args = {"sh", "-c", script};
    return o;
}

}  // namespace

TEST_CASE("child process: lines come whole and an over-long one is dropped and counted") {
    pilogger::uv::Loop loop;
    std::vector<std::string> lines;
    std::vector<size_t> dropped;
    int ends = 0;
    std::optional<int64_t> status;
    {
        ChildProcess child(loop);
        ChildProcess::Output out;
        out.max_line_bytes = 100;
        out.on_line = [&](std::string_view l) { lines.emplace_back(l); };
        out.on_overlong = [&](size_t n) { dropped.push_back(n); };
        out.on_end = [&] { ++ends; };
        ChildProcess::Output err;
        err.on_end = [&] { ++ends; };
        child.spawn(shell("echo one; head -c 500 /dev/zero | tr '\\0' x; echo; printf 'last, no newline'; exit 4"),
                    std::move(out), std::move(err), [&](int64_t s, int) { status = s; });
        REQUIRE(test::run_until(loop, [&] { return status.has_value() && ends == 2; }, 20000));
    }
    CHECK(*status == 4);
    CHECK(lines == std::vector<std::string>{"one", "last, no newline"});
    REQUIRE(dropped.size() == 1);
    CHECK(dropped[0] == 501);
}

TEST_CASE("child process: stop closes stdin, then SIGTERM, then SIGKILL for a child that ignores both") {
    pilogger::uv::Loop loop;
    ChildProcess child(loop);
    std::vector<int> steps;
    std::optional<int> signal;
    ChildProcess::Options o = shell("trap '' TERM; echo ready; while :; do sleep 0.05; done");
    o.with_stdin = true;
    bool ready = false;
    ChildProcess::Output out;
    out.on_line = [&](std::string_view l) { ready = l == "ready"; };
    child.spawn(o, std::move(out), {}, [&](int64_t, int sig) { signal = sig; });
    REQUIRE(test::run_until(loop, [&] { return ready; }, 20000));
    child.stop(50, 50, [&](int sig) { steps.push_back(sig); });
    CHECK_FALSE(child.write("too late\n"));  // stdin is closed first
    REQUIRE(test::run_until(loop, [&] { return signal.has_value(); }, 20000));
    CHECK(steps == std::vector<int>{SIGTERM, SIGKILL});
    CHECK(*signal == SIGKILL);
    CHECK_FALSE(child.running());
}

TEST_CASE("child process: a well-behaved child ends at EOF on stdin, with no signal sent") {
    pilogger::uv::Loop loop;
    ChildProcess child(loop);
    std::vector<int> steps;
    std::optional<int64_t> status;
    ChildProcess::Options o = shell("cat >/dev/null; exit 0");
    o.with_stdin = true;
    child.spawn(o, {}, {}, [&](int64_t s, int) { status = s; });
    child.stop(10000, 10000, [&](int sig) { steps.push_back(sig); });
    REQUIRE(test::run_until(loop, [&] { return status.has_value(); }, 20000));
    CHECK(*status == 0);
    CHECK(steps.empty());
}

TEST_CASE("child process: a child whose owner went first is killed and reaped, never a zombie") {
    pilogger::uv::Loop loop;
    int pid = 0;
    {
        ChildProcess child(loop);
        child.spawn(shell("sleep 30"), {}, {}, [](int64_t, int) { FAIL("no callback after the owner is gone"); });
        pid = child.pid();
        REQUIRE(pid > 0);
    }
    // The loop ends once the orphaned handle saw the exit and closed: libuv has reaped it.
    loop.run();
    errno = 0;
    CHECK(::waitpid(pid, nullptr, WNOHANG) == -1);
    CHECK(errno == ECHILD);
}

TEST_CASE("child process: a missing program is an error naming it") {
    pilogger::uv::Loop loop;
    ChildProcess child(loop);
    ChildProcess::Options o;
    o.file = "/nonexistent/pilogger-nothing";
    o.args = {o.file};
    CHECK_THROWS_WITH_AS(child.spawn(o, {}, {}, {}), doctest::Contains("/nonexistent/pilogger-nothing"),
                         pilogger::uv::Error);
    CHECK_FALSE(child.running());
}

TEST_CASE("requests: done runs while the owner lives, and never after it is gone") {
    pilogger::uv::Loop loop;
    int done_calls = 0;
    {
        pilogger::uv::Requests requests(loop);
        requests.work([] { return std::string(); }, [&](const std::string& e) {
            CHECK(e.empty());
            ++done_calls;
        });
        REQUIRE(test::run_until(loop, [&] { return done_calls == 1; }, 20000));
        CHECK(requests.pending() == 0);
    }
    std::atomic<bool> release{false};
    std::atomic<int> ran{0};
    {
        pilogger::uv::Requests requests(loop);
        // More work than the pool has threads (4): some is still queued when the owner goes.
        for (int i = 0; i < 8; ++i) {
            requests.work(
                [&] {
                    ++ran;
                    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
                    return std::string();
                },
                [&](const std::string&) { ++done_calls; });
        }
        requests.resolve("localhost", [&](int, std::string) { ++done_calls; });
        CHECK(requests.pending() == 9);
    }
    release = true;
    loop.run();  // the running work finishes and the cancelled requests come back
    CHECK(done_calls == 1);
    CHECK(ran < 8);  // the queued ones were cancelled, not run
}

// ChildOutput: a helper program run to its end on a real libuv loop (avahi-browse, the modules'
// --list-devices): both outputs whole, the exit status, a missing program, a hung one, a flood.
#include "child_output.hpp"
#include "helpers.hpp"

#include <doctest/doctest.h>

#include <optional>

using pilogger::ChildOutput;

namespace {

ChildOutput::Result run_to_end(const std::vector<std::string>& args, uint64_t timeout_ms = 10000,
                               size_t max_bytes = 1u << 20) {
    pilogger::uv::Loop loop;
    std::optional<ChildOutput::Result> result;
    {
        ChildOutput child(loop, max_bytes);
        child.start(args.front(), args, timeout_ms, [&](ChildOutput::Result&& r) { result = std::move(r); });
        REQUIRE(test::run_until(loop, [&] { return result.has_value(); }, 20000));
    }
    test::run_until(loop, [] { return false; }, 10);  // close callbacks
    return std::move(*result);
}

}  // namespace

TEST_CASE("child output: what it printed last, just before exiting, is there") {
    const auto r = run_to_end({"sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done; "
                                           "echo oops >&2; exit 3"});
    CHECK(r.error.empty());
    CHECK(r.exit_status == 3);
    CHECK_FALSE(r.ok());
    CHECK(r.out.rfind("line 1999\n") == r.out.size() - 10);
    CHECK(r.err == "oops\n");
    CHECK_FALSE(r.truncated);
}

TEST_CASE("child output: a clean run is ok") {
    const auto r = run_to_end({"printf", "hello"});
    CHECK(r.ok());
    CHECK(r.out == "hello");
}

TEST_CASE("child output: a missing program is named, from the loop") {
    const auto r = run_to_end({"no-such-program-pilogger"});
    CHECK_FALSE(r.ok());
    CHECK(r.error.find("no-such-program-pilogger") != std::string::npos);
}

TEST_CASE("child output: a program that hangs is killed at the timeout") {
    const auto r = run_to_end({"sleep", "30"}, 200);
    CHECK(r.timed_out);
    CHECK(r.term_signal == 9);
    CHECK_FALSE(r.ok());
}

TEST_CASE("child output: a flood is cut at the bound and said so") {
    const auto r = run_to_end({"head", "-c", "100000", "/dev/zero"}, 10000, 4096);
    CHECK(r.ok());
    CHECK(r.out.size() == 4096);
    CHECK(r.truncated);
}

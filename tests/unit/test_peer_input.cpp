// What other processes send, as the supervisor reads it: module lines, control requests, the
// typed readers under them, and the limits that keep one peer from costing the others.
#include "control_request.hpp"
#include "helpers.hpp"
#include "json_read.hpp"
#include "module_message.hpp"
#include "ndjson.hpp"
#include "output_queue.hpp"
#include "rate_limit.hpp"
#include "uv.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <thread>

using namespace pilogger;

namespace {
ModuleLine line(const std::string& text) { return read_module_line(text); }
ControlRequest request(const std::string& text) { return read_control_request(parse_message(text)); }
std::string nested(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }
}  // namespace

TEST_CASE("wrong field types from a module are named, never thrown") {
    // The three lines that used to end the supervisor.
    auto warning = line(R"({"event":"warning","message":42})");
    CHECK(warning.kind == ModuleLine::Kind::Invalid);
    CHECK(warning.field == "message");
    CHECK(warning.problem.find("must be a string, got number") != std::string::npos);
    auto hello = line(R"({"event":"hello","protocol":"1"})");
    CHECK(hello.kind == ModuleLine::Kind::Invalid);
    CHECK(hello.field == "protocol");
    auto reply = line(R"({"id":7,"ok":false,"error":{"code":5}})");
    CHECK(reply.kind == ModuleLine::Kind::Invalid);
    CHECK(reply.field == "error.code");
    REQUIRE(reply.id);
    CHECK(*reply.id == 7);  // the command still gets a (failed) answer

    for (const char* bad : {R"({"event":"state","state":[]})", R"({"event":"error","message":null})",
                            R"({"event":"log"})", R"({"id":1,"ok":true,"result":"yes"})",
                            R"({"id":1,"ok":false,"error":"no"})", R"({"event":"hello","protocol":1,"capabilities":[1]})",
                            R"({"event":"hello","protocol":1,"version":{}})", R"({"event":"hello","protocol":1e3})",
                            R"({"event":"hello","protocol":18446744073709551615})"}) {
        CAPTURE(bad);
        CHECK(line(bad).kind == ModuleLine::Kind::Invalid);
        CHECK_FALSE(line(bad).problem.empty());
    }
}

TEST_CASE("good module lines are read with their fields") {
    auto hello = line(R"({"event":"hello","protocol":1,"version":"0.1.0","type":"camera","capabilities":["snapshot"]})");
    REQUIRE(hello.kind == ModuleLine::Kind::Hello);
    CHECK(hello.hello.protocol == 1);
    CHECK(hello.hello.version == "0.1.0");
    CHECK(hello.hello.capabilities == std::vector<std::string>{"snapshot"});
    auto ok = line(R"({"id":3,"ok":true,"result":{"trial":1}})");
    REQUIRE(ok.kind == ModuleLine::Kind::Reply);
    CHECK(ok.reply.result["trial"] == 1);
    auto failed = line(R"({"id":4,"ok":false,"error":{"code":"bad_state","message":"no session"}})");
    REQUIRE(failed.kind == ModuleLine::Kind::Reply);
    CHECK(failed.reply.code == "bad_state");
    auto warning = line(R"({"event":"warning","message":")" + std::string(10000, 'w') + "\"}");
    REQUIRE(warning.kind == ModuleLine::Kind::Event);
    CHECK(warning.event.message.size() <= kMaxModuleMessageBytes + 3);
}

TEST_CASE("a module can only send the protocol's own events") {
    for (const char* name : {"session", "trial", "note", "module_state", "supervisor_event", "subscribe"}) {
        CAPTURE(name);
        auto l = line(std::string(R"({"event":")") + name + R"(","active":false})");
        CHECK(l.kind == ModuleLine::Kind::Invalid);
        CHECK(l.field == "event");
    }
    CHECK(line(R"({"event":"device","connected":true})").kind == ModuleLine::Kind::Event);
    CHECK(line(R"({"id":1,"cmd":"status"})").kind == ModuleLine::Kind::Invalid);
}

TEST_CASE("nesting is bounded before anything recurses over it") {
    CHECK_FALSE(nests_deeper_than(nested(kMaxNestingDepth), kMaxNestingDepth));
    CHECK(nests_deeper_than(nested(kMaxNestingDepth + 1), kMaxNestingDepth));
    // Brackets inside strings (escaped quotes too) do not count.
    CHECK_FALSE(nests_deeper_than(R"({"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"[[["})", kMaxNestingDepth));
    std::string deep = R"({"event":"stats","x":)" + nested(100000) + "}";
    auto l = line(deep);
    CHECK(l.kind == ModuleLine::Kind::Invalid);
    CHECK(l.problem.find("nested deeper") != std::string::npos);
    auto caps = line(R"({"event":"hello","protocol":1,"capabilities":)" + nested(20000) + "}");
    CHECK(caps.kind == ModuleLine::Kind::Invalid);
    // Events are forwarded inside status, so their own nesting is bounded tighter.
    CHECK(line(R"({"event":"stats","x":)" + nested(kMaxModuleEventDepth) + "}").kind == ModuleLine::Kind::Invalid);
    CHECK(line(R"({"event":"stats","x":)" + nested(kMaxModuleEventDepth - 2) + "}").kind == ModuleLine::Kind::Event);
    auto big = line(R"({"event":"stats","x":")" + std::string(kMaxStatsBytes, 's') + "\"}");
    CHECK(big.kind == ModuleLine::Kind::Invalid);
}

TEST_CASE("control requests: each argument typed and bounded") {
    CHECK(request(R"({"id":1,"cmd":"status"})").ok());
    auto note = request(R"({"id":2,"cmd":"note","args":{"text":"hello","mono_ns":5}})");
    REQUIRE(note.ok());
    CHECK(note.text == "hello");
    CHECK(*note.mono_ns == 5);
    CHECK(request(R"({"id":3,"cmd":"note","args":{"text":7}})").problem.find("\"text\" must be a string") != std::string::npos);
    CHECK(request(R"({"id":3,"cmd":"note","args":{"text":""}})").problem == "a note needs some text");
    CHECK_FALSE(request(R"({"id":3,"cmd":"note","args":{"text":"x","mono_ns":-9223372036854775807}})").ok());
    CHECK_FALSE(request(R"({"id":3,"cmd":"note","args":{"text":"x","mono_ns":1.5}})").ok());
    std::string long_note = R"({"id":4,"cmd":"note","args":{"text":")" + std::string(kMaxNoteBytes + 1, 'n') + "\"}}";
    CHECK(request(long_note).problem.find("longer than 65536 bytes") != std::string::npos);
    CHECK(request(R"({"id":5,"cmd":"trial_start","args":{"label":["x"]}})").error_code == errc::kBadRequest);
    CHECK(request(R"({"id":6,"cmd":"module_command","args":{"name":"cam0","cmd":"snapshot","args":[]}})").error_code ==
          errc::kBadRequest);
    CHECK(request(R"({"id":7,"cmd":"module_restart","args":{"name":null}})").error_code == errc::kBadRequest);
    // What only the supervisor sends a module: a note around it would have any id, time and trial.
    auto forged = request(R"({"id":7,"cmd":"module_command","args":{"name":"*","cmd":"note","args":{"text":"x","note_id":1}}})");
    CHECK(forged.problem == "note is sent by the supervisor; use the note command");
    CHECK(request(R"({"id":7,"cmd":"module_command","args":{"name":"cam0","cmd":"stop_recording"}})").problem.find(
              "use the session and trial commands") != std::string::npos);
    CHECK(request(R"({"id":8,"cmd":"fly"})").error_code == errc::kUnknownCommand);
    auto label = request(R"({"id":9,"cmd":"session_start","args":{"label":"Fahrt 3 – Müller 🚗"}})");
    REQUIRE(label.ok());
    CHECK(label.label == "Fahrt 3 – Müller 🚗");
}

TEST_CASE("lenient readers never throw and clamp what does not fit") {
    json j = json::parse(R"({"s":"x","n":1e300,"m":-1e300,"u":18446744073709551615,"b":"true"})");
    CHECK(read::text(j, "n", "d") == "d");
    CHECK(read::integer(j, "n") == std::numeric_limits<int64_t>::max());
    CHECK(read::integer(j, "m") == std::numeric_limits<int64_t>::min());
    CHECK(read::integer(j, "u") == std::numeric_limits<int64_t>::max());
    CHECK(read::flag(j, "b", false) == false);
    const json array = json::array();
    CHECK(read::field(array, "s").is_null());
}

TEST_CASE("rate limits and read budgets") {
    RateLimit limit(10, 5);
    int allowed = 0;
    for (int i = 0; i < 100; ++i) allowed += limit.allow(1'000'000'000 + i) ? 1 : 0;  // a burst
    CHECK(allowed == 5);
    CHECK(limit.take_suppressed() == 95);
    CHECK(limit.allow(2'000'000'000));  // a second later the bucket refilled
    ReadBudget budget(100'000'000, 10, 1000);
    budget.add(1, 9, 10);
    CHECK_FALSE(budget.exhausted(2));
    budget.add(3, 1, 10);
    CHECK(budget.exhausted(4));
    CHECK(budget.remaining_ns(4) > 99'000'000);
    CHECK_FALSE(budget.exhausted(200'000'000));  // the next window
}

TEST_CASE("an output queue never blocks its caller on a reader that stopped") {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    fcntl(fds[1], F_SETPIPE_SZ, 4096);  // a pipe much smaller than the queue
    {
        OutputQueue queue(fds[1], 64 * 1024);
        std::string line(1000, 'x');
        auto start = std::chrono::steady_clock::now();
        int accepted = 0;
        // Nobody reads the pipe: its 64 KiB fill, the writer thread blocks, the queue fills.
        for (int i = 0; i < 1000; ++i) accepted += queue.write(line + "\n") ? 1 : 0;
        auto took = std::chrono::steady_clock::now() - start;
        CHECK(took < std::chrono::milliseconds(500));
        CHECK(accepted < 1000);
        CHECK(queue.dropped_writes() == static_cast<uint64_t>(1000 - accepted));
        CHECK_FALSE(queue.flush(std::chrono::milliseconds(50)));
        // Once read, what was queued gets out.
        std::thread reader([&] {
            char buf[65536];
            while (::read(fds[0], buf, sizeof buf) > 0) {
            }
        });
        CHECK(queue.flush(std::chrono::milliseconds(5000)));
        ::close(fds[1]);
        reader.join();
    }
    ::close(fds[0]);
}

TEST_CASE("an exception escaping a callback is reported and the loop goes on") {
    uv::Loop loop;
    std::string reported;
    uv::set_fault_handler([&](std::string_view where, std::string_view what) {
        reported = std::string(where) + ": " + std::string(what);
    });
    uint64_t before = uv::fault_count();
    uv::Timer bad(loop);
    bad.start(1, 0, [] { throw std::runtime_error("boom"); });
    bool later = false;
    uv::Timer good(loop);
    good.start(5, 0, [&] { later = true; });
    CHECK(test::run_until(loop, [&] { return later; }));
    CHECK(reported == "timer: boom");
    CHECK(uv::fault_count() == before + 1);
    uv::set_fault_handler(nullptr);
}

TEST_CASE("a program that is missing is an error at spawn, naming it") {
    CHECK(uv::find_executable("sh").find("/sh") != std::string::npos);
    CHECK(uv::find_executable("no-such-program-here").empty());
    test::TempDir dir;
    std::string plain = dir.file("plain");
    std::ofstream(plain) << "not a program";
    CHECK(uv::find_executable(plain).empty());  // not executable
    uv::Loop loop;
    uv::Process process(loop);
    uv::ProcessOptions options;
    options.file = "/no/such/module";
    options.args = {"/no/such/module"};
    CHECK_THROWS_WITH_AS(process.spawn(options, [](int64_t, int) {}), "cannot start /no/such/module: no such executable file",
                         uv::Error);
}

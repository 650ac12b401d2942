#include "clock.hpp"
#include "helpers.hpp"
#include "session.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <regex>

using namespace pilogger;

TEST_CASE("labels are made safe for folder names") {
    CHECK(sanitize_label("car run 3") == "car_run_3");
    CHECK(sanitize_label("../../etc/passwd") == "etc_passwd");
    CHECK(sanitize_label("second run/../x") == "second_run_x");
    CHECK(sanitize_label("a..b") == "a_b");
    CHECK(sanitize_label("tab\there\nnewline\x01") == "tab_here_newline");
    CHECK(sanitize_label(".hidden") == "hidden");
    CHECK(sanitize_label("////") == "");
    CHECK(sanitize_label(std::string(200, 'a')).size() == 64);
    CHECK(sanitize_label("ok-name_1.2") == "ok-name_1.2");
}

TEST_CASE("UTC times are formatted with microseconds") {
    CHECK(format_utc(0) == "1970-01-01T00:00:00.000000Z");
    CHECK(format_utc(1795423975355324058) == "2026-11-23T08:52:55.355324Z");
    CHECK(format_utc_compact(1795423975355324058) == "20261123T085255Z");
    ClockTriple t = read_clock_triple();
    CHECK(t.uncertainty_ns >= 0);
    CHECK(t.boottime_ns >= t.mono_ns - t.uncertainty_ns);
}

TEST_CASE("a session creates its folder, files and an atomic session.json") {
    test::TempDir dir;
    uv::Loop loop;
    uv::Requests requests(loop);
    std::unique_ptr<Session> session;
    std::string error = "pending";
    std::string data_dir = dir.file("data/nested");  // created on demand
    Session::create(loop, requests, data_dir, "my label/..", 100, {}, [&](std::unique_ptr<Session> s, const std::string& e) {
        session = std::move(s);
        error = e;
    });
    REQUIRE(test::run_until(loop, [&] { return error != "pending"; }));
    REQUIRE(error.empty());
    CHECK(std::regex_match(session->name(), std::regex("session_\\d{8}T\\d{6}Z_my_label")));
    session->event(mono_ns(), "trial_start", "", 1, "label=a, \"b\"");
    session->event(mono_ns(), "module_crash", "notes", 0, "signal 9");
    session->log_line("notes", "a log line");
    session->write_json(json{{"n", 1}});
    session->write_json(json{{"n", 2}});
    session->write_json(json{{"n", 3}});
    // The 100 ms clock timer's first periodic row reaches clocks.csv (header, start, periodic).
    const std::string clocks_path = session->dir() + "/clocks.csv";
    auto clock_lines = [&] {
        const std::string text = test::read_file(clocks_path);
        return std::count(text.begin(), text.end(), '\n');
    };
    test::run_until(loop, [&] { return clock_lines() >= 3; });  // checked with the close row below
    bool closed = false;
    session->close([&] { closed = true; });
    REQUIRE(test::run_until(loop, [&] { return closed; }));

    std::string base = session->dir();
    CHECK(json::parse(test::read_file(base + "/session.json"))["n"] == 3);
    CHECK_FALSE(std::filesystem::exists(base + "/session.json.tmp"));
    std::string events = test::read_file(base + "/events.csv");
    CHECK(events.rfind("mono_ns,wall_time_utc,event,module,trial,detail\n", 0) == 0);
    CHECK(events.find(",trial_start,,1,\"label=a, \"\"b\"\"\"\n") != std::string::npos);
    CHECK(events.find(",module_crash,notes,,signal 9\n") != std::string::npos);
    CHECK(test::read_file(base + "/logs/notes.log") == "a log line\n");
    std::string clocks = test::read_file(base + "/clocks.csv");
    CHECK(std::count(clocks.begin(), clocks.end(), '\n') >= 4);  // header, start, periodic, close

    // A second session in the same second gets its own folder.
    std::unique_ptr<Session> second;
    error = "pending";
    Session::create(loop, requests, data_dir, "my label", 100, {}, [&](std::unique_ptr<Session> s, const std::string& e) {
        second = std::move(s);
        error = e;
    });
    REQUIRE(test::run_until(loop, [&] { return error != "pending"; }));
    CHECK(second->dir() != base);
    closed = false;
    second->close([&] { closed = true; });
    REQUIRE(test::run_until(loop, [&] { return closed; }));
}

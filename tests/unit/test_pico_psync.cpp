// PSYNC/1 parsing, line splitting, seq tracking and command formatting (logger_core/pico/psync.hpp).
#include "psync.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace pilogger;

namespace {
std::vector<std::string> split_all(psync::LineSplitter& s, const std::vector<std::string>& chunks) {
    std::vector<std::string> lines;
    for (const auto& c : chunks) s.feed(c, [&](std::string_view line) { lines.emplace_back(line); });
    return lines;
}
}  // namespace

TEST_CASE("psync: lines split on newline whatever the chunking; CR and empty lines dropped") {
    psync::LineSplitter s;
    auto lines = split_all(s, {"HB 1 100 up=0 led=0 drop=0\r", "\nPO", "NG 2 n1 5 6\n\n\r\nLED 3 7", " 0 1 id=a\n"});
    REQUIRE(lines.size() == 3);
    CHECK(lines[0] == "HB 1 100 up=0 led=0 drop=0");
    CHECK(lines[1] == "PONG 2 n1 5 6");
    CHECK(lines[2] == "LED 3 7 0 1 id=a");
}

TEST_CASE("psync: an over-long line is dropped up to its newline and counted") {
    psync::LineSplitter s(20);
    auto lines = split_all(s, {std::string(50, 'x'), "yyy\nHB 1 2\n", std::string(21, 'z') + "\n"});
    REQUIRE(lines.size() == 1);
    CHECK(lines[0] == "HB 1 2");
    CHECK(s.overlong_lines() == 2);

    // Counted as soon as it passes the bound: a line that never ends is counted too, once.
    psync::LineSplitter t(20);
    CHECK(split_all(t, {std::string(21, 'x')}).empty());
    CHECK(t.overlong_lines() == 1);
    for (int i = 0; i < 1000; ++i) split_all(t, {std::string(4096, 'y')});
    CHECK(t.overlong_lines() == 1);
    CHECK_FALSE(t.prompt_pending());
    CHECK(split_all(t, {"\nHB 1 2\n"}) == std::vector<std::string>{"HB 1 2"});
    CHECK(t.overlong_lines() == 1);
    // Exactly the bound is a line.
    CHECK(split_all(t, {std::string(20, 'z') + "\n"}).size() == 1);
}

TEST_CASE("psync: the MicroPython prompt is noticed without a newline") {
    psync::LineSplitter s;
    auto lines = split_all(s, {"Traceback (most recent call last):\r\n", "MemoryError\r\n>>> "});
    CHECK(lines.size() == 2);
    CHECK(s.prompt_pending());
    s.reset();
    CHECK_FALSE(s.prompt_pending());
    split_all(s, {">> 3\n"});
    CHECK_FALSE(s.prompt_pending());
}

TEST_CASE("psync: HELLO") {
    auto l = psync::parse_line("HELLO 0 1234567 proto=1 fw=1.0.0 board=pico_w boot=0a1b2c3d uid=e6614103e7452d2f");
    REQUIRE(l);
    CHECK(l->kind == psync::Kind::Hello);
    CHECK_FALSE(l->has_seq);
    CHECK(l->t_us == 1234567);
    CHECK(l->proto == 1);
    CHECK(l->fw == "1.0.0");
    CHECK(l->board == "pico_w");
    CHECK(l->boot == "0a1b2c3d");
    CHECK(l->uid == "e6614103e7452d2f");
    // Unknown keys are ignored; a HELLO without a boot id is useless and rejected.
    CHECK(psync::parse_line("HELLO 0 5 proto=1 boot=ff color=red"));
    CHECK_FALSE(psync::parse_line("HELLO 0 5 proto=1 fw=1"));
    CHECK_FALSE(psync::parse_line("HELLO 0 x proto=1 boot=ff"));
}

TEST_CASE("psync: PONG, LED, HB, ACK, ERR, LOG") {
    auto pong = psync::parse_line("PONG 17 n42 1000000 1000123");
    REQUIRE(pong);
    CHECK(pong->kind == psync::Kind::Pong);
    CHECK(pong->has_seq);
    CHECK(pong->seq == 17);
    CHECK(pong->nonce == "n42");
    CHECK(pong->t_rx_us == 1000000);
    CHECK(pong->t_tx_us == 1000123);

    auto led = psync::parse_line("LED 4294967295 99999999999999 0 65535 id=t1code");
    REQUIRE(led);
    CHECK(led->kind == psync::Kind::Led);
    CHECK(led->seq == 4294967295u);
    CHECK(led->t_us == 99999999999999ull);
    CHECK(led->channel == 0);
    CHECK(led->level == 65535);
    CHECK(led->cmd_id == "t1code");

    auto hb = psync::parse_line("HB 9 5000000 up=5 led=1 drop=3");
    REQUIRE(hb);
    CHECK(hb->kind == psync::Kind::Heartbeat);
    CHECK(hb->up_s == 5);
    CHECK(hb->led_mask == 1);
    CHECK(hb->drop == 3);

    auto ack = psync::parse_line("ACK 10 5000100 c7");
    REQUIRE(ack);
    CHECK(ack->kind == psync::Kind::Ack);
    CHECK(ack->cmd_id == "c7");

    auto err = psync::parse_line("ERR 11 5000200 - 5 toolong");
    REQUIRE(err);
    CHECK(err->kind == psync::Kind::Err);
    CHECK(err->cmd_id == "-");
    CHECK(err->code == 5);
    CHECK(err->err_word == "toolong");

    auto log = psync::parse_line("LOG 12 5000300 warn late id=t1code us=1234");
    REQUIRE(log);
    CHECK(log->kind == psync::Kind::Log);
    CHECK(log->log_level == "warn");
    CHECK(log->text == "late id=t1code us=1234");
}

TEST_CASE("psync: unknown messages are accepted (and keep their seq), garbage is not") {
    auto u = psync::parse_line("TEMP 20 123 c=21.5");
    REQUIRE(u);
    CHECK(u->kind == psync::Kind::Unknown);
    CHECK(u->has_seq);
    CHECK(u->seq == 20);
    CHECK(psync::parse_line("NEWS"));  // an unknown word without fields is still well formed

    for (const char* bad : {"", "hello world", "PONG 1 n1 5", "PONG 1 n1 5 x", "LED 1 2 0", "LED 1 2 0 70000",
                            "HB x 1", "ACK 1 2", "ERR 1 2 c 5", "LOG 1 2", "PONG -1 n 1 2",
                            "PONG 1 12345678901234567 1 2", "MPY: soft reboot", ">>> ",
                            "HB 99999999999 1"}) {
        CAPTURE(bad);
        CHECK_FALSE(psync::parse_line(bad));
    }
    CHECK_FALSE(psync::parse_line(std::string("HB 1 2\x01")));
    CHECK_FALSE(psync::parse_line("LED 1 99999999999999999999999 0 1"));  // past 64 bits
}

TEST_CASE("psync: seq gaps, wrap, and lines that go back") {
    psync::SeqTracker t;
    uint64_t lost = 0;
    CHECK(t.add(5, &lost) == psync::SeqTracker::Result::First);
    CHECK(t.add(6, &lost) == psync::SeqTracker::Result::InOrder);
    CHECK(t.add(9, &lost) == psync::SeqTracker::Result::Gap);
    CHECK(lost == 2);
    // Back (a restart, or a stray line): the tracker stays at 9, so one stray line cannot move it.
    CHECK(t.add(1, &lost) == psync::SeqTracker::Result::Back);
    CHECK(t.add(9, &lost) == psync::SeqTracker::Result::Back);  // repeated
    CHECK(t.last() == 9u);
    CHECK(t.add(10, &lost) == psync::SeqTracker::Result::InOrder);
    CHECK(lost == 0);
    t.reset();
    CHECK(t.add(2, &lost) == psync::SeqTracker::Result::First);

    psync::SeqTracker w;
    w.add(psync::kSeqMax - 1);
    CHECK(w.add(psync::kSeqMax, &lost) == psync::SeqTracker::Result::InOrder);
    CHECK(w.add(1, &lost) == psync::SeqTracker::Result::InOrder);  // 0 is HELLO's: the counter skips it
    w.add(psync::kSeqMax - 2);
    CHECK(w.add(3, &lost) == psync::SeqTracker::Result::Gap);  // lost kSeqMax-1, kSeqMax, 1, 2
    CHECK(lost == 4);
    // 0 after the top is no wrap (it is HELLO's number): back, and nothing counted lost (it was
    // 2^64 - 1 lines, found by the fuzzer).
    psync::SeqTracker z;
    z.add(psync::kSeqMax);
    CHECK(z.add(0, &lost) == psync::SeqTracker::Result::Back);
    CHECK(lost == 0);
}

TEST_CASE("psync: host commands") {
    CHECK(psync::hello_query() == "HELLO?\n");
    CHECK(psync::ping("17") == "PING 17\n");
    CHECK(psync::led("on3", 0, 1) == "LED on3 0 1\n");
    CHECK(psync::code("t1code", 0, "E0001A", 100, 123456789) == "CODE t1code 0 E0001A 100 at=123456789\n");
    CHECK(psync::code("x", 1, "0", 1) == "CODE x 1 0 1\n");
    CHECK(psync::stop("quit", 0) == "STOP quit 0\n");
    // Every command stays within the firmware's 63-byte line limit.
    CHECK(psync::code("t65535code", 7, psync::trial_code_hex(65535), 1000, 99999999999999ull).size() <= 64);
}

TEST_CASE("psync: the trial code is 1110, the trial number in 16 bits, 1010") {
    CHECK(psync::trial_code_hex(1) == "E0001A");
    CHECK(psync::trial_code_hex(300) == "E012CA");
    CHECK(psync::trial_code_hex(65535) == "EFFFFA");
    CHECK(psync::trial_code_hex(1).size() * 4 == psync::kTrialCodeBits);
}

TEST_CASE("psync: a refused line says why, naming the field") {
    auto why = [](std::string_view line) {
        std::string w;
        CHECK_FALSE(psync::parse_line(line, &w));
        return w;
    };
    CHECK(why("") == "an empty line");
    CHECK(why("    ") == "an empty line (spaces only)");
    CHECK(why(std::string("HB 1 2\0", 7)) == "a byte outside printable ASCII (0x00)");
    CHECK(why("LOG 1 2 warn Zo\xc3\xab") == "a byte outside printable ASCII (0xc3)");
    CHECK(why("pong 1 n 2 3") == "not a PSYNC/1 message word");
    CHECK(why("HELLO") == "HELLO: <seq> must be a number 0..4294967295");
    CHECK(why("PONG -1 n 1 2") == "PONG: <seq> must be a number 0..4294967295");
    CHECK(why("PONG 4294967296 n 1 2") == "PONG: <seq> must be a number 0..4294967295");
    CHECK(why("PONG 1 n 1") == "PONG: fields missing");
    CHECK(why("PONG 1 nnnnnnnnnnnnnnnnn 1 2") == "PONG: <nonce> must be 1..16 characters");
    CHECK(why("PONG 1 n x 2").rfind("PONG: <t_rx> must be microseconds 0..", 0) == 0);
    CHECK(why("PONG 1 n 5 4") == "PONG: <t_tx> before <t_rx>");
    CHECK(why("PONG 1 n 5 10000006") == "PONG: <t_tx> more than 10 s after <t_rx>");
    CHECK(why("LED 1 2 256 1") == "LED: <ch> must be 0..255");
    CHECK(why("LED 1 2 0 65536") == "LED: <level> must be 0..65535");
    CHECK(why("HB 1 2 up=-1") == "HB: up= must be whole seconds");
    CHECK(why("HB 1 2 led=4294967296") == "HB: led= must be a 32-bit mask");
    CHECK(why("HB 1 2 drop=many") == "HB: drop= must be a count");
    CHECK(why("ERR 1 2 c 1001 w") == "ERR: <code> must be 0..1000");
    CHECK(why("ERR 1 2 c 5") == "ERR: fields missing");
    CHECK(why("HELLO 0 5 proto=one boot=ff") == "HELLO: proto= must be a number");
    CHECK(why("HELLO 0 5 boot=ff") == "HELLO: proto= missing or 0");
    CHECK(why("HELLO 0 5 proto=1 boot=") == "HELLO: boot= missing or empty");
    CHECK(psync::parse_line("PONG 1 n 5 10000005"));  // held exactly 10 s: still a PONG
}

TEST_CASE("psync: Pico clock values past 2^53 us are refused, so the fit's arithmetic stays exact") {
    const std::string max = std::to_string(psync::kMaxClockUs);
    const std::string over = std::to_string(psync::kMaxClockUs + 1);
    auto led = psync::parse_line("LED 1 " + max + " 0 1 id=a");
    REQUIRE(led);
    CHECK(led->t_us == psync::kMaxClockUs);
    CHECK(psync::parse_line("PONG 1 n " + max + " " + max));
    for (const std::string& bad : {"LED 1 " + over + " 0 1", "PONG 1 n " + over + " " + over, "PONG 1 n 1 " + over,
                                   "HB 1 " + over, "ACK 1 " + over + " c", "ERR 1 " + over + " c 1 w",
                                   "LOG 1 " + over + " warn x", "HELLO 0 " + over + " proto=1 boot=ff",
                                   std::string("LED 1 9223372036854775807 0 1"), std::string("PONG 1 n 4611686018427387904 4611686018427387914")}) {
        CAPTURE(bad);
        CHECK_FALSE(psync::parse_line(bad));
    }
}

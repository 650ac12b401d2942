// The pico: config section, and PicoLink against a scripted Pico on a pseudo-terminal.
#include "clock.hpp"
#include "config.hpp"
#include "helpers.hpp"
#include "pico_link.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <pty.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

using namespace pilogger;

namespace {

std::string config_error(const std::string& yaml) {
    try {
        load_config_text(yaml, "test.yaml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

// Plays the Pico on the master side of a pty: answers HELLO?, PING and LED like the firmware,
// with a clock running 100 ppm fast from 7000 s.
class FakePico {
public:
    explicit FakePico(uv::Loop& loop) {
        REQUIRE(openpty(&master_, &slave_, nullptr, nullptr, nullptr) == 0);
        termios tio{};
        tcgetattr(slave_, &tio);
        cfmakeraw(&tio);
        tcsetattr(slave_, TCSANOW, &tio);
        fcntl(master_, F_SETFL, fcntl(master_, F_GETFL) | O_NONBLOCK);
        path_ = ttyname(slave_);
        poll_ = std::make_unique<uv::Poll>(loop, master_);
        poll_->start(UV_READABLE, [this](int, int) { on_readable(); });
    }
    ~FakePico() { unplug(); }

    const std::string& path() const { return path_; }
    double pico_us(int64_t host_ns) const {
        return 7e9 + static_cast<double>(host_ns - h0_) / 1e3 * (1 + 100e-6);
    }
    void say(const std::string& text) {
        if (master_ >= 0) {
            ssize_t n = ::write(master_, text.data(), text.size());
            (void)n;
        }
    }
    std::string next_line(const std::string& kind, uint64_t t) {
        return kind + " " + std::to_string(++seq_) + " " + std::to_string(t);
    }
    void reboot(const std::string& boot) {
        lose_reboot(boot);
        say(hello());
    }
    void say_hello() { say(hello()); }
    // A reboot whose boot HELLO was lost: a new boot id and seq from 1, nothing said.
    void lose_reboot(const std::string& boot) {
        boot_ = boot;
        seq_ = 0;
    }
    void unplug() {
        poll_.reset();
        if (master_ >= 0) ::close(master_);
        if (slave_ >= 0) ::close(slave_);
        master_ = slave_ = -1;
    }

    std::string received;  // everything the host sent
    std::map<std::string, int> commands;
    bool answer = true;
    int lies = 0;
    uint32_t seq_ = 0;

private:
    uint64_t now_us() const { return static_cast<uint64_t>(pico_us(mono_ns())); }
    std::string hello() const {
        return "HELLO 0 " + std::to_string(now_us()) + " proto=1 fw=9.9 board=fake boot=" + boot_ + " uid=1\n";
    }
    void on_readable() {
        char buf[512];
        ssize_t n = ::read(master_, buf, sizeof buf);
        if (n <= 0) return;
        uint64_t t_rx = now_us();
        received.append(buf, static_cast<size_t>(n));
        partial_.append(buf, static_cast<size_t>(n));
        for (size_t nl; (nl = partial_.find('\n')) != std::string::npos;) {
            std::string line = partial_.substr(0, nl);
            partial_.erase(0, nl + 1);
            std::istringstream in(line);
            std::string cmd, a, b, c;
            in >> cmd >> a >> b >> c;
            ++commands[cmd];
            if (!answer) continue;
            if (cmd == "HELLO?") say(hello());
            if (cmd == "PING") {
                // A liar adds an hour to the next `lies` answers.
                uint64_t lie = lies > 0 ? 3'600'000'000ull : 0;
                if (lies > 0) --lies;
                say("PONG " + std::to_string(++seq_) + " " + a + " " + std::to_string(t_rx + lie) + " " +
                    std::to_string(now_us() + lie) + "\n");
            }
            if (cmd == "LED") {
                say(next_line("ACK", now_us()) + " " + a + "\n");
                say(next_line("LED", now_us()) + " " + b + " " + c + " id=" + a + "\n");
            }
            if (cmd == "CODE" || cmd == "STOP") say(next_line("ACK", now_us()) + " " + a + "\n");
        }
    }

    int master_ = -1;
    int slave_ = -1;
    std::string path_;
    std::unique_ptr<uv::Poll> poll_;
    std::string partial_;
    std::string boot_ = "0000beef";
    int64_t h0_ = mono_ns();
};

}  // namespace

TEST_CASE("pico config: absent, empty and full sections") {
    CHECK_FALSE(load_config_text("data_dir: /d\nmodules: {}\n", "t.yaml").pico);

    Config c = load_config_text("data_dir: /d\nmodules: {}\npico:\n", "t.yaml");
    REQUIRE(c.pico);
    CHECK(c.pico->device == "auto");
    CHECK(c.pico->led_pin == 15);

    c = load_config_text(
        "data_dir: /d\nmodules: {}\n"
        "pico:\n  device: emulator\n  led_pin: 16\n  led_channel: 1\n  ping_interval_ms: 2000\n"
        "  ping_burst: 4\n  fit_window_s: 120\n  code_bit_ms: 50\n"
        "  emulator:\n    skew_ppm: -12.5\n    latency_us: 300\n    jitter_us: 200\n    jitter_dist: uniform\n"
        "    loss: 0.01\n    seed: 7\n    unplug_after_s: 5\n    replug_after_s: 2\n    crlf: true\n",
        "t.yaml");
    REQUIRE(c.pico);
    CHECK(c.pico->device == "emulator");
    CHECK(c.pico->led_pin == 16);
    CHECK(c.pico->led_channel == 1);
    CHECK(c.pico->ping_interval_ms == 2000);
    CHECK(c.pico->ping_burst == 4);
    CHECK(c.pico->fit_window_s == 120);
    CHECK(c.pico->code_bit_ms == 50);
    CHECK(c.pico->emulator.skew_ppm == -12.5);
    CHECK(c.pico->emulator.jitter_dist == "uniform");
    CHECK(c.pico->emulator.seed == 7);
    CHECK(c.pico->emulator.unplug_after_s == 5.0);
    CHECK_FALSE(c.pico->emulator.reboot_after_s);
    CHECK(c.pico->emulator.crlf);
    nlohmann::json j = c.to_json();
    CHECK(j["pico"]["led_pin"] == 16);
    CHECK(j["pico"]["emulator"]["loss"] == 0.01);
}

TEST_CASE("pico config: mistakes name the key") {
    std::string e = config_error("data_dir: /d\nmodules: {}\npico:\n  led_pn: 15\n");
    CHECK(e.find("test.yaml:4:3") != std::string::npos);
    CHECK(e.find("pico.led_pn") != std::string::npos);
    CHECK(e.find("unknown key") != std::string::npos);

    e = config_error("data_dir: /d\nmodules: {}\npico:\n  device: ttyACM0\n");
    CHECK(e.find("pico.device") != std::string::npos);
    CHECK(e.find("absolute path") != std::string::npos);

    e = config_error("data_dir: /d\nmodules: {}\npico:\n  device: emulator\n  emulator:\n    replug_after_s: 1\n");
    CHECK(e.find("pico.emulator.replug_after_s") != std::string::npos);

    e = config_error("data_dir: /d\nmodules: {}\npico:\n  ping_interval_ms: 200\n  ping_burst: 32\n");
    CHECK(e.find("pico.ping_interval_ms") != std::string::npos);

    e = config_error("data_dir: /d\nmodules: {}\npico:\n  emulator:\n    loss: 2\n");
    CHECK(e.find("pico.emulator.loss") != std::string::npos);
}

// The fake Pico's link, pinging often so a test sees a clock fit within a second or two.
static PicoConfig fast_ping_config(const FakePico& pico) {
    PicoConfig config;
    config.device = pico.path();
    config.ping_interval_ms = 300;
    config.ping_burst = 4;
    config.ping_spacing_ms = 2;
    return config;
}

TEST_CASE("pico link: HELLO, clock fit, trial LED, prompt recovery, restart and unplug") {
    uv::Loop loop;
    test::TempDir tmp;
    FakePico pico(loop);
    PicoConfig config = fast_ping_config(pico);
    std::vector<std::string> events;
    std::vector<std::string> logs;
    PicoLink link(loop, config,
                  PicoLink::Callbacks{[&](std::string_view level, const std::string& m) {
                                          logs.push_back(std::string(level) + ": " + m);
                                      },
                                      [&](std::string_view e, const std::string&, int64_t) { events.emplace_back(e); }});
    auto has_event = [&](const std::string& e) { return std::find(events.begin(), events.end(), e) != events.end(); };

    link.open_session(tmp.path.string());
    link.start();
    REQUIRE(test::run_until(loop, [&] { return link.ready() && link.fit().span_ns() >= 2'100'000'000; }, 6000));
    CHECK(pico.received.rfind("\nHELLO?\n", 0) == 0);
    CHECK(has_event("pico_connected"));
    CHECK(link.segment() == 1);
    json s = link.status();
    CHECK(s["state"] == "connected");
    CHECK(s["firmware"] == "9.9");
    CHECK(s["boot"] == "0000beef");
    // Same loop, no link delay: the fit is within a few tens of us of the fake clock.
    int64_t now = mono_ns();
    CHECK(std::fabs(link.fit().pico_us_at(now) - pico.pico_us(now)) < 200);
    CHECK(std::fabs(link.fit().drift_ppm() - 100) < 50);  // two seconds of data

    // A trial: CODE at the start instant (in Pico time), LED on after it, off at the stop.
    int64_t start_at = mono_ns() + 50'000'000;
    link.trial_started(1, start_at);
    REQUIRE(test::run_until(loop, [&] { return pico.commands["CODE"] == 1; }, 1000));
    size_t at = pico.received.find("CODE t1code 0 E0001A 100 at=");
    REQUIRE(at != std::string::npos);
    uint64_t at_us = std::stoull(pico.received.substr(at + 28));
    CHECK(std::fabs(static_cast<double>(at_us) - pico.pico_us(start_at)) < 200);
    link.trial_stopped(1, mono_ns() + 20'000'000);
    REQUIRE(test::run_until(loop, [&] { return pico.commands["CODE"] == 2; }, 1000));
    CHECK(pico.received.find("CODE t1off 0 0 1 at=") != std::string::npos);

    // The LED line from the Pico lands in led.csv, mapped to host time.
    int64_t led_host = mono_ns();
    pico.say(pico.next_line("LED", static_cast<uint64_t>(pico.pico_us(led_host))) + " 0 1 id=x\n");
    REQUIRE(test::run_until(loop, [&] { return link.status()["led"] == "on"; }, 1000));

    // The board falls into the REPL: Ctrl-C, Ctrl-D, then a new boot is a new segment.
    pico.say("Traceback (most recent call last):\r\nMemoryError: memory allocation failed\r\n>>> ");
    REQUIRE(test::run_until(loop, [&] { return pico.received.find("\x03\x03\x04") != std::string::npos; }, 1000));
    CHECK(has_event("pico_repl"));
    pico.reboot("0000cafe");
    REQUIRE(test::run_until(loop, [&] { return link.segment() == 2 && link.fit().points() >= 1; }, 2000));
    CHECK(link.status()["boot"] == "0000cafe");

    // Line numbers that go back: the line is ignored and counted, and HELLO? asked. The same
    // boot id in the answer: a stray line, the segment and its fit stay.
    for (int i = 0; i < 5; ++i) pico.say(pico.next_line("HB", 1) + " up=0 led=0 drop=0\n");
    int hellos = pico.commands["HELLO?"];
    size_t points = link.fit().points();
    uint32_t seq = pico.seq_;
    pico.seq_ = 1;
    pico.say(pico.next_line("HB", 2) + " up=0 led=0 drop=0\n");
    REQUIRE(test::run_until(loop, [&] { return link.status()["lines_out_of_order"] == 1; }, 1000));
    REQUIRE(test::run_until(loop, [&] { return pico.commands["HELLO?"] > hellos; }, 1000));
    pico.seq_ = seq;
    REQUIRE(test::run_until(loop, [&] { return link.fit().points() > points; }, 2000));
    CHECK(link.ready());
    CHECK(link.segment() == 2);
    CHECK(link.status()["lines_out_of_order"] == 1);
    // A restart whose HELLO was lost: the lines with the new numbers are ignored until the
    // answer to HELLO? names the new boot, which starts a new segment.
    hellos = pico.commands["HELLO?"];
    pico.answer = false;
    pico.lose_reboot("0000d00d");
    pico.say(pico.next_line("HB", 2) + " up=0 led=0 drop=0\n");
    REQUIRE(test::run_until(loop, [&] { return pico.commands["HELLO?"] > hellos; }, 1000));
    CHECK(link.segment() == 2);
    pico.answer = true;
    pico.say_hello();
    REQUIRE(test::run_until(loop, [&] { return link.ready() && link.segment() == 3; }, 2000));
    CHECK(link.status()["boot"] == "0000d00d");

    // Unplugged: an event, and the link keeps trying without stopping anything.
    pico.unplug();
    REQUIRE(test::run_until(loop, [&] { return has_event("pico_disconnected"); }, 2000));
    CHECK(link.status()["state"] == "disconnected");
    CHECK(link.status()["connected"] == false);

    bool closed = false;
    link.close_session([&] { closed = true; });
    REQUIRE(test::run_until(loop, [&] { return closed; }, 3000));
    link.stop();
    std::string sync = test::read_file(tmp.file("pico/sync.csv"));
    CHECK(sync.rfind("host_t1_ns,pico_rx_us,pico_tx_us,host_t4_ns,rtt_us,kept,offset_us,drift_ppm,residual_us,fit_points,segment,boot\n", 0) == 0);
    CHECK(sync.find(",1,0000beef\n") != std::string::npos);
    CHECK(sync.find(",2,0000cafe\n") != std::string::npos);
    std::string led = test::read_file(tmp.file("pico/led.csv"));
    CHECK(led.rfind("seq,pico_us,mono_ns,channel,level,cmd_id,segment\n", 0) == 0);
    size_t row = led.find(",0,1,x,1\n");
    REQUIRE(row != std::string::npos);
    // seq,pico_us,mono_ns: the mapped time is within 200 us of when the fake stamped it.
    std::string line = led.substr(led.rfind('\n', row) + 1, row - led.rfind('\n', row) - 1);
    int64_t mapped = std::stoll(line.substr(line.rfind(',') + 1));
    CHECK(std::llabs(mapped - led_host) < 200'000);
}

TEST_CASE("pico link: a hostile Pico's lines are counted, recorded at a bounded rate, and kept out of the files") {
    uv::Loop loop;
    test::TempDir tmp;
    FakePico pico(loop);
    PicoConfig config = fast_ping_config(pico);
    std::vector<std::pair<std::string, std::string>> events;
    PicoLink link(loop, config,
                  PicoLink::Callbacks{[](std::string_view, const std::string&) {},
                                      [&](std::string_view e, const std::string& detail, int64_t) {
                                          events.emplace_back(e, detail);
                                      }});
    auto count = [&](const std::string& name) {
        return std::count_if(events.begin(), events.end(), [&](const auto& e) { return e.first == name; });
    };
    auto counter = [&](const char* key) { return link.status()[key].get<uint64_t>(); };
    link.open_session(tmp.path.string());
    link.start();
    REQUIRE(test::run_until(loop, [&] { return link.ready() && link.fit().points() >= 3; }, 4000));
    const double offset = link.fit().offset_us_at(mono_ns());

    // 100 garbage lines at once: all counted, 20 rows (the burst), the rest summed in pico_flood.
    std::string garbage;
    for (int i = 0; i < 100; ++i) garbage += "garbage " + std::to_string(i) + "\n";
    pico.say(garbage);
    REQUIRE(test::run_until(loop, [&] { return counter("lines_bad") == 100; }, 1000));
    CHECK(count("pico_bad_line") == 20);
    REQUIRE(test::run_until(loop, [&] { return count("pico_flood") == 1; }, 2000));
    auto flood = std::find_if(events.begin(), events.end(), [](const auto& e) { return e.first == "pico_flood"; });
    CHECK(flood->second.rfind("80 more reports", 0) == 0);

    // Let the bucket refill, then one of each kind, each with its own row.
    test::run_until(loop, [] { return false; }, 4200);
    events.clear();
    uint64_t t = static_cast<uint64_t>(pico.pico_us(mono_ns()));
    pico.say(pico.next_line("LED", 0) + " 3 1 id=x\n");                       // hours before the clock
    pico.say(pico.next_line("LED", t + 3'600'000'000ull) + " 3 1 id=x\n");     // an hour ahead
    pico.say("PONG " + std::to_string(++pico.seq_) + " 424242 " + std::to_string(t) + " " + std::to_string(t) + "\n");
    pico.say(pico.next_line("ACK", t) + " never-sent\n");
    pico.say(pico.next_line("ERR", t) + " never-sent 2 badarg\n");
    pico.say("HELLO 0 " + std::to_string(t) + " proto=2 fw=x board=x boot=00000002 uid=1\n");
    pico.say(pico.next_line("HB", 1) + " up=0 led=0 drop=0\n");
    std::string last = std::to_string(pico.seq_);
    pico.say("HB " + last + " 2 up=0 led=0 drop=0\n");  // the same seq again
    pico.say(pico.next_line("LED", t) + " 3 1 id=real\n");
    REQUIRE(test::run_until(loop, [&] { return counter("lines_out_of_order") == 1 && counter("lines_bad") == 103; }, 1000));
    CHECK(counter("replies_unmatched") == 3);
    CHECK(count("pico_bad_line") == 7);
    auto has = [&](const std::string& text) {
        return std::any_of(events.begin(), events.end(), [&](const auto& e) { return e.second.find(text) != std::string::npos; });
    };
    CHECK(has("s from the Pico's clock"));
    CHECK(has("a PONG for nonce 424242, which no PING waits for"));
    CHECK(has("an ACK of command never-sent, which was never sent"));
    CHECK(has("an ERR for command never-sent, which was never sent"));
    CHECK(has("speaks PSYNC/2, expected PSYNC/1"));
    CHECK(has("(repeated or out of order; ignored)"));
    CHECK(link.segment() == 1);  // the PSYNC/2 HELLO changed nothing
    // The same boot saying another firmware: one boot runs one firmware, nothing changes.
    pico.say("HELLO 0 " + std::to_string(t) + " proto=1 fw=evil board=evil boot=0000beef uid=2\n");
    pico.say(pico.next_line("FOO", t) + "\n");
    REQUIRE(test::run_until(loop, [&] { return counter("lines_unknown") == 1; }, 1000));
    CHECK(link.status()["firmware"] == "9.9");
    CHECK(link.segment() == 1);
    CHECK(link.status()["pico_errors"] == 0);

    // One line far ahead: the Pico's own lines after it go back, until HELLO shows the same boot
    // and three of them count up; then they are followed again.
    uint64_t lost = counter("lines_lost");
    pico.say("HB " + std::to_string(pico.seq_ + 1'000'000) + " 2 up=0 led=0 drop=0\n");
    REQUIRE(test::run_until(loop, [&] { return counter("lines_lost") >= lost + 1'000'000 - 1; }, 1000));
    size_t before_jump = counter("exchanges");
    REQUIRE(test::run_until(loop, [&] { return counter("exchanges") > before_jump + 2; }, 3000));
    CHECK(counter("lines_out_of_order") >= 3);
    CHECK(counter("lines_lost") == lost);  // the jump lost nothing
    CHECK(link.segment() == 1);

    // A new boot whose fit has one exchange, then a burst of PONGs an hour off: kept out of the fit
    // (two such points would outvote the first in a median of three).
    pico.reboot("0000f00d");
    REQUIRE(test::run_until(loop, [&] { return link.segment() == 2 && link.fit().points() == 1; }, 2000));
    pico.lies = 4;  // the next burst
    REQUIRE(test::run_until(loop, [&] { return pico.lies == 0; }, 2000));
    size_t points = link.fit().points();
    REQUIRE(test::run_until(loop, [&] { return link.fit().points() > points; }, 2000));
    CHECK(std::fabs(link.fit().offset_us_at(mono_ns()) - offset) < 1000);
    CHECK(count("pico_clock_jump") == 0);

    // Afterwards: the same boot, the same fit, clock exchanges as before.
    size_t exchanges = counter("exchanges");
    REQUIRE(test::run_until(loop, [&] { return counter("exchanges") > exchanges; }, 2000));
    CHECK(link.ready());
    CHECK(link.segment() == 2);
    CHECK(std::fabs(link.fit().offset_us_at(mono_ns()) - offset) < 1000);

    bool closed = false;
    link.close_session([&] { closed = true; });
    REQUIRE(test::run_until(loop, [&] { return closed; }, 3000));
    link.stop();
    // Only the real LED change reached led.csv.
    std::string led = test::read_file(tmp.file("pico/led.csv"));
    CHECK(led.find(",real,") != std::string::npos);
    CHECK(led.find(",x,") == std::string::npos);
}

"""CPython tests for the PSYNC/1 firmware logic (firmware/pico_w/psync.py).

Run from the repository root:
    python3 -m unittest discover -s tests/firmware -v
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "firmware", "pico_w"))
import psync  # noqa: E402

PERIOD = 1 << 30


class FakeTicks:
    """MicroPython-style ticks_us: 30-bit wrapping, driven by the test.

    `us` is the true (unwrapped) time; `step` is added after every reading so
    code that reads the clock twice sees time pass.
    """

    def __init__(self, us=0, step=0):
        self.us = us
        self.step = step

    def ticks_us(self):
        v = self.us % PERIOD
        self.us += self.step
        return v

    @staticmethod
    def ticks_diff(a, b):
        return ((a - b + PERIOD // 2) % PERIOD) - PERIOD // 2

    def advance(self, us):
        self.us += us


class FakePin:
    def __init__(self, ticks):
        self.ticks = ticks
        self.writes = []  # (true us, level)

    def value(self, v):
        self.writes.append((self.ticks.us, v))


class FakePwmPin(FakePin):
    def duty_u16(self, d):
        self.writes.append((self.ticks.us, d))


class FakeSink:
    def __init__(self):
        self.data = b""
        self.full = False

    def writable(self):
        return not self.full

    def write(self, data):
        self.data += data

    def take(self):
        """Returns and forgets the lines written so far, split into tokens."""
        lines = self.data.decode().split("\n")
        assert lines[-1] == "", "unterminated output"
        self.data = b""
        return [line.split(" ") for line in lines[:-1]]


def make_fw(start_us=1000000, channels=1, pwm=False, step=0, **kw):
    ticks = FakeTicks(start_us, step)
    pin_cls = FakePwmPin if pwm else FakePin
    pins = [pin_cls(ticks) for _ in range(channels)]
    sink = FakeSink()
    fw = psync.Firmware(ticks, pins, sink, "0badf00d", "e6614c311b4a2f37",
                        board="test", start_us=start_us, **kw)
    return fw, ticks, pins, sink


def started(**kw):
    fw, ticks, pins, sink = make_fw(**kw)
    fw.start()
    fw.flush()
    sink.take()  # boot HELLO
    return fw, ticks, pins, sink


def send(fw, text):
    fw.feed(text.encode())
    fw.flush()


def run_until(fw, ticks, t_end):
    """Advances fake time exactly to each due event, as the Pico loop would."""
    while ticks.us < t_end:
        wait = fw.service()
        fw.flush()
        ticks.advance(max(1, min(wait, t_end - ticks.us)))
    fw.service()
    fw.flush()


def leds(lines):
    return [(int(l[2]), int(l[3]), int(l[4]), l[5]) for l in lines if l[0] == "LED"]


def kinds(lines):
    return [l[0] for l in lines]


class ClockTest(unittest.TestCase):
    def test_several_wraps_monotonic(self):
        ticks = FakeTicks(PERIOD - 5000)
        clock = psync.Clock64(ticks)
        self.assertEqual(clock.now(), PERIOD - 5000)
        last = clock.now()
        for _ in range(40):  # 40 * 2^28 us = 10 wraps
            ticks.advance(PERIOD // 4)
            now = clock.now()
            self.assertGreater(now, last)
            self.assertEqual(now, ticks.us)
            last = now
        self.assertGreater(last, 10 * PERIOD)

    def test_gap_longer_than_half_a_period(self):
        ticks = FakeTicks(123)
        clock = psync.Clock64(ticks)
        ticks.advance(PERIOD * 3 // 4)  # signed ticks_diff would say negative
        self.assertEqual(clock.now(), 123 + PERIOD * 3 // 4)

    def test_start_value_beyond_32_bits(self):
        ticks = FakeTicks(7)
        clock = psync.Clock64(ticks, start_us=5 * 10**12)
        for _ in range(8):
            ticks.advance(PERIOD // 3)
            clock.now()
        self.assertEqual(clock.now(), 5 * 10**12 + 8 * (PERIOD // 3))

    def test_no_change_without_time(self):
        ticks = FakeTicks(99)
        clock = psync.Clock64(ticks)
        self.assertEqual(clock.now(), clock.now())


class LineReaderTest(unittest.TestCase):
    def test_partial_chunks_and_crlf(self):
        r = psync.LineReader()
        self.assertEqual(r.feed(b"PI"), [])
        self.assertEqual(r.feed(b"NG 1\r"), [])
        self.assertEqual(r.feed(b"\nHEL"), [b"PING 1"])
        self.assertEqual(r.feed(b"LO?\r\nPING 2\n"), [b"HELLO?", b"PING 2"])

    def test_byte_by_byte(self):
        r = psync.LineReader()
        out = []
        for b in b"LED 1 0 1\r\n":
            out += r.feed(bytes([b]))
        self.assertEqual(out, [b"LED 1 0 1"])

    def test_empty_lines_skipped(self):
        r = psync.LineReader()
        self.assertEqual(r.feed(b"\n\r\n\r\r\nA\n\n"), [b"A"])

    def test_overlong_dropped_and_counted(self):
        r = psync.LineReader()
        ok = b"x" * 63
        self.assertEqual(r.feed(ok + b"\r\n"), [ok])
        self.assertEqual(r.overlong, 0)
        self.assertEqual(r.feed(b"y" * 40), [])
        self.assertEqual(r.feed(b"y" * 40), [])  # now past the limit
        self.assertEqual(r.feed(b"y" * 200 + b"\nPING 3\n"), [None, b"PING 3"])
        self.assertEqual(r.overlong, 1)
        self.assertEqual(r.feed(b"z" * 64 + b"\n"), [None])
        self.assertEqual(r.overlong, 2)


class HelloTest(unittest.TestCase):
    def test_boot_hello_and_reply(self):
        fw, ticks, pins, sink = make_fw(start_us=2500000)
        fw.start()
        fw.flush()
        (hello,) = sink.take()
        self.assertEqual(hello[:3], ["HELLO", "0", "2500000"])
        fields = dict(tok.split("=") for tok in hello[3:])
        self.assertEqual(fields, {"proto": "1", "fw": psync.FW_VERSION,
                                  "board": "test", "boot": "0badf00d",
                                  "uid": "e6614c311b4a2f37"})
        ticks.advance(1000)
        send(fw, "HELLO?\n")
        (again,) = sink.take()
        self.assertEqual(again[:3], ["HELLO", "0", "2501000"])
        # HELLO is outside the numbered stream: the next line is seq 1.
        send(fw, "PING a\n")
        self.assertEqual(sink.take()[0][:2], ["PONG", "1"])


class PingTest(unittest.TestCase):
    def test_pong_fields_and_order(self):
        fw, ticks, pins, sink = started(step=3)
        fw.feed(b"PING n-42\n", t_rx=fw.clock.now())
        t_read = ticks.us
        ticks.advance(500)  # the reply waits in the queue for a while
        fw.flush()
        (pong,) = sink.take()
        self.assertEqual(pong[0], "PONG")
        self.assertEqual(pong[2], "n-42")
        t_rx, t_tx = int(pong[3]), int(pong[4])
        self.assertLessEqual(t_rx, t_read)
        self.assertGreaterEqual(t_tx - t_rx, 500)

    def test_t_rx_is_read_time_across_chunks(self):
        fw, ticks, pins, sink = started()
        fw.feed(b"PING 7")
        ticks.advance(250)
        t_complete = ticks.us
        fw.feed(b"\n")
        fw.flush()
        (pong,) = sink.take()
        self.assertEqual(int(pong[3]), t_complete)

    def test_bad_ping(self):
        fw, ticks, pins, sink = started()
        send(fw, "PING\nPING " + "x" * 17 + "\n")
        errs = sink.take()
        self.assertEqual([e[0] for e in errs], ["ERR", "ERR"])
        self.assertEqual(errs[0][4:], ["2", "badarg"])
        self.assertEqual(errs[1][3:], ["-", "2", "badarg"])


class LedTest(unittest.TestCase):
    def test_led_on_off(self):
        fw, ticks, pins, sink = started()
        send(fw, "LED 1 0 1\n")
        lines = sink.take()
        self.assertEqual(kinds(lines), ["ACK", "LED"])
        self.assertEqual(lines[0][3], "1")
        self.assertEqual(leds(lines), [(int(lines[1][2]), 0, 1, "id=1")])
        self.assertEqual(pins[0].writes, [(int(lines[1][2]), 1)])
        # No physical change: ACK only.
        send(fw, "LED 2 0 1\n")
        self.assertEqual(kinds(sink.take()), ["ACK"])
        ticks.advance(40)
        send(fw, "LED 3 0 0\n")
        lines = sink.take()
        self.assertEqual(leds(lines), [(ticks.us, 0, 0, "id=3")])
        self.assertEqual(len(pins[0].writes), 2)

    def test_pwm_levels(self):
        fw, ticks, pins, sink = started(pwm=True)
        send(fw, "LED a 0 30000\n")
        self.assertEqual(leds(sink.take())[0][2], 30000)
        self.assertEqual(pins[0].writes[-1][1], 30000)
        fw2, _, _, sink2 = started(pwm=False)
        send(fw2, "LED b 0 30000\n")
        self.assertEqual(sink2.take()[0][3:], ["b", "4", "range"])

    def test_led_errors(self):
        fw, ticks, pins, sink = started()
        send(fw, "LED 1 1 1\nLED 2 0 70000\nLED 3 0\nLED 4 0 x1\n")
        errs = sink.take()
        self.assertEqual([e[3:] for e in errs], [
            ["1", "3", "badch"], ["2", "4", "range"],
            ["3", "2", "badarg"], ["4", "2", "badarg"]])
        self.assertEqual(pins[0].writes, [])


class BlinkTest(unittest.TestCase):
    def test_blink_count(self):
        fw, ticks, pins, sink = started()
        t0 = ticks.us
        send(fw, "BLINK 5 0 100 50 3\n")
        run_until(fw, ticks, t0 + 1000000)
        lines = sink.take()
        self.assertEqual(lines[0][0], "ACK")
        got = [(t - t0, lvl) for t, ch, lvl, _ in leds(lines)]
        self.assertEqual(got, [(0, 1), (100000, 0), (150000, 1), (250000, 0),
                               (300000, 1), (400000, 0)])
        self.assertTrue(all(l[5] == "id=5" for l in lines if l[0] == "LED"))
        self.assertIsNone(fw.patterns[0])
        # The truth (pin writes) matches what was reported.
        self.assertEqual([(t - t0, v) for t, v in pins[0].writes], got)

    def test_blink_at(self):
        fw, ticks, pins, sink = started()
        at = ticks.us + 50000
        send(fw, "BLINK 6 0 10 10 2 at=%d\n" % at)
        self.assertEqual(kinds(sink.take()), ["ACK"])
        run_until(fw, ticks, at - 1)
        self.assertEqual(sink.take(), [])
        run_until(fw, ticks, at + 100000)
        got = [(t - at, lvl) for t, ch, lvl, _ in leds(sink.take())]
        self.assertEqual(got, [(0, 1), (10000, 0), (20000, 1), (30000, 0)])

    def test_blink_late_at_starts_now(self):
        fw, ticks, pins, sink = started()
        now = ticks.us
        send(fw, "BLINK 7 0 10 10 1 at=%d\n" % (now - 2000))
        lines = sink.take()
        self.assertEqual(kinds(lines), ["ACK", "LOG", "LED"])
        self.assertEqual(lines[1][3:], ["warn", "late", "id=7", "us=2000"])
        self.assertEqual(leds(lines), [(now, 0, 1, "id=7")])

    def test_blink_forever_until_stop_and_unknown_key(self):
        fw, ticks, pins, sink = started()
        t0 = ticks.us
        send(fw, "BLINK 8 0 5 5 0 future=1\n")
        run_until(fw, ticks, t0 + 1000000)
        # Edges every 5 ms from 0 to 1000 ms inclusive; it ends up on.
        self.assertEqual(len(leds(sink.take())), 201)
        send(fw, "STOP 9 0\n")
        lines = sink.take()
        self.assertEqual(kinds(lines), ["ACK", "LED"])
        self.assertEqual(leds(lines)[0][2:], (0, "id=9"))
        run_until(fw, ticks, t0 + 2000000)
        self.assertEqual(leds(sink.take()), [])

    def test_new_blink_replaces_running_one(self):
        fw, ticks, pins, sink = started()
        send(fw, "BLINK 1 0 100 100 0\n")
        ticks.advance(30000)
        send(fw, "BLINK 2 0 20 20 1\n")
        run_until(fw, ticks, ticks.us + 500000)
        ids = [l[5] for l in sink.take() if l[0] == "LED"]
        self.assertEqual(ids, ["id=1", "id=2"])  # id=2 starts while already on


class CodeTest(unittest.TestCase):
    def sample(self, pins, t0, bit_us, nbits):
        """Level of the pin in the middle of each bit."""
        out = []
        for i in range(nbits):
            t = t0 + i * bit_us + bit_us // 2
            level = 0
            for wt, v in pins[0].writes:
                if wt <= t:
                    level = v
            out.append(level)
        return out

    def test_code_bits(self):
        fw, ticks, pins, sink = started()
        t0 = ticks.us
        send(fw, "CODE c1 0 A5 10\n")
        run_until(fw, ticks, t0 + 200000)
        lines = sink.take()
        self.assertEqual(lines[0][:1] + lines[0][3:], ["ACK", "c1"])
        self.assertEqual(self.sample(pins, t0, 10000, 8), [1, 0, 1, 0, 0, 1, 0, 1])
        got = [(t - t0, lvl) for t, ch, lvl, _ in leds(lines)]
        # Only real changes are reported: 1,0,1,0,0,1,0,1 then off.
        self.assertEqual(got, [(0, 1), (10000, 0), (20000, 1), (30000, 0),
                               (50000, 1), (60000, 0), (70000, 1), (80000, 0)])

    def test_code_at_leading_zeros(self):
        fw, ticks, pins, sink = started()
        at = ticks.us + 20000
        send(fw, "CODE c2 0 0F 5 at=%d\n" % at)
        run_until(fw, ticks, at + 100000)
        got = [(t - at, lvl) for t, ch, lvl, _ in leds(sink.take())]
        self.assertEqual(got, [(20000, 1), (40000, 0)])
        self.assertEqual(self.sample(pins, at, 5000, 8), [0, 0, 0, 0, 1, 1, 1, 1])

    def test_code_errors(self):
        fw, ticks, pins, sink = started()
        send(fw, "CODE 1 0 XYZ 10\nCODE 2 0 FF 0\nCODE 3 0 FF 10 at=-5\n")
        self.assertEqual([e[4:] for e in sink.take()],
                         [["2", "badarg"], ["4", "range"], ["2", "badarg"]])

    def test_hex_to_bits(self):
        self.assertEqual(psync.hex_to_bits("9c"), [1, 0, 0, 1, 1, 1, 0, 0])


class HeartbeatTest(unittest.TestCase):
    def hbs(self, lines):
        return [l for l in lines if l[0] == "HB"]

    def test_default_interval_and_fields(self):
        fw, ticks, pins, sink = started(start_us=0)
        run_until(fw, ticks, 3500000)
        hbs = self.hbs(sink.take())
        self.assertEqual([int(h[2]) for h in hbs], [1000000, 2000000, 3000000])
        self.assertEqual(hbs[-1][3:], ["up=3", "led=0", "drop=0"])
        send(fw, "LED 1 0 1\n")
        run_until(fw, ticks, 4000000)
        self.assertEqual(self.hbs(sink.take())[0][4], "led=1")

    def test_off_and_interval(self):
        fw, ticks, pins, sink = started(start_us=0)
        send(fw, "HB h1 0\n")
        self.assertEqual(sink.take()[0][3:], ["h1"])
        run_until(fw, ticks, 5000000)
        self.assertEqual(self.hbs(sink.take()), [])
        send(fw, "HB h2 250\n")
        run_until(fw, ticks, 6000000)
        hbs = self.hbs(sink.take())
        self.assertEqual([int(h[2]) - 5000000 for h in hbs],
                         [250000, 500000, 750000, 1000000])
        send(fw, "HB h3 5\nHB h4\n")
        self.assertEqual([e[4:] for e in sink.take()],
                         [["4", "range"], ["2", "badarg"]])

    def test_late_service_does_not_burst(self):
        fw, ticks, pins, sink = started(start_us=0)
        ticks.advance(5500000)
        fw.service()
        fw.service()
        fw.flush()
        self.assertEqual(len(self.hbs(sink.take())), 1)


class StopTest(unittest.TestCase):
    def test_stop_one_channel(self):
        fw, ticks, pins, sink = started(channels=2)
        send(fw, "BLINK b0 0 100 100 0\nBLINK b1 1 100 100 0\n")
        sink.take()
        send(fw, "STOP s 1\n")
        lines = sink.take()
        self.assertEqual(kinds(lines), ["ACK", "LED"])
        self.assertEqual(leds(lines)[0][1:], (1, 0, "id=s"))
        run_until(fw, ticks, ticks.us + 450000)
        chans = set(ch for _, ch, _, _ in leds(sink.take()))
        self.assertEqual(chans, {0})

    def test_stop_all(self):
        fw, ticks, pins, sink = started(channels=2)
        send(fw, "LED a 0 1\nBLINK b 1 100 100 0\n")
        sink.take()
        send(fw, "STOP s *\n")
        lines = sink.take()
        self.assertEqual(kinds(lines), ["ACK", "LED", "LED"])
        self.assertEqual(sorted(l[1:] for l in leds(lines)),
                         [(0, 0, "id=s"), (1, 0, "id=s")])
        self.assertEqual(fw.patterns, [None, None])
        run_until(fw, ticks, ticks.us + 500000)
        self.assertEqual(leds(sink.take()), [])
        send(fw, "STOP t 5\nSTOP u\n")
        self.assertEqual([e[3:] for e in sink.take()],
                         [["t", "3", "badch"], ["u", "2", "badarg"]])


class ErrorTest(unittest.TestCase):
    def test_unknown_command(self):
        fw, ticks, pins, sink = started()
        send(fw, "FROB 12 x\nFROB\n")
        errs = sink.take()
        self.assertEqual(errs[0][0], "ERR")
        self.assertEqual(errs[0][3:], ["12", "1", "unknown"])
        self.assertEqual(errs[1][3:], ["-", "1", "unknown"])

    def test_garbage(self):
        fw, ticks, pins, sink = started()
        fw.feed(b"\x00\xff\x03 junk\n\x04\n   \n" + b"q" * 100 + b"\nPING ok\n")
        fw.flush()
        lines = sink.take()
        self.assertEqual([l[0] for l in lines], ["ERR", "ERR", "ERR", "PONG"])
        self.assertEqual(lines[0][4:], ["6", "badbyte"])
        self.assertEqual(lines[2][3:], ["-", "5", "toolong"])
        self.assertEqual(fw.reader.overlong, 1)

    def test_exception_in_handler_is_reported(self):
        class BrokenPin:
            def value(self, v):
                raise OSError(5)

        ticks = FakeTicks(0)
        sink = FakeSink()
        fw = psync.Firmware(ticks, [BrokenPin()], sink, "00000000", "u")
        send(fw, "LED z 0 1\nPING after\n")
        got = sink.take()
        self.assertEqual([l[0] for l in got], ["ACK", "ERR", "LOG", "PONG"])
        self.assertEqual(got[1][3:], ["z", "7", "internal"])


class OutputTest(unittest.TestCase):
    def test_drop_counting_when_sink_full(self):
        fw, ticks, pins, sink = started(start_us=0, queue_len=32)
        sink.full = True
        for i in range(40):
            fw.feed(b"PING %d\n" % i)
            fw.flush()
        self.assertEqual(fw.out.dropped, 8)
        sink.full = False
        fw.flush()
        lines = sink.take()
        self.assertEqual([int(l[1]) for l in lines], list(range(1, 33)))
        # Dropped lines still used up their seq numbers: the gap is visible.
        run_until(fw, ticks, 1000000)
        (hb,) = sink.take()
        self.assertEqual(hb[1], "41")
        self.assertEqual(hb[5], "drop=8")

    def test_seq_increments_and_resets_per_boot(self):
        fw, ticks, pins, sink = started()
        send(fw, "PING a\nLED 1 0 1\nFROB\nHB 2 500\n")
        seqs = [int(l[1]) for l in sink.take()]
        self.assertEqual(seqs, [1, 2, 3, 4, 5])
        # A reboot is a new instance: new boot id, seq back to 1.
        fw2 = psync.Firmware(ticks, pins, sink, "12345678", "u")
        fw2.start()
        send(fw2, "PING b\n")
        hello, pong = sink.take()
        self.assertIn("boot=12345678", hello)
        self.assertEqual(pong[1], "1")

    def test_seq_wraps_to_one(self):
        fw, ticks, pins, sink = started()
        fw.seq = psync.SEQ_MAX - 1
        send(fw, "PING a\nPING b\nPING c\n")
        self.assertEqual([l[1] for l in sink.take()],
                         [str(psync.SEQ_MAX), "1", "2"])

    def test_worst_case_lines_fit(self):
        # Ten-digit seq and a 14-digit clock (three years past boot).
        fw, ticks, pins, sink = started(start_us=99999998000000, channels=2,
                                        pwm=True)
        fw.seq = 4000000000
        fw.out.dropped = 4000000000
        long_id = "i" * 16
        send(fw, "PING %s\n" % ("n" * 16))
        send(fw, "LED %s 1 65535\n" % long_id)
        send(fw, "BLINK %s 0 10 10 1 at=1\n" % long_id)
        send(fw, "FROB %s\n" % long_id)
        send(fw, "LED %s 0 x\n" % long_id)
        fw.feed(b"x" * 80 + b"\n")
        run_until(fw, ticks, ticks.us + 1000000)
        raw = sink.data.decode().split("\n")[:-1]
        self.assertEqual(set(l.split(" ")[0] for l in raw),
                         {"PONG", "ACK", "LED", "LOG", "ERR", "HB"})
        for line in raw:
            tok = line.split(" ")
            self.assertEqual(len(tok[3 if tok[0] == "PONG" else 2]), 14, line)
            self.assertLessEqual(len(line), psync.MAX_LINE, line)


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
"""Pico W emulator: the PSYNC/1 firmware behind a pseudo-terminal.

Runs the real firmware logic (firmware/pico_w/psync.py) on the master side of
an openpty() pair, with an emulated Pico clock, so the host code can open the
slave like the USB serial port. Standard library only.

stdout: "PTY /dev/pts/N" first, and again after every replug. Diagnostics go
to stderr. Host time is time.monotonic_ns() (CLOCK_MONOTONIC).

Emulated clock: pico_us = offset_us + elapsed_host_us * (1 + skew_ppm / 1e6),
starting when the firmware boots. Every restart (--reboot-after, replug,
soft reboot from the REPL) starts a new boot: new boot id, seq from 1, clock
from 0, boot HELLO. (A real soft reboot keeps the hardware timer running; the
host must rely on neither, since it never fits across boots.)

Delays (--latency-us, --jitter-us): each direction, each line (host->Pico:
each chunk read from the pty) waits latency + extra, where extra is
|N(0, jitter)| (--jitter-dist normal, the default) or U(0, jitter)
(--jitter-dist uniform). The delay is never negative, and a line never
overtakes an earlier one in the same direction.

--repl-after S: the firmware "crashes" to the MicroPython prompt: a traceback
and ">>> " (no newline) are sent and every input is ignored, except 0x03,
which prints a fresh prompt, and 0x04, which soft-reboots into a new boot.
As on a real board, 0x03 within 3 s of a boot also breaks into the prompt.

--unplug-after S closes the pty (the host sees POLLHUP, EOF or EIO) and
removes the --link symlink, like udev; --replug-after S then waits S more
seconds, opens a fresh pty, prints its PTY line, re-creates the link and
boots again.

--log FILE (ground truth) gets '#' comment lines, then one line per LED change:
    LED <mono_ns> <pico_us> <boot> <ch> <level>
mono_ns is CLOCK_MONOTONIC when the emulated pin changed and pico_us the
emulated Pico clock at that same instant. The firmware's own LED line takes its
timestamp just after the pin write, so its t is a few microseconds later.
"""
import argparse
import errno
import heapq
import os
import random
import selectors
import signal
import sys
import time
import tty

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "firmware", "pico_w"))
import psync  # noqa: E402

TICKS_MASK = psync.TICKS_PERIOD - 1
BACKLOG_LIMIT = 4096        # bytes in flight before the firmware's sink is "full"
CTRL_C_WINDOW_NS = 3 * 10**9  # matches START_WINDOW_MS in main.py
SPLIT_GAP_NS = (50000, 300000)  # pause between the fragments of one line
CRASH_TEXT = (b"Traceback (most recent call last):\r\n"
              b"  File \"main.py\", line 1, in <module>\r\n"
              b"MemoryError: memory allocation failed\r\n"
              b"MicroPython v1.22.2 on 2024-02-22; Raspberry Pi Pico W with RP2040\r\n"
              b"Type \"help()\" for more information.\r\n")


class Shutdown(Exception):
    pass


class EmuTicks:
    """Pico clock derived from CLOCK_MONOTONIC; starts at its first reading."""

    def __init__(self, offset_us, skew_ppb):
        self.offset_us = offset_us
        self.rate = 10**9 + skew_ppb  # Pico ns per 10^9 host ns
        self.mono0 = None

    def pico_us_at(self, mono_ns):
        if self.mono0 is None:
            self.mono0 = mono_ns
        # Integer arithmetic: exact for any run length.
        return self.offset_us + (mono_ns - self.mono0) * self.rate // 10**12

    def ticks_us(self):
        return self.pico_us_at(time.monotonic_ns()) & TICKS_MASK

    @staticmethod
    def ticks_diff(a, b):
        half = psync.TICKS_PERIOD // 2
        return ((a - b + half) & TICKS_MASK) - half


class EmuPin:
    def __init__(self, emu, ch):
        self.emu = emu
        self.ch = ch

    def value(self, v):
        self.emu.pin_changed(self.ch, v)

    def duty_u16(self, d):
        self.emu.pin_changed(self.ch, d)


class EmuSink:
    """The firmware's serial output: hands lines to the delayed USB pipe."""

    def __init__(self, emu):
        self.emu = emu

    def writable(self):
        return self.emu.backlog + len(self.emu.out_pending) < BACKLOG_LIMIT

    def write(self, data):
        self.emu.send_up(data, lossy=True)


class Emulator:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.skew_ppb = int(round(args.skew_ppm * 1000))
        self.uid = "%016x" % self.rng.getrandbits(64)
        # select() takes microsecond timeouts; epoll and poll round up to ms.
        self.sel = selectors.SelectSelector()
        self.timers = []
        self.timer_count = 0
        self.master = None
        self.slave = None
        self.slave_path = None
        self.link_gen = 0   # bumped on unplug: bytes still in flight are lost
        self.fw_gen = 0     # bumped on every boot or crash: input in flight is lost
        self.fw = None
        self.ticks = None
        self.boot_id = None
        self.boot_mono = 0
        self.state = "off"  # "run", "repl" or "unplugged"
        self.out_pending = b""  # delivered but not yet accepted by the pty
        self.backlog = 0        # scheduled for delivery, not yet delivered
        self.last_due = {"up": 0, "down": 0}
        self.log = None
        if args.log:
            self.log = open(args.log, "w", buffering=1)
            self.log.write("# pico_emulator truth: LED <mono_ns> <pico_us> <boot> <ch> <level>\n")
            self.log.write("# offset_us=%d skew_ppm=%s latency_us=%s jitter_us=%s "
                           "jitter_dist=%s seed=%s\n" % (
                               args.offset_us, args.skew_ppm, args.latency_us,
                               args.jitter_us, args.jitter_dist, args.seed))

    # ---- timers -------------------------------------------------------

    def at(self, due_ns, fn, *fn_args):
        self.timer_count += 1  # tie-breaker keeps insertion order
        heapq.heappush(self.timers, (due_ns, self.timer_count, fn, fn_args))

    def run_due(self):
        while self.timers and self.timers[0][0] <= time.monotonic_ns():
            _, _, fn, fn_args = heapq.heappop(self.timers)
            fn(*fn_args)

    def delay_ns(self):
        extra = 0.0
        if self.args.jitter_us > 0:
            if self.args.jitter_dist == "uniform":
                extra = self.rng.uniform(0, self.args.jitter_us)
            else:
                extra = abs(self.rng.gauss(0, self.args.jitter_us))
        return int((self.args.latency_us + extra) * 1000)

    def next_due(self, direction, earliest):
        # FIFO per direction: never before the previous delivery.
        due = max(earliest, self.last_due[direction])
        self.last_due[direction] = due
        return due

    # ---- Pico -> host -------------------------------------------------

    def send_up(self, data, lossy, raw=False):
        if self.master is None:
            return
        if lossy and self.args.loss > 0 and self.rng.random() < self.args.loss:
            return  # the firmware already used the seq: the host sees a gap
        if self.args.crlf and not raw:
            data = data.replace(b"\n", b"\r\n")
        pieces = [data]
        if self.args.split and len(data) > 1:
            cuts = sorted(self.rng.sample(range(1, len(data)),
                                          min(len(data) - 1, self.rng.randint(1, 4))))
            pieces = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
        due = self.next_due("up", time.monotonic_ns() + self.delay_ns())
        for i, piece in enumerate(pieces):
            if i:
                due = self.next_due("up", due + self.rng.randint(*SPLIT_GAP_NS))
            self.backlog += len(piece)
            self.at(due, self.deliver_up, piece, self.link_gen)

    def deliver_up(self, piece, gen):
        if gen != self.link_gen:
            return  # unplugged meanwhile; backlog was reset then
        self.backlog -= len(piece)
        self.out_pending += piece
        self.drain()

    def drain(self):
        while self.out_pending:
            try:
                n = os.write(self.master, self.out_pending)
            except BlockingIOError:
                break
            except OSError:
                self.out_pending = b""
                break
            self.out_pending = self.out_pending[n:]
        events = selectors.EVENT_READ
        if self.out_pending:
            events |= selectors.EVENT_WRITE
        self.sel.modify(self.master, events)

    # ---- host -> Pico -------------------------------------------------

    def on_readable(self):
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            if e.errno == errno.EIO:
                return  # no slave open; cannot happen while we hold one
            raise
        if not data:
            return
        now = time.monotonic_ns()
        if self.state == "run":
            if b"\x03" in data and now - self.boot_mono < CTRL_C_WINDOW_NS:
                self.crash(b"KeyboardInterrupt: \r\n")
                return
            due = self.next_due("down", now + self.delay_ns())
            self.at(due, self.deliver_down, data, self.fw_gen)
        elif self.state == "repl":
            self.repl_input(data)

    def deliver_down(self, data, gen):
        if gen == self.fw_gen and self.fw is not None:
            self.fw.feed(data)
            self.fw.flush()

    def repl_input(self, data):
        for b in data:
            if b == 0x04:
                self.send_up(b"MPY: soft reboot\r\n", lossy=False, raw=True)
                self.boot(0)
                return  # the rest of the chunk is lost in the reboot
            if b == 0x03:
                self.send_up(b"\r\n>>> ", lossy=False, raw=True)

    # ---- board life cycle ---------------------------------------------

    def boot(self, offset_us):
        self.fw_gen += 1
        self.ticks = EmuTicks(offset_us, self.skew_ppb)
        self.boot_id = "%08x" % self.rng.getrandbits(32)
        self.boot_mono = time.monotonic_ns()
        pins = [EmuPin(self, ch) for ch in range(self.args.channels)]
        self.fw = psync.Firmware(self.ticks, pins, EmuSink(self), self.boot_id,
                                 self.uid, board="pico_w_emu", start_us=offset_us)
        self.state = "run"
        self.fw.start()
        self.fw.flush()
        note("boot %s" % self.boot_id)

    def crash(self, reason=b""):
        if self.state != "run":
            return
        self.fw_gen += 1
        self.fw = None
        self.state = "repl"
        self.send_up(reason + CRASH_TEXT + b">>> ", lossy=False, raw=True)
        note("crashed to the REPL")

    def reboot(self):
        if self.state != "unplugged":
            note("reboot")
            self.boot(0)

    def pin_changed(self, ch, level):
        mono = time.monotonic_ns()
        if self.log:
            self.log.write("LED %d %d %s %d %d\n" % (
                mono, self.ticks.pico_us_at(mono), self.boot_id, ch, level))

    # ---- pseudo-terminal and link ---------------------------------------

    def plug(self):
        self.master, self.slave = os.openpty()
        # Raw like the host will set it: no echo, no \n translation. The slave
        # fd stays open here so the master never reads EIO between host opens.
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.slave_path = os.ttyname(self.slave)
        self.sel.register(self.master, selectors.EVENT_READ)
        self.out_pending = b""
        self.backlog = 0
        self.last_due["up"] = 0
        self.set_link()
        say("PTY %s" % self.slave_path)

    def set_link(self):
        link = self.args.link
        if not link:
            return
        tmp = "%s.tmp%d" % (link, os.getpid())
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(self.slave_path, tmp)
        os.replace(tmp, link)  # atomic: the host never sees a missing link

    def remove_link(self):
        link = self.args.link
        if link and os.path.islink(link) and os.readlink(link) == self.slave_path:
            os.unlink(link)

    def close_pty(self):
        if self.master is None:
            return
        self.remove_link()
        self.sel.unregister(self.master)
        os.close(self.master)
        os.close(self.slave)
        self.master = self.slave = None

    def unplug(self):
        note("unplug")
        self.link_gen += 1
        self.fw_gen += 1
        self.fw = None
        self.state = "unplugged"
        self.close_pty()  # host sees POLLHUP / EOF / EIO
        if self.args.replug_after is not None:
            self.at(time.monotonic_ns() + int(self.args.replug_after * 1e9),
                    self.replug)

    def replug(self):
        note("replug")
        self.plug()
        self.boot(0)

    # ---- main loop ------------------------------------------------------

    def run(self):
        start = time.monotonic_ns()
        end = None
        if self.args.duration is not None:
            end = start + int(self.args.duration * 1e9)
        self.plug()
        self.boot(self.args.offset_us)
        for after, fn in ((self.args.reboot_after, self.reboot),
                          (self.args.repl_after, self.crash),
                          (self.args.unplug_after, self.unplug)):
            if after is not None:
                self.at(start + int(after * 1e9), fn)
        while True:
            self.run_due()
            wait_us = psync.MAX_WAIT_US
            if self.fw is not None:
                wait_us = self.fw.service()
                self.fw.flush()
                self.run_due()  # zero-latency lines go out in this pass
            now = time.monotonic_ns()
            if end is not None and now >= end:
                return
            timeout_ns = wait_us * 1000
            if self.timers:
                timeout_ns = min(timeout_ns, self.timers[0][0] - now)
            if end is not None:
                timeout_ns = min(timeout_ns, end - now)
            for key, mask in self.sel.select(max(0, timeout_ns) / 1e9):
                if self.master is None:
                    break
                if mask & selectors.EVENT_READ:
                    self.on_readable()
                if mask & selectors.EVENT_WRITE and self.master is not None:
                    self.drain()

    def close(self):
        self.close_pty()
        if self.log:
            self.log.close()


def say(line):
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass  # nobody is listening any more; keep emulating


def note(text):
    try:
        sys.stderr.write("pico_emulator: %s\n" % text)
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Emulate a Pico W running the PSYNC/1 firmware on a pseudo-terminal.")
    p.add_argument("--link", help="symlink to the pty (re-pointed on replug, removed on exit)")
    p.add_argument("--offset-us", type=int, default=0,
                   help="Pico clock at start, in us (default 0)")
    p.add_argument("--skew-ppm", type=float, default=0.0,
                   help="Pico clock runs fast by this many ppm vs CLOCK_MONOTONIC")
    p.add_argument("--latency-us", type=float, default=0.0,
                   help="one-way delay per direction, in us")
    p.add_argument("--jitter-us", type=float, default=0.0,
                   help="extra random delay scale, in us (added to the latency)")
    p.add_argument("--jitter-dist", choices=("normal", "uniform"), default="normal",
                   help="extra delay: |N(0, jitter)| or U(0, jitter) (default normal)")
    p.add_argument("--loss", type=float, default=0.0,
                   help="fraction of Pico->host lines silently lost (seq still used)")
    p.add_argument("--reboot-after", type=float, metavar="S",
                   help="reboot after S seconds: new boot id, seq and clock restart")
    p.add_argument("--split", action="store_true",
                   help="write each line in random fragments across separate writes")
    p.add_argument("--crlf", action="store_true", help="end lines with \\r\\n like MicroPython")
    p.add_argument("--repl-after", type=float, metavar="S",
                   help="crash to the '>>> ' prompt after S seconds; 0x04 soft-reboots")
    p.add_argument("--unplug-after", type=float, metavar="S",
                   help="close the pty after S seconds (host sees POLLHUP/EOF/EIO)")
    p.add_argument("--replug-after", type=float, metavar="S",
                   help="S seconds after the unplug, open a fresh pty and boot again")
    p.add_argument("--channels", type=int, default=1, help="LED channels (default 1)")
    p.add_argument("--seed", type=int, help="random seed (boot ids, jitter, loss, split)")
    p.add_argument("--duration", type=float, metavar="S", help="exit after S seconds")
    p.add_argument("--log", metavar="FILE", help="ground-truth log of LED changes")
    args = p.parse_args(argv)
    if not 0.0 <= args.loss <= 1.0:
        p.error("--loss must be within 0..1")
    if args.latency_us < 0 or args.jitter_us < 0:
        p.error("--latency-us and --jitter-us must not be negative")
    if args.skew_ppm <= -10**6:
        p.error("--skew-ppm must be above -1000000")
    if args.replug_after is not None and args.unplug_after is None:
        p.error("--replug-after needs --unplug-after")
    if not 1 <= args.channels <= 8:
        p.error("--channels must be within 1..8")
    return args


def main(argv=None):
    args = parse_args(argv)

    def on_signal(signum, frame):
        raise Shutdown()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    emu = Emulator(args)
    try:
        emu.run()
    except Shutdown:
        pass
    finally:
        emu.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A fake Pico W for tests/integration/test_hostile_pico.py: the device side of a pseudo-terminal.

It speaks PSYNC/1 correctly (HELLO, PONG, ACK, LED lines for LED/CODE/STOP, a heartbeat a second)
unless told otherwise, and writes whatever bytes the test asks for, whenever it asks. Unlike
tests/tools/pico_emulator.py (the firmware's own logic, with delays and losses) it is small and
obedient: a test can answer the next PING itself, go silent mid-burst, crash to the REPL mid-line
or flood the link.

Its clock is the host's CLOCK_MONOTONIC in microseconds plus OFFSET_US (every boot: a reboot
restarts seq and the boot id, not the clock), so every time the supervisor maps can be checked
exactly: mono_ns = (pico_us - OFFSET_US) * 1000.

The supervisor opens the slave side like a serial port (pico: device: <path>). The fake keeps the
slave open itself, so its master side never reads EIO while the supervisor reopens. Standard
library only.
"""
import collections
import os
import random
import select
import threading
import time
import tty

OFFSET_US = 7_000_000_000
CRASH_TEXT = (b"Traceback (most recent call last):\r\n"
              b"  File \"main.py\", line 1, in <module>\r\n"
              b"MemoryError: memory allocation failed\r\n"
              b"MicroPython v1.22.2 on 2024-02-22; Raspberry Pi Pico W with RP2040\r\n"
              b"Type \"help()\" for more information.\r\n")


def pico_us():
    return time.monotonic_ns() // 1000 + OFFSET_US


def hex_bits(hexbits):
    return [int(b) for digit in hexbits for b in f"{int(digit, 16):04b}"]


class FakePico:
    def __init__(self, seed=1):
        self.rng = random.Random(seed)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # raw like the host sets it: no echo, no newline translation
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        # One writer at a time, and seq numbers taken in the order lines reach the wire.
        self.lock = threading.RLock()
        self.seq = 0
        self.boot = None
        self.boots = []
        self.answering = True  # PONG, ACK, LED lines, HELLO and heartbeats
        self.in_repl = False
        self.commands = collections.Counter()  # command words received
        self.ids = []  # command ids received, newest last
        self.pings = 0
        # Called as hijack(fake, nonce, t_rx) for the next PING instead of the PONG.
        self.hijack = None
        self.level = {}
        self.schedule = []  # [due_pico_us, channel, level, cmd_id], sorted
        self.stop_flag = threading.Event()
        self.received = bytearray()
        self.new_boot()
        self.threads = [threading.Thread(target=fn, daemon=True) for fn in (self.read_loop, self.tick_loop)]
        for t in self.threads:
            t.start()

    # ---- writing ----
    def write(self, data, timeout=20):
        """Writes all of data (bytes); waits while the supervisor does not read, up to timeout."""
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        with self.lock:
            while view:
                try:
                    n = os.write(self.master, view)
                    view = view[n:]
                    continue
                except BlockingIOError:
                    pass
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the supervisor stopped reading the Pico link ({len(view)} bytes left)")
                select.select([], [self.master], [], min(left, 0.5))

    def next_seq(self):
        with self.lock:
            self.seq = self.seq + 1 if self.seq < 0xFFFFFFFF else 1
            return self.seq

    def send(self, template, **extra):
        """Writes a line (newline added unless it ends in one). In the template {seq} takes the next
        seq number, {last} is the last one taken and {t} the Pico clock now. Returns the bytes."""
        with self.lock:
            fields = dict(extra)
            if "{seq}" in template:
                fields["seq"] = self.next_seq()
            fields.setdefault("last", self.seq)
            fields.setdefault("t", pico_us())
            text = template.format(**fields)
            data = text.encode("latin-1") if isinstance(text, str) else text
            if not data.endswith(b"\n"):
                data += b"\n"
            self.write(data)
            return data

    def numbered(self, kind, rest):
        self.send(kind + " {seq} {t} " + rest)

    def hello_line(self, boot=None):
        return (f"HELLO 0 {pico_us()} proto=1 fw=fake-1.0 board=fake_pico boot={boot or self.boot} "
                f"uid=00000000deadbeef\n").encode()

    def hello(self):
        self.write(self.hello_line())

    def new_boot(self):
        with self.lock:
            self.boot = "%08x" % self.rng.getrandbits(32)
            self.boots.append(self.boot)
            self.seq = 0
            self.level = {}
            self.schedule = []
            self.in_repl = False
            self.next_hb = pico_us() + 1_000_000

    def reboot(self):
        """A new boot: new boot id, seq from 1, a boot HELLO (the clock goes on, see above)."""
        with self.lock:
            self.new_boot()
            self.hello()

    def crash(self, before=b""):
        """Crashes to the MicroPython prompt: a traceback and '>>> ', with no newline after."""
        with self.lock:
            self.in_repl = True
            self.schedule = []
            self.write(before + CRASH_TEXT + b">>> ")

    # ---- reading the host's commands ----
    def read_loop(self):
        partial = b""
        while not self.stop_flag.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self.master, 65536)
            except BlockingIOError:
                continue
            except OSError:
                return
            t_rx = pico_us()
            self.received += data
            if self.in_repl:
                # Ctrl-C prints a fresh prompt, Ctrl-D soft-reboots into main.py; the rest is lost.
                for b in data:
                    if b == 0x03:
                        self.write(b"\r\n>>> ")
                    elif b == 0x04:
                        with self.lock:
                            self.write(b"MPY: soft reboot\r\n")
                            self.reboot()
                        break
                partial = b""
                continue
            partial += data
            while b"\n" in partial:
                line, partial = partial.split(b"\n", 1)
                try:
                    self.command(line.strip(b"\r").decode("ascii"), t_rx)
                except (UnicodeDecodeError, ValueError, IndexError):
                    pass  # the firmware would answer ERR; the host never sends such lines

    def command(self, line, t_rx):
        words = line.split()
        if not words:
            return
        cmd = words[0]
        self.commands[cmd] += 1
        if not self.answering or self.in_repl:
            return
        if cmd == "HELLO?":
            self.hello()
        elif cmd == "PING":
            self.pings += 1
            hijack, self.hijack = self.hijack, None
            if hijack:
                hijack(self, words[1], t_rx)
                return
            with self.lock:
                # t_tx is read right before the write, as the firmware does.
                self.write(f"PONG {self.next_seq()} {words[1]} {t_rx} {pico_us()}\n".encode())
        elif cmd in ("LED", "CODE", "STOP", "HB", "BLINK"):
            cmd_id = words[1]
            self.ids.append(cmd_id)
            with self.lock:
                self.numbered("ACK", cmd_id)
                if cmd == "LED":
                    self.cancel(int(words[2]))
                    self.set_level(int(words[2]), int(words[3]), cmd_id)
                elif cmd == "STOP":
                    channels = list(self.level) if words[2] == "*" else [int(words[2])]
                    for ch in channels:
                        self.cancel(ch)
                        self.set_level(ch, 0, cmd_id)
                elif cmd == "CODE":
                    ch, bits, bit_us = int(words[2]), hex_bits(words[3]), int(words[4]) * 1000
                    keys = dict(w.split("=", 1) for w in words[5:] if "=" in w)
                    start = int(keys.get("at", pico_us()))
                    self.cancel(ch)
                    for i, b in enumerate(bits + [0]):
                        self.schedule.append([start + i * bit_us, ch, b, cmd_id])
                    self.schedule.sort()

    def cancel(self, ch):
        self.schedule = [s for s in self.schedule if s[1] != ch]

    def set_level(self, ch, level, cmd_id):
        if self.level.get(ch, 0) == level:
            return
        self.level[ch] = level
        self.numbered("LED", f"{ch} {level} id={cmd_id}")  # t: right after the "pin write"

    # ---- LED edges and heartbeats ----
    def tick_loop(self):
        while not self.stop_flag.wait(0.002):
            with self.lock:
                if not self.answering or self.in_repl:
                    continue
                now = pico_us()
                while self.schedule and self.schedule[0][0] <= now:
                    _, ch, level, cmd_id = self.schedule.pop(0)
                    self.set_level(ch, level, cmd_id)
                if now >= self.next_hb:
                    mask = sum(1 << ch for ch, v in self.level.items() if v)
                    self.numbered("HB", f"up={now // 1_000_000} led={mask} drop=0")
                    self.next_hb = now + 1_000_000

    # ---- floods ----
    def flood(self, data, per_second, seconds, lines_per_item=1):
        """Writes data (one or more whole lines) per_second times a second for seconds, in chunks
        every 10 ms; a chunk waits while the supervisor does not read. Returns (items, elapsed)."""
        per_chunk = max(1, per_second // 100)
        chunk = data * per_chunk
        chunks = int(seconds * 100)
        t0 = time.monotonic()
        for i in range(chunks):
            self.write(chunk, timeout=60)
            wait = t0 + (i + 1) / 100 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        return chunks * per_chunk * lines_per_item, time.monotonic() - t0

    def close(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=5)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

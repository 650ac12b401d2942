# PSYNC/1 firmware logic for the Pico W sync LED.
#
# Everything hardware-specific is injected, so this module runs unchanged on
# MicroPython (main.py) and on CPython (unit tests, tests/tools/pico_emulator.py):
#   ticks    object with ticks_us() (30-bit wrapping counter) and
#            ticks_diff(a, b) (signed, MicroPython semantics); the `time`
#            module on the Pico.
#   channels list of LED outputs, index = channel number; each has value(v)
#            for 0/1 and, if it can dim, duty_u16(d) for 2..65535.
#   sink     serial output with write(bytes) and writable() -> bool.
#
# Only MicroPython-compatible syntax and built-ins are used: no f-strings,
# no dataclasses, no bytes methods beyond the basics.

FW_VERSION = "1.0.0"
PROTO = 1
MAX_LINE = 63          # bytes per line without the newline: one USB packet with it
MAX_ID = 16            # longest cmd_id / nonce, keeps every reply within MAX_LINE
TICKS_PERIOD = 1 << 30  # ticks_us() wraps here on MicroPython
SEQ_MAX = 0xFFFFFFFF
DEFAULT_HB_MS = 1000
DEFAULT_QUEUE = 32
MAX_WAIT_US = 100000   # callers must come back at least this often

# ERR <seq> <t> <cmd_id> <code> <word>
E_UNKNOWN = (1, "unknown")   # unknown command word
E_BADARG = (2, "badarg")     # wrong argument count, not a number, token too long
E_BADCH = (3, "badch")       # channel does not exist
E_RANGE = (4, "range")       # number outside the allowed range
E_TOOLONG = (5, "toolong")   # input line longer than MAX_LINE, dropped
E_BADBYTE = (6, "badbyte")   # byte outside printable ASCII
E_INTERNAL = (7, "internal")  # exception while handling the line


class Clock64:
    """64-bit microsecond clock built from the wrapping ticks counter.

    now() must be called at least once per wrap period (2^30 us, ~17.9 min);
    the firmware loop calls it every few milliseconds.
    """

    def __init__(self, ticks, start_us=None):
        self._ticks = ticks
        self._last = ticks.ticks_us()
        # On the Pico the first reading is already "us since boot".
        self._us = self._last if start_us is None else start_us

    def now(self):
        raw = self._ticks.ticks_us()
        d = self._ticks.ticks_diff(raw, self._last)
        if d < 0:
            # ticks_diff is signed: more than half a period has passed.
            d += TICKS_PERIOD
        self._last = raw
        self._us += d
        return self._us


class LineReader:
    """Splits a byte stream into lines.

    Chunks may end anywhere. '\r' is removed, empty lines are skipped, and a
    line longer than max_len bytes is discarded up to its newline, counted in
    `overlong`, and reported as a None entry so the caller can answer it.
    """

    def __init__(self, max_len=MAX_LINE):
        self.max_len = max_len
        self.overlong = 0
        self._buf = bytearray()
        self._skipping = False

    def feed(self, data):
        lines = []
        for b in data:
            if b == 10:
                if self._skipping:
                    self._skipping = False
                    self.overlong += 1
                    lines.append(None)
                elif len(self._buf):
                    lines.append(bytes(self._buf))
                self._buf = bytearray()
            elif b == 13 or self._skipping:
                continue
            elif len(self._buf) >= self.max_len:
                self._skipping = True
                self._buf = bytearray()
            else:
                self._buf.append(b)
        return lines


class OutQueue:
    """Bounded FIFO of outgoing lines.

    When full, the newest line is dropped: lines already queued keep their
    order, and the host still sees the loss as a gap in seq.
    """

    def __init__(self, size=DEFAULT_QUEUE):
        self.size = size
        self.items = []
        self.dropped = 0

    def push(self, item):
        if len(self.items) >= self.size:
            self.dropped += 1
            return False
        self.items.append(item)
        return True

    def pop(self):
        return self.items.pop(0)

    def __len__(self):
        return len(self.items)


class Blink:
    """on_us/off_us square wave starting with 'on'; count 0 runs until STOP."""

    def __init__(self, cmd_id, start, on_us, off_us, count):
        self.cmd_id = cmd_id
        self.start = start
        self.on = on_us
        self.period = on_us + off_us
        self.end = None if count == 0 else start + (count - 1) * self.period + on_us

    def level_at(self, t):
        if t < self.start:
            return None
        if self.end is not None and t >= self.end:
            return 0
        return 1 if (t - self.start) % self.period < self.on else 0

    def next_edge(self, t):
        if t < self.start:
            return self.start
        e = t - self.start
        k = e // self.period
        if e - k * self.period < self.on:
            return self.start + k * self.period + self.on
        return self.start + (k + 1) * self.period

    def done(self, t):
        return self.end is not None and t >= self.end


class Code:
    """Bits shown MSB first for bit_us each; the LED is off afterwards."""

    def __init__(self, cmd_id, start, bits, bit_us):
        self.cmd_id = cmd_id
        self.start = start
        self.bits = bits
        self.bit_us = bit_us
        self.end = start + len(bits) * bit_us

    def level_at(self, t):
        if t < self.start:
            return None
        if t >= self.end:
            return 0
        return self.bits[(t - self.start) // self.bit_us]

    def next_edge(self, t):
        if t < self.start:
            return self.start
        return self.start + ((t - self.start) // self.bit_us + 1) * self.bit_us

    def done(self, t):
        return t >= self.end


def hex_to_bits(text):
    bits = []
    for c in text:
        v = int(c, 16)
        for shift in (3, 2, 1, 0):
            bits.append((v >> shift) & 1)
    return bits


def _is_uint(tok, max_digits=20):
    if not tok or len(tok) > max_digits:
        return False
    for c in tok:
        if c < "0" or c > "9":
            return False
    return True


def _is_hex(tok):
    for c in tok:
        if c not in "0123456789abcdefABCDEF":
            return False
    return len(tok) > 0


class CmdError(Exception):
    """Raised with one of the E_* tuples; answered with an ERR line."""


class Firmware:
    """One boot of the PSYNC/1 firmware. A new boot is a new instance."""

    def __init__(self, ticks, channels, sink, boot_id, uid, board="pico_w",
                 version=FW_VERSION, start_us=None, queue_len=DEFAULT_QUEUE,
                 hb_ms=DEFAULT_HB_MS):
        self.clock = Clock64(ticks, start_us)
        self.channels = channels
        self.levels = [0] * len(channels)
        self.patterns = [None] * len(channels)
        self.sink = sink
        self.boot_id = boot_id
        self.uid = uid
        self.board = board
        self.version = version
        self.reader = LineReader(MAX_LINE)
        self.out = OutQueue(queue_len)
        self.seq = 0
        self.hb_us = hb_ms * 1000
        self.next_hb = None

    # ---- output -------------------------------------------------------

    def _next_seq(self):
        # 0 is reserved for HELLO, so the counter wraps to 1.
        self.seq = self.seq + 1 if self.seq < SEQ_MAX else 1
        return self.seq

    def _emit(self, kind, t, rest):
        # The seq is consumed even if the queue drops the line.
        self.out.push("%s %d %d %s\n" % (kind, self._next_seq(), t, rest))

    def _fit(self, head, text):
        room = MAX_LINE - len(head)
        return head + text[:room] if room > 0 else head[:MAX_LINE]

    def hello(self):
        # HELLO sits outside the numbered stream (seq field fixed at 0). It is
        # the one line allowed past MAX_LINE: it is rare and not timed.
        self.out.push("HELLO 0 %d proto=%d fw=%s board=%s boot=%s uid=%s\n" % (
            self.clock.now(), PROTO, self.version, self.board, self.boot_id,
            self.uid))

    def log(self, level, text):
        seq = self._next_seq()
        head = "LOG %d %d %s " % (seq, self.clock.now(), level)
        self.out.push(self._fit(head, text) + "\n")

    def error(self, cmd_id, err):
        seq = self._next_seq()
        head = "ERR %d %d %s %d " % (seq, self.clock.now(), cmd_id, err[0])
        self.out.push(self._fit(head, err[1]) + "\n")

    def flush(self):
        """Write queued lines while the sink accepts them; returns the count."""
        n = 0
        while len(self.out) and self.sink.writable():
            item = self.out.pop()
            if isinstance(item, tuple):
                # PONG: t_tx is taken as late as possible, right before the write.
                line = "PONG %d %s %d %d\n" % (item[0], item[1], item[2],
                                               self.clock.now())
            else:
                line = item
            self.sink.write(line.encode())
            n += 1
        return n

    # ---- LED ----------------------------------------------------------

    def _set_level(self, ch, level, cmd_id):
        if level == self.levels[ch]:
            return
        out = self.channels[ch]
        if level <= 1:
            out.value(level)
        else:
            out.duty_u16(level)
        t = self.clock.now()  # next to the pin write, not the schedule
        self.levels[ch] = level
        self._emit("LED", t, "%d %d id=%s" % (ch, level, cmd_id))

    def _step_pattern(self, ch, now):
        """Applies the level due now; returns us to the next edge or None."""
        p = self.patterns[ch]
        level = p.level_at(now)
        if level is not None:
            self._set_level(ch, level, p.cmd_id)
        if p.done(now):
            self.patterns[ch] = None
            return None
        return p.next_edge(now) - now

    def led_mask(self):
        mask = 0
        for ch in range(len(self.levels)):
            if self.levels[ch]:
                mask |= 1 << ch
        return mask

    # ---- scheduler ----------------------------------------------------

    def start(self):
        self.hello()
        if self.hb_us:
            self.next_hb = self.clock.now() + self.hb_us

    def service(self):
        """Runs due pattern edges and heartbeats; returns us until the next."""
        now = self.clock.now()
        wait = MAX_WAIT_US
        for ch in range(len(self.patterns)):
            if self.patterns[ch] is not None:
                w = self._step_pattern(ch, now)
                if w is not None and w < wait:
                    wait = w
        if self.next_hb is not None:
            if now >= self.next_hb:
                self._emit("HB", now, "up=%d led=%d drop=%d" % (
                    now // 1000000, self.led_mask(), self.out.dropped))
                self.next_hb += self.hb_us
                if self.next_hb <= now:
                    # Fell behind by more than a period: skip, do not burst.
                    self.next_hb = now + self.hb_us
            if self.next_hb - now < wait:
                wait = self.next_hb - now
        return wait if wait > 0 else 0

    # ---- input --------------------------------------------------------

    def feed(self, data, t_rx=None):
        """Handles received bytes; t_rx is when they were read (now if None)."""
        if t_rx is None:
            t_rx = self.clock.now()
        for line in self.reader.feed(data):
            if line is None:
                self.error("-", E_TOOLONG)
                continue
            try:
                self.handle_line(line, t_rx)
            except CmdError as e:
                self.error(self._cmd_id_of(line), e.args[0])
            except Exception as e:  # keep the link alive whatever happens
                self.error(self._cmd_id_of(line), E_INTERNAL)
                self.log("error", repr(e))

    def _cmd_id_of(self, line):
        parts = line.split()
        if len(parts) > 1 and 0 < len(parts[1]) <= MAX_ID:
            try:
                return parts[1].decode()
            except Exception:
                pass
        return "-"

    def handle_line(self, line, t_rx):
        for b in line:
            if b < 32 or b > 126:
                raise CmdError(E_BADBYTE)
        tokens = line.decode().split()
        if not tokens:
            return
        cmd = tokens[0]
        pos = []
        keys = {}
        for tok in tokens[1:]:
            eq = tok.find("=")
            if eq > 0:
                keys[tok[:eq]] = tok[eq + 1:]  # unknown keys are ignored
            else:
                pos.append(tok)
        if cmd == "HELLO?":
            self.hello()
        elif cmd == "PING":
            self._ping(pos, t_rx)
        elif cmd == "LED":
            self._led(pos)
        elif cmd == "BLINK":
            self._blink(pos, keys)
        elif cmd == "CODE":
            self._code(pos, keys)
        elif cmd == "HB":
            self._hb(pos)
        elif cmd == "STOP":
            self._stop(pos)
        else:
            raise CmdError(E_UNKNOWN)

    # ---- argument helpers --------------------------------------------

    def _args(self, pos, n):
        if len(pos) != n or len(pos[0]) > MAX_ID:
            raise CmdError(E_BADARG)
        return pos[0]

    def _uint(self, tok, lo, hi):
        if not _is_uint(tok):
            raise CmdError(E_BADARG)
        v = int(tok)
        if v < lo or v > hi:
            raise CmdError(E_RANGE)
        return v

    def _channel(self, tok):
        if not _is_uint(tok, 3):
            raise CmdError(E_BADARG)
        ch = int(tok)
        if ch >= len(self.channels):
            raise CmdError(E_BADCH)
        return ch

    def _start_pattern(self, ch, keys, cmd_id, pattern_cls, *args):
        now = self.clock.now()
        start = now
        late = 0
        if "at" in keys:
            if not _is_uint(keys["at"]):
                raise CmdError(E_BADARG)
            at = int(keys["at"])
            if at >= now:
                start = at
            else:
                # Too late to honour: start now, the LED lines carry real times.
                late = now - at
        self._ack(cmd_id)
        if late:
            self.log("warn", "late id=%s us=%d" % (cmd_id, late))
        self.patterns[ch] = pattern_cls(cmd_id, start, *args)
        self._step_pattern(ch, self.clock.now())

    def _ack(self, cmd_id):
        self._emit("ACK", self.clock.now(), cmd_id)

    # ---- commands -----------------------------------------------------

    def _ping(self, pos, t_rx):
        if len(pos) != 1 or len(pos[0]) > MAX_ID:
            raise CmdError(E_BADARG)
        self.out.push((self._next_seq(), pos[0], t_rx))

    def _led(self, pos):
        cmd_id = self._args(pos, 3)
        ch = self._channel(pos[1])
        level = self._uint(pos[2], 0, 65535)
        if level > 1 and not hasattr(self.channels[ch], "duty_u16"):
            raise CmdError(E_RANGE)
        self._ack(cmd_id)
        self.patterns[ch] = None
        self._set_level(ch, level, cmd_id)

    def _blink(self, pos, keys):
        cmd_id = self._args(pos, 5)
        ch = self._channel(pos[1])
        on_ms = self._uint(pos[2], 1, 3600000)
        off_ms = self._uint(pos[3], 1, 3600000)
        count = self._uint(pos[4], 0, 1000000)
        self._start_pattern(ch, keys, cmd_id, Blink, on_ms * 1000,
                            off_ms * 1000, count)

    def _code(self, pos, keys):
        cmd_id = self._args(pos, 4)
        ch = self._channel(pos[1])
        if not _is_hex(pos[2]) or len(pos[2]) > 32:
            raise CmdError(E_BADARG)
        bit_ms = self._uint(pos[3], 1, 60000)
        self._start_pattern(ch, keys, cmd_id, Code, hex_to_bits(pos[2]),
                            bit_ms * 1000)

    def _hb(self, pos):
        cmd_id = self._args(pos, 2)
        ms = self._uint(pos[1], 0, 3600000)
        if 0 < ms < 10:
            raise CmdError(E_RANGE)
        self._ack(cmd_id)
        self.hb_us = ms * 1000
        self.next_hb = self.clock.now() + self.hb_us if ms else None

    def _stop(self, pos):
        cmd_id = self._args(pos, 2)
        if pos[1] == "*":
            chans = range(len(self.channels))
        else:
            chans = [self._channel(pos[1])]
        self._ack(cmd_id)
        for ch in chans:
            self.patterns[ch] = None
            self._set_level(ch, 0, cmd_id)

"""The phone clock, the ground-truth log and the simulator's own log."""
import json
import sys
import time


def log(msg):
    sys.stderr.write("neon-sim: %s\n" % msg)
    sys.stderr.flush()


class Clock:
    """Phone clock = host CLOCK_REALTIME + offset, running skew_ppm fast from the start."""

    def __init__(self, offset_ns, skew_ppm=0.0):
        self.offset_ns = offset_ns
        self.skew = skew_ppm * 1e-6
        self.start_rt = time.time_ns()

    def phone(self, rt):
        return rt + self.offset_ns + int((rt - self.start_rt) * self.skew)

    def now(self):
        """(device_ns, mono_ns) of one instant (mono read on both sides)."""
        m0 = time.monotonic_ns()
        rt = time.time_ns()
        m1 = time.monotonic_ns()
        return self.phone(rt), (m0 + m1) >> 1

    def device_ns(self):
        return self.phone(time.time_ns())


class Truth:
    def __init__(self, path):
        self.f = open(path, "w", encoding="utf-8") if path else None
        self.buf = []

    def obj(self, **kw):
        if self.f:
            self.buf.append(json.dumps(kw, separators=(",", ":")) + "\n")

    def line(self, text):
        if self.f:
            self.buf.append(text)

    def flush(self):
        if self.f and self.buf:
            self.f.write("".join(self.buf))
            self.buf.clear()
            self.f.flush()

    def close(self):
        if self.f:
            self.flush()
            self.f.close()
            self.f = None


def jbool(b):
    return "true" if b else "false"

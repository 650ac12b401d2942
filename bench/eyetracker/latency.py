"""How late a gaze sample is on disk: strace's durable writes or a tail of the CSV files."""
import bisect
import os
import re
import threading
import time

from helpers import Matcher, csv_rows, percentiles


LINE = re.compile(r"^(\d+\.\d+) (write|pwrite64|writev|pwritev|fdatasync|fsync)\((\d+)<([^>]*)>.*\) = (-?\d+)"
                  r"(?: [A-Z].*)? <(\d+\.\d+)>$")


def parse_strace(prefix, rt_minus_mono):
    """{path: {"writes": [(end_mono, bytes)], "syncs": [(start_mono, end_mono)]}} from strace -ff files."""
    out = {}
    folder, stem = os.path.split(prefix)
    for name in os.listdir(folder):
        if not name.startswith(stem + "."):
            continue
        with open(os.path.join(folder, name), errors="replace") as f:
            for line in f:
                m = LINE.match(line.rstrip("\n"))
                if not m:
                    continue
                start = round(float(m.group(1)) * 1e9) - rt_minus_mono
                end = start + round(float(m.group(6)) * 1e9)
                rv = int(m.group(5))
                entry = out.setdefault(m.group(4), {"writes": [], "syncs": []})
                if m.group(2) in ("fdatasync", "fsync"):
                    if rv == 0:
                        entry["syncs"].append((start, end))
                elif rv > 0:
                    entry["writes"].append((start, end, rv))
    for entry in out.values():
        entry["writes"].sort()
        entry["syncs"].sort()
    return out


def durable_latency(csv_path, device_col, truth_sent, trace, t0, t1):
    """Per row produced in [t0, t1): ms from the sample's production to its write returning and to
    the end of the first sync of the file that started after that."""
    rows, ends = csv_rows(csv_path)
    entry = trace.get(csv_path) or trace.get(os.path.realpath(csv_path))
    if not entry or not entry["writes"]:
        raise RuntimeError(f"no write to {csv_path} in the strace log")
    cum, total = [], 0
    for _, end, n in entry["writes"]:
        total += n
        cum.append(total)
    if total != os.path.getsize(csv_path):
        raise RuntimeError(f"{csv_path}: the traced writes add up to {total} bytes, the file has "
                           f"{os.path.getsize(csv_path)}: cannot map rows to writes")
    sync_starts = [s for s, _ in entry["syncs"]]
    m = Matcher(truth_sent)
    written, durable, unmatched, never = [], [], 0, 0
    for row, end_off in zip(rows, ends):
        mono = m.mono_of(int(row[device_col]))
        if mono is None:
            unmatched += 1
            continue
        if not t0 <= mono < t1:
            continue
        w = bisect.bisect_left(cum, end_off)
        if w >= len(cum):
            never += 1
            continue
        w_end = entry["writes"][w][1]
        written.append((w_end - mono) / 1e6)
        s = bisect.bisect_left(sync_starts, w_end)
        if s >= len(sync_starts):
            never += 1
            continue
        durable.append((entry["syncs"][s][1] - mono) / 1e6)
    gaps = [(b[0] - a[1]) / 1e6 for a, b in zip(entry["syncs"], entry["syncs"][1:])]
    sync_ms = [(e - s) / 1e6 for s, e in entry["syncs"]]
    return {"written_ms": percentiles(written), "durable_ms": percentiles(durable), "unmatched_rows": unmatched,
            "rows_never_synced": never, "syncs": len(entry["syncs"]), "writes": len(entry["writes"]),
            "sync_gap_ms": percentiles(gaps), "sync_call_ms": percentiles(sync_ms)}


class Tailer(threading.Thread):
    """Without strace: read the file every 1 ms and note when each row becomes visible."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.seen = []   # (row index, mono_ns when visible)
        self.stop_event = threading.Event()

    def run(self):
        fd, buf, rows = None, b"", -1  # the header is row -1
        while not self.stop_event.is_set():
            if fd is None:
                try:
                    fd = os.open(self.path, os.O_RDONLY)
                except OSError:
                    time.sleep(0.001)
                    continue
            chunk = os.read(fd, 1 << 20)
            if chunk:
                now = time.monotonic_ns()
                buf += chunk
                n = buf.count(b"\n")
                for _ in range(n):
                    if rows >= 0:
                        self.seen.append((rows, now))
                    rows += 1
                buf = buf[buf.rfind(b"\n") + 1:]
            else:
                time.sleep(0.001)
        if fd is not None:
            os.close(fd)

    def latency(self, csv_path, device_col, truth_sent, t0, t1):
        rows, _ = csv_rows(csv_path)
        m = Matcher(truth_sent)
        out = []
        for i, at in self.seen:
            if i >= len(rows):
                continue
            mono = m.mono_of(int(rows[i][device_col]))
            if mono is not None and t0 <= mono < t1:
                out.append((at - mono) / 1e6)
        return {"written_ms": percentiles(out), "durable_ms": percentiles([])}

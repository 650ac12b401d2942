"""Percentiles, waits, CSV rows, the simulator process and matching rows to its truth."""
import bisect
import csv
import json
import os
import subprocess
import sys
import time

from procfs import tree

SIM_ARGS = ["--scene-size", "1600x1200", "--scene-fps", "30", "--scene-bitrate", "4M", "--gaze-hz", "200",
            "--imu-hz", "110", "--gaze-layout", "89", "--offset-s", "3.7"]
MATCH_NS = 100_000  # a row's device time matches a simulated sample within this (RTP: 11 us steps)


def percentiles(values):
    if not values:
        return {"n": 0, "min": None, "p50": None, "p99": None, "max": None}
    v = sorted(values)
    at = lambda p: v[min(len(v) - 1, max(0, int(round(p / 100 * len(v))) - 1))]  # noqa: E731
    return {"n": len(v), "min": v[0], "p50": at(50), "p99": at(99), "max": v[-1]}


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def csv_rows(path):
    """(rows as lists, byte offset just past each row's newline); a torn last row is left out."""
    with open(path, "rb") as f:
        data = f.read()
    rows, ends, pos = [], [], 0
    header_len = None
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        line = data[pos:nl].decode()
        pos = nl + 1
        if header_len is None:
            header_len = len(line.split(","))
            continue
        fields = next(csv.reader([line]))
        if len(fields) == header_len:
            rows.append(fields)
            ends.append(pos)
    return rows, ends


def count_packets(path):
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return 0
    r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                        "stream=nb_read_packets", "-of", "csv=p=0", path], capture_output=True, text=True, timeout=120)
    try:
        return int(r.stdout.strip().split(",")[0])
    except ValueError:
        return 0


def clock_pair():
    """(CLOCK_REALTIME - CLOCK_MONOTONIC) in ns, from the tightest of a few bracketed reads."""
    best = None
    for _ in range(20):
        m0 = time.monotonic_ns()
        rt = time.time_ns()
        m1 = time.monotonic_ns()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, rt - (m0 + m1) // 2)
    return best[1]


class Sim:
    """neon-sim on free ports with its truth log; one per run."""

    def __init__(self, bin_dir, tmp, extra):
        self.port_file = os.path.join(tmp, "sim-ports.json")
        self.truth_path = os.path.join(tmp, "truth.ndjson")
        self.log = open(os.path.join(tmp, "sim.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(bin_dir, "neon-sim"), "--http-port", "0", "--rtsp-port", "0",
             "--time-echo-port", "0", "--port-file", self.port_file, "--truth", self.truth_path,
             "--seed", "7", *SIM_ARGS, *extra], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        wait_for(lambda: os.path.exists(self.port_file) or self.proc.poll() is not None, 30, "neon-sim's ports")
        if self.proc.poll() is not None:
            raise RuntimeError(f"neon-sim exited: see {self.log.name}")
        with open(self.port_file) as f:
            self.ports = json.load(f)

    def pids(self):
        return tree(self.proc.pid) if self.proc.poll() is None else []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def truth(self, kind):
        out = []
        with open(self.truth_path) as f:
            for line in f:
                if f'"kind":"{kind}"' not in line:
                    continue
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out


class Matcher:
    """Device time of a row -> the simulated sample (truth) it is."""

    def __init__(self, truth):
        self.truth = sorted((o["device_ns"], o["mono_ns"]) for o in truth)
        self.keys = [t[0] for t in self.truth]

    def mono_of(self, device_ns):
        i = bisect.bisect_left(self.keys, device_ns)
        best = None
        for k in (i - 1, i):
            if 0 <= k < len(self.keys) and abs(self.keys[k] - device_ns) <= MATCH_NS:
                if best is None or abs(self.keys[k] - device_ns) < abs(self.keys[best] - device_ns):
                    best = k
        return None if best is None else self.truth[best][1]


def kept(rows, col, truth_sent, t0, t1):
    """Rows whose sample was produced in [t0, t1) over samples the simulator sent in it."""
    m = Matcher(truth_sent)
    got = set()
    for r in rows:
        mono = m.mono_of(int(r[col]))
        if mono is not None and t0 <= mono < t1:
            got.add(mono)
    sent = sum(1 for o in truth_sent if t0 <= o["mono_ns"] < t1)
    return {"rows": len(got), "sent": sent, "kept_pct": 100 * len(got) / sent if sent else None}

#!/usr/bin/env python3
"""bench/eyetracker: what recording a Neon costs, and how late a gaze sample is safe on disk.

neon-sim serves the Neon's real sizes on loopback (1600x1200 H.264 scene at 30 fps and 4 Mb/s,
gaze at 200 Hz in the 89-byte layout, IMU at 110 Hz, eye events); pilogger-eyetracker records it
standalone (no supervisor), each run against a fresh simulator:

1. CPU per second of recording (utime + stime from /proc/<pid>/stat, sampled once a second) of
   pilogger-eyetracker (and, separately, of an ffmpeg child if the build has one: builds before
   the in-process scene writer piped the scene to ffmpeg), plus peak RSS, for gaze + IMU + eye
   events + scene with overlay off, with `overlay: true`, and with `scene: false` (so the scene's
   share can be told apart). neon-sim's own CPU (Python and its x264 encoder) is reported beside
   it and counted nowhere.
2. Latency from a gaze sample's device time (the simulator's truth log: the CLOCK_MONOTONIC
   instant the sample was produced) to its CSV row being durable: covered by a completed
   fdatasync/fsync of that file. The recorder runs under strace (-f -ttt -T -y, write and sync
   calls only); each row is mapped by its byte offset to the write(2) that carried it and to the
   first sync of the same file that started after that write returned. strace's CLOCK_REALTIME
   times are converted with a realtime/monotonic pair read at the start. Without strace, the
   file is tailed every 1 ms instead and the numbers are only "written, not yet durable". These
   runs are separate from the CPU runs (strace costs CPU).
3. The alternative a researcher would otherwise pick, in the same invocation: plain ffmpeg
   recording the RTSP scene stream (`ffmpeg -rtsp_transport udp -i rtsp://.../?camera=world -c copy
   -f mp4 -movflags frag_keyframe+empty_moov out.mp4`) and a Python asyncio gaze client
   (python_baseline.py: RTSP, RTP/UDP, sender-report timing, csv module, flush + fsync once a
   second). CPU, frames and rows kept, and the same latency numbers; ratios are printed.

  python3 bench/eyetracker/run.py [--build DIR] [--seconds 30] [--latency-seconds 20] [--quick]
Needs a build with pilogger-eyetracker and neon-sim (./scripts/build.sh, or ninja -C DIR
pilogger-eyetracker neon_sim), ffmpeg and ffprobe; strace for the durable latency.
Default run: about 3.5 minutes; --quick: 8 s runs, under a minute and a half.
"""
import argparse
import bisect
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
TICK = os.sysconf("SC_CLK_TCK")
SIM_ARGS = ["--scene-size", "1600x1200", "--scene-fps", "30", "--scene-bitrate", "4M", "--gaze-hz", "200",
            "--imu-hz", "110", "--gaze-layout", "89", "--offset-s", "3.7"]
STRACE = ["-f", "-ff", "--seccomp-bpf", "-ttt", "-T", "-y", "-s", "0",
          "-e", "trace=write,pwrite64,writev,pwritev,fdatasync,fsync", "-e", "signal=none"]
COUNTERS = {"packets_lost", "packets_late", "packets_reordered", "untimed_samples", "bad_payloads",
            "scene_frames_dropped", "drops", "events_dropped"}
MATCH_NS = 100_000  # a row's device time matches a simulated sample within this (RTP: 11 us steps)


# ---------------------------------------------------------------- /proc

def proc_cpu(pid):
    """utime + stime in seconds, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return None


def proc_comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def proc_rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def load_average():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


class CpuMeter(threading.Thread):
    """Once a second: CPU and RSS of named groups of processes. A group is a function returning its
    pids now; each pid's CPU counts from the first time it is seen inside the window."""

    def __init__(self, groups):
        super().__init__(daemon=True)
        self.groups = groups
        self.base = {}       # (group, pid) -> cpu seconds at the previous sample
        self.total = {g: 0.0 for g in groups}
        self.series = {g: [] for g in groups}   # CPU % of one core per 1-s sample
        self.rss = {g: [] for g in groups}
        self.stop_event = threading.Event()
        self.t0 = self.t1 = None
        self.sample(first=True)

    def sample(self, first=False):
        now = time.monotonic()
        for g, pids_of in self.groups.items():
            used, rss = 0.0, 0.0
            for pid in pids_of():
                c = proc_cpu(pid)
                if c is None:
                    continue
                rss += proc_rss_mib(pid)
                prev = self.base.get((g, pid))
                self.base[(g, pid)] = c
                if prev is not None:
                    used += c - prev
            if not first:
                self.total[g] += used
                if now - self.last >= 0.5:  # the last, shorter piece counts in the total only
                    self.series[g].append(100 * used / (now - self.last))
                self.rss[g].append(rss)
        self.last = now
        if first:
            self.t0 = now
        self.t1 = now

    def run(self):
        next_t = self.t0 + 1.0
        while not self.stop_event.wait(max(0.0, next_t - time.monotonic())):
            self.sample()
            next_t += 1.0

    def finish(self):
        self.stop_event.set()
        self.join()
        self.sample()
        wall = self.t1 - self.t0
        return {g: {"cpu_pct": 100 * self.total[g] / wall, "cpu_s": self.total[g],
                    "max_1s_pct": max(self.series[g], default=0.0),
                    "rss_max_mib": max(self.rss[g], default=0.0)} for g in self.groups} | {"wall_s": wall}


# ---------------------------------------------------------------- helpers

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


# ---------------------------------------------------------------- latency

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


# ---------------------------------------------------------------- runs

class Recorder:
    """A process we start (optionally under strace) whose output we keep."""

    def __init__(self, argv, log_path, strace_prefix=None, stdout=subprocess.DEVNULL):
        self.log = open(log_path, "w")
        if strace_prefix:
            argv = ["strace", *STRACE, "-o", strace_prefix, *argv]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=self.log)
        self.traced = bool(strace_prefix)

    @property
    def pid(self):
        """The recorder itself (strace's child when traced)."""
        if not self.traced:
            return self.proc.pid
        kids = children(self.proc.pid)
        return kids[0] if kids else None

    def signal(self):
        """SIGTERM to the recorder (not to strace): it finishes its files and exits."""
        self.stop_ns = time.monotonic_ns()
        pid = self.pid
        if pid is not None and self.proc.poll() is None:
            os.kill(pid, signal.SIGTERM)

    def wait(self, timeout=30):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode

    def stop(self, timeout=30):
        self.signal()
        return self.wait(timeout)


def run_pilogger(bin_dir, tmp, settings, seconds, warmup, sim_extra, latency):
    """One recording by pilogger-eyetracker. latency: None, "strace" or "tail"."""
    sim = Sim(bin_dir, tmp, sim_extra)
    out = os.path.join(tmp, "out")
    folder = os.path.join(out, "eyetracker")
    gaze_csv = os.path.join(folder, "trial_001_gaze.csv")
    config = os.path.join(tmp, "eyetracker.yaml")
    with open(config, "w") as f:
        f.write(f"data_dir: {tmp}/data\nmodules:\n  eyetracker:\n    type: eyetracker\n"
                f"    address: 127.0.0.1:{sim.ports['http']}\n")
        for k, v in settings.items():
            f.write(f"    {k}: {v}\n")
    stats = {}
    stdout_path = os.path.join(tmp, "module.stdout")
    stdout = open(stdout_path, "w")
    rec = None
    try:
        rt_minus_mono = clock_pair()
        if latency == "strace":
            os.makedirs(os.path.join(tmp, "strace"), exist_ok=True)
        rec = Recorder([os.path.join(bin_dir, "pilogger-eyetracker"), "--config", config, "--output", out],
                       os.path.join(tmp, "module.log"), os.path.join(tmp, "strace", "t") if latency == "strace" else None,
                       stdout=stdout)
        tailer = None
        if latency == "tail":
            tailer = Tailer(gaze_csv)
            tailer.start()
        scene = settings.get("scene", "true") == "true"
        ffmpeg_of = lambda: [p for p in children(rec.pid or 0) if proc_comm(p) == "ffmpeg"]  # noqa: E731
        scene_mp4 = os.path.join(folder, "trial_001_scene.mp4")
        # The scene is recording once its MP4 exists (or, in older builds, its ffmpeg child runs).
        wait_for(lambda: os.path.exists(gaze_csv) and os.path.getsize(gaze_csv) > 4096
                 and (not scene or ffmpeg_of() or os.path.exists(scene_mp4)) or rec.proc.poll() is not None, 60,
                 "the module recording")
        if rec.proc.poll() is not None:
            raise RuntimeError(f"pilogger-eyetracker exited {rec.proc.returncode}: see {tmp}/module.log")
        time.sleep(warmup)
        meter = None
        if latency is None:
            meter = CpuMeter({"module": lambda: [rec.pid], "ffmpeg": ffmpeg_of, "sim": sim.pids})
            meter.start()
        t0 = time.monotonic_ns()
        time.sleep(seconds)
        t1 = time.monotonic_ns()
        cpu = meter.finish() if meter else None
        code = rec.stop()
        rt_end = clock_pair()
        if tailer:
            time.sleep(0.05)
            tailer.stop_event.set()
            tailer.join()
    finally:
        if rec and rec.proc.poll() is None:
            rec.stop()
        stdout.close()
        sim.stop()
    with open(stdout_path) as f:
        for line in f:
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if o.get("event") == "stats":
                # Counters: the highest value seen (the last stats, sent while the trial's files
                # close, can miss the closing file's drops); rates: the last value.
                for k, v in o.items():
                    if k in COUNTERS and isinstance(v, (int, float)):
                        stats[k] = max(v, stats.get(k, 0))
                    else:
                        stats[k] = v
    result = {"settings": settings, "exit_status": code, "window_s": (t1 - t0) / 1e9, "cpu": cpu,
              "clock_pair_drift_us": (rt_end - rt_minus_mono) / 1e3,
              "module_stats": {k: stats.get(k) for k in ("packets_lost", "packets_late", "packets_reordered",
                                                          "untimed_samples", "bad_payloads", "scene_frames_dropped",
                                                          "drops", "events_dropped", "gaze_rate_hz", "imu_rate_hz",
                                                          "scene_fps", "clock_offset_ms") if k in stats}}
    gaze_truth = [o for o in sim.truth("gaze") if o["sent"]]
    gaze_rows, _ = csv_rows(gaze_csv)
    result["gaze"] = kept(gaze_rows, 1, gaze_truth, t0, t1)
    imu_rows, _ = csv_rows(os.path.join(folder, "trial_001_imu.csv"))
    result["imu"] = kept(imu_rows, 1, [o for o in sim.truth("imu") if o["sent"]], t0, t1)
    ev_rows, _ = csv_rows(os.path.join(folder, "trial_001_events.csv"))
    ev_truth = [o for o in sim.truth("eye_event") if o["sent"] and o["type"] != 5]
    ev_in = [r for r in ev_rows if r[2] != "keep_alive" and t0 <= int(r[0]) < t1]
    result["events"] = {"rows": len(ev_in), "sent": sum(1 for o in ev_truth if t0 <= o["mono_ns"] < t1)}
    if scene:
        frames_truth = sim.truth("frame")
        frames, _ = csv_rows(os.path.join(folder, "trial_001_scene_frames.csv"))
        in_window = kept(frames, 1, [o for o in frames_truth if o["sent"]], t0, t1)
        result["scene"] = scene_kept(os.path.join(folder, "trial_001_scene.mp4"), frames_truth, rec.stop_ns)
        result["scene"].update({"window": in_window, "csv_rows": len(frames)})
    if latency == "strace":
        trace = parse_strace(os.path.join(tmp, "strace", "t"), rt_minus_mono)
        result["latency"] = durable_latency(gaze_csv, 1, gaze_truth, trace, t0, t1 - 2_000_000_000)
    elif latency == "tail":
        result["latency"] = tailer.latency(gaze_csv, 1, gaze_truth, t0, t1 - 2_000_000_000)
    result["log_warnings"] = warnings_in(os.path.join(tmp, "module.log"), (" warning ", " error "))
    return result


def scene_kept(mp4, frames_truth, stop_ns):
    """Frames in the MP4 against the frames the simulator produced for it before the recorder was
    told to stop ("complete": every RTP packet of the frame was sent; --loss drops some)."""
    before = [o for o in frames_truth if o["mono_ns"] < stop_ns]
    out = {"mp4_frames": count_packets(mp4), "produced_until_stop": len(before),
           "complete_until_stop": sum(1 for o in before if o["sent"])}
    out["kept_pct"] = 100 * out["mp4_frames"] / max(1, out["produced_until_stop"])
    return out


def warnings_in(path, needles):
    try:
        with open(path, errors="replace") as f:
            return [l.rstrip() for l in f if any(n in l for n in needles)][:20]
    except OSError:
        return []


def run_baseline(bin_dir, tmp, seconds, warmup, sim_extra, scene, latency):
    """Plain ffmpeg on the scene stream (scene=True) and the Python gaze client, side by side."""
    sim = Sim(bin_dir, tmp, sim_extra)
    rtsp = f"127.0.0.1:{sim.ports['rtsp']}"
    gaze_csv = os.path.join(tmp, "python_gaze.csv")
    mp4 = os.path.join(tmp, "ffmpeg_scene.mp4")
    recs = {}
    try:
        rt_minus_mono = clock_pair()
        if latency == "strace":
            os.makedirs(os.path.join(tmp, "strace"), exist_ok=True)
        recs["python"] = Recorder([sys.executable, os.path.join(HERE, "python_baseline.py"), "--rtsp", rtsp,
                                   "--out", gaze_csv], os.path.join(tmp, "python.log"),
                                  os.path.join(tmp, "strace", "t") if latency == "strace" else None)
        if scene:
            recs["ffmpeg"] = Recorder(["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-rtsp_transport", "udp",
                                       "-i", f"rtsp://{rtsp}/?camera=world", "-c", "copy", "-f", "mp4",
                                       "-movflags", "frag_keyframe+empty_moov", mp4], os.path.join(tmp, "ffmpeg.log"))
        tailer = None
        if latency == "tail":
            tailer = Tailer(gaze_csv)
            tailer.start()
        wait_for(lambda: os.path.exists(gaze_csv) and os.path.getsize(gaze_csv) > 4096
                 and (not scene or os.path.exists(mp4) and os.path.getsize(mp4) > 0)
                 or any(r.proc.poll() is not None for r in recs.values()), 60, "the baseline recording")
        for name, r in recs.items():
            if r.proc.poll() is not None:
                raise RuntimeError(f"the baseline's {name} exited {r.proc.returncode}: see {tmp}")
        time.sleep(warmup)
        meter = None
        if latency is None:
            meter = CpuMeter({"python": lambda: [recs["python"].pid], "sim": sim.pids,
                              **({"ffmpeg": lambda: [recs["ffmpeg"].pid]} if scene else {})})
            meter.start()
        t0 = time.monotonic_ns()
        time.sleep(seconds)
        t1 = time.monotonic_ns()
        cpu = meter.finish() if meter else None
        for r in recs.values():
            r.signal()
        codes = {name: r.wait() for name, r in recs.items()}
        if tailer:
            time.sleep(0.05)
            tailer.stop_event.set()
            tailer.join()
    finally:
        for r in recs.values():
            if r.proc.poll() is None:
                r.stop()
        sim.stop()
    result = {"exit_status": codes, "window_s": (t1 - t0) / 1e9, "cpu": cpu}
    gaze_truth = [o for o in sim.truth("gaze") if o["sent"]]
    rows, _ = csv_rows(gaze_csv)
    result["gaze"] = kept(rows, 1, gaze_truth, t0, t1)
    if scene:
        result["scene"] = scene_kept(mp4, sim.truth("frame"), recs["ffmpeg"].stop_ns)
        result["ffmpeg_warnings"] = warnings_in(os.path.join(tmp, "ffmpeg.log"),
                                                ("missed", "max delay", "corrupt", "error", "Error", "Non-monoton"))
    if latency == "strace":
        trace = parse_strace(os.path.join(tmp, "strace", "t"), rt_minus_mono)
        result["latency"] = durable_latency(gaze_csv, 1, gaze_truth, trace, t0, t1 - 2_000_000_000)
    elif latency == "tail":
        result["latency"] = tailer.latency(gaze_csv, 1, gaze_truth, t0, t1 - 2_000_000_000)
    return result


# ---------------------------------------------------------------- report

def fmt(v, spec=".1f", none="-"):
    return none if v is None else format(v, spec)


def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.environ.get("PILOGGER_BUILD", os.path.join(SOURCE, "build")),
                        help="build folder with bin/pilogger-eyetracker and bin/neon-sim (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=30, help="measured seconds of each CPU run (default 30)")
    parser.add_argument("--latency-seconds", type=float, default=20,
                        help="measured seconds of each latency run (default 20)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds recorded before measuring (default 3)")
    parser.add_argument("--quick", action="store_true", help="8 s runs, 2 s warm-up")
    parser.add_argument("--preview", choices=("on", "off"), default="on",
                        help="the module's scene preview (its config default is on)")
    parser.add_argument("--loss", type=float, default=0.0, help="neon-sim --loss, packet loss probability")
    parser.add_argument("--no-strace", action="store_true", help="tail the CSV files instead (written, not durable)")
    parser.add_argument("--skip", default="", help="comma list of runs to skip: plain,overlay,noscene,baseline,latency")
    parser.add_argument("--json", help="result file (default: <build>/bench-eyetracker.json)")
    parser.add_argument("--keep", action="store_true", help="keep the recordings and logs")
    args = parser.parse_args()
    if args.quick:
        args.seconds = args.latency_seconds = 8
        args.warmup = 2
    bin_dir = os.path.join(os.path.abspath(args.build), "bin")
    for exe in ("pilogger-eyetracker", "neon-sim"):
        if not os.path.exists(os.path.join(bin_dir, exe)):
            sys.exit(f"bench/eyetracker: {bin_dir}/{exe} is missing; build it (ninja -C {args.build} "
                     f"pilogger-eyetracker neon_sim)")
    for tool in ("ffmpeg", "ffprobe"):
        if not shutil.which(tool):
            sys.exit(f"bench/eyetracker needs {tool} (apt-get install ffmpeg)")
    latency_mode = "strace" if shutil.which("strace") and not args.no_strace else "tail"
    skip = set(filter(None, args.skip.split(",")))
    sim_extra = ["--loss", str(args.loss)] if args.loss else []
    preview = "true" if args.preview == "on" else "false"

    load0 = load_average()
    started = time.monotonic()
    print(f"eye-tracker benchmark: neon-sim 1600x1200 H.264 at 30 fps and 4 Mb/s, gaze 200 Hz (89-byte layout), "
          f"IMU 110 Hz, eye events{f', packet loss {args.loss:g}' if args.loss else ''}")
    print(f"host: {os.uname().machine}, {os.cpu_count()} cores, load average {load0[0]:.2f} {load0[1]:.2f} "
          f"{load0[2]:.2f} at start; CPU runs {args.seconds:g} s, latency runs {args.latency_seconds:g} s "
          f"({'strace: durable' if latency_mode == 'strace' else 'no strace: written only, tailing every 1 ms'}), "
          f"preview {args.preview}")
    if latency_mode == "tail" and not args.no_strace:
        print("  strace is missing (apt-get install strace): latency is to the row being visible in the file "
              "(written, NOT yet durable)")

    runs = {}
    top = tempfile.mkdtemp(prefix="pilogger-bench-eyetracker-")
    plan = [("plain", lambda d: run_pilogger(bin_dir, d, {"preview": preview, "overlay": "false"}, args.seconds,
                                             args.warmup, sim_extra, None)),
            ("overlay", lambda d: run_pilogger(bin_dir, d, {"preview": preview, "overlay": "true"}, args.seconds,
                                               args.warmup, sim_extra, None)),
            ("noscene", lambda d: run_pilogger(bin_dir, d, {"preview": "false", "scene": "false"}, args.seconds,
                                               args.warmup, sim_extra, None)),
            ("baseline", lambda d: run_baseline(bin_dir, d, args.seconds, args.warmup, sim_extra, True, None)),
            ("latency", lambda d: run_pilogger(bin_dir, d, {"preview": preview, "overlay": "false"},
                                               args.latency_seconds, args.warmup, sim_extra, latency_mode)),
            ("baseline_latency", lambda d: run_baseline(bin_dir, d, args.latency_seconds, args.warmup, sim_extra,
                                                        False, latency_mode))]
    try:
        for name, fn in plan:
            if name in skip or (name == "baseline_latency" and "latency" in skip):
                continue
            d = os.path.join(top, name)
            os.makedirs(d)
            print(f"  running {name} ...", file=sys.stderr, flush=True)
            try:
                runs[name] = fn(d)
            except Exception as e:  # report and go on with the other runs
                runs[name] = {"error": str(e)}
                print(f"  {name}: FAILED: {e}", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)
    load1 = load_average()
    report(runs, args, latency_mode)
    print(f"\nload average {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} at the end; total {time.monotonic() - started:.0f} s"
          + (f"; recordings kept in {top}" if args.keep else ""))
    out = args.json or os.path.join(os.path.abspath(args.build), "bench-eyetracker.json")
    with open(out, "w") as f:
        json.dump({"host": {"machine": os.uname().machine, "cores": os.cpu_count(), "load_start": load0,
                            "load_end": load1},
                   "args": vars(args), "latency_mode": latency_mode, "runs": runs}, f, indent=1)
    print(f"JSON: {out}")


def report(runs, args, latency_mode):
    ok = lambda n: n in runs and "error" not in runs[n]  # noqa: E731
    print("\n1. CPU per second of recording (% of one core, mean over the window; max 1-s sample), peak RSS")
    print(f"{'run':<28} {'process':<22} {'cpu %':>7} {'max 1s':>7} {'RSS MiB':>8} | {'neon-sim cpu %':>14}")
    labels = {"plain": "pilogger, overlay off", "overlay": "pilogger, overlay on",
              "noscene": "pilogger, scene: false", "baseline": "ffmpeg -c copy + python"}
    totals = {}
    for name in ("plain", "overlay", "noscene", "baseline"):
        if name not in runs:
            continue
        r = runs[name]
        if "error" in r:
            print(f"{labels[name]:<28} FAILED: {r['error']}")
            continue
        cpu = r["cpu"]
        procs = [("pilogger-eyetracker", "module"), ("  its ffmpeg child", "ffmpeg")] if name != "baseline" else \
            [("ffmpeg -c copy", "ffmpeg"), ("python gaze client", "python")]
        # No ffmpeg child (the scene is written in process): the module alone.
        procs = [(label, key) for label, key in procs if key in cpu and (name != "noscene" or key != "ffmpeg")
                 and (name == "baseline" or key != "ffmpeg" or cpu[key]["rss_max_mib"] > 0)]
        total = sum(cpu[k]["cpu_pct"] for _, k in procs)
        totals[name] = total
        for i, (label, key) in enumerate(procs):
            c = cpu[key]
            sim = f"{cpu['sim']['cpu_pct']:>14.1f}" if i == 0 else ""
            print(f"{labels[name] if i == 0 else '':<28} {label:<22} {c['cpu_pct']:>7.1f} {c['max_1s_pct']:>7.1f} "
                  f"{c['rss_max_mib']:>8.1f} | {sim}")
        print(f"{'':<28} {'total':<22} {total:>7.1f}")

    print("\n2. kept in the measured window (rows whose sample the simulator produced in it / samples it sent)")
    print(f"{'run':<28} {'gaze':>14} {'imu':>14} {'events':>9} {'scene frames in file / sent':>30}")
    print(f"{'':<28} (scene: the whole recording, frames the simulator produced before the recorder was stopped)")
    for name in ("plain", "overlay", "noscene", "baseline"):
        if not ok(name):
            continue
        r = runs[name]
        g = r["gaze"]
        imu = r.get("imu")
        ev = r.get("events")
        sc = r.get("scene")
        print(f"{labels[name]:<28} {g['rows']:>6}/{g['sent']:<5} {fmt(g['kept_pct'], '.1f'):>1}% "
              f"{(str(imu['rows']) + '/' + str(imu['sent'])) if imu else '-':>14} "
              f"{(str(ev['rows']) + '/' + str(ev['sent'])) if ev else '-':>9} "
              f"{(str(sc['mp4_frames']) + '/' + str(sc['produced_until_stop']) + ' = ' + fmt(sc['kept_pct']) + ' %') if sc else '-':>30}"
              + (f" ({sc['complete_until_stop']} sent whole)" if sc and sc['complete_until_stop'] != sc['produced_until_stop'] else ""))
        ms = r.get("module_stats")
        if ms:
            print(f"{'':<28} module stats: lost {ms.get('packets_lost')}, late {ms.get('packets_late')}, "
                  f"reordered {ms.get('packets_reordered')}, untimed {ms.get('untimed_samples')}, "
                  f"scene frames dropped {ms.get('scene_frames_dropped')}, drops {ms.get('drops')}")
        if r.get("ffmpeg_warnings"):
            print(f"{'':<28} ffmpeg stderr: {len(r['ffmpeg_warnings'])} warning lines, first: "
                  f"{r['ffmpeg_warnings'][0][:90]}")

    if "latency" in runs or "baseline_latency" in runs:
        latency_table(runs, latency_mode)
    ratios(runs, args, latency_mode, totals)


def latency_table(runs, latency_mode):
    print(f"\n3. latency, gaze sample produced (device time) -> its CSV row "
          f"{'durable (fdatasync/fsync returned)' if latency_mode == 'strace' else 'VISIBLE in the file (written, not yet durable)'}, ms")
    print(f"{'recorder':<34} {'n':>6} {'p50':>8} {'p99':>8} {'max':>8} | {'written p50':>11} {'p99':>8} {'max':>8}")
    for name, label in (("latency", "pilogger-eyetracker"), ("baseline_latency", "python client (fsync once a s)")):
        if name not in runs:
            continue
        r = runs[name]
        if "error" in r:
            print(f"{label:<34} FAILED: {r['error']}")
            continue
        L = r["latency"]
        d, w = L["durable_ms"], L["written_ms"]
        print(f"{label:<34} {d['n'] or w['n']:>6} {fmt(d['p50'], '.1f'):>8} {fmt(d['p99'], '.1f'):>8} "
              f"{fmt(d['max'], '.1f'):>8} | {fmt(w['p50'], '.1f'):>11} {fmt(w['p99'], '.1f'):>8} {fmt(w['max'], '.1f'):>8}")
        if "syncs" in L:
            print(f"{'':<34} {L['writes']} writes, {L['syncs']} syncs (gap between syncs p50 "
                  f"{fmt(L['sync_gap_ms']['p50'], '.0f')} max {fmt(L['sync_gap_ms']['max'], '.0f')} ms; a sync call "
                  f"p50 {fmt(L['sync_call_ms']['p50'], '.2f')} max {fmt(L['sync_call_ms']['max'], '.1f')} ms)"
                  + (f"; {L['unmatched_rows']} rows unmatched" if L['unmatched_rows'] else ""))


def ratios(runs, args, latency_mode, totals):
    ok = lambda n: n in runs and "error" not in runs[n]  # noqa: E731
    lat = {n: runs[n]["latency"] for n in ("latency", "baseline_latency") if ok(n)}
    print("\n4. ratios, theirs / ours (above 1: pilogger does better)")
    if ok("plain") and ok("baseline"):
        b, p = runs["baseline"], runs["plain"]
        ours_all = totals["plain"]
        theirs_all = totals["baseline"]
        print(f"   CPU, everything recorded: (ffmpeg + python) {theirs_all:.1f} % / pilogger {ours_all:.1f} % = "
              f"{ratio(theirs_all, ours_all)}  (pilogger also records IMU, eye events, time echo)")
        if ok("noscene"):
            gaze_ours = totals["noscene"]
            scene_ours = ours_all - gaze_ours
            print(f"   CPU, gaze: python {b['cpu']['python']['cpu_pct']:.1f} % / pilogger scene: false "
                  f"{gaze_ours:.1f} % (gaze + IMU + events) = {ratio(b['cpu']['python']['cpu_pct'], gaze_ours)}")
            print(f"   CPU, scene: ffmpeg -c copy {b['cpu']['ffmpeg']['cpu_pct']:.1f} % / pilogger's scene share "
                  f"{scene_ours:.1f} % (overlay off minus scene: false{', preview included' if args.preview == 'on' else ''}) = "
                  f"{ratio(b['cpu']['ffmpeg']['cpu_pct'], scene_ours)}")
        print(f"   scene frames kept: ffmpeg {fmt(b['scene']['kept_pct'])} % / pilogger {fmt(p['scene']['kept_pct'])} % = "
              f"{ratio(b['scene']['kept_pct'], p['scene']['kept_pct'])}")
        print(f"   gaze rows kept: python {fmt(b['gaze']['kept_pct'])} % / pilogger {fmt(p['gaze']['kept_pct'])} % = "
              f"{ratio(b['gaze']['kept_pct'], p['gaze']['kept_pct'])}")
    if "latency" in lat and "baseline_latency" in lat:
        key = "durable_ms" if latency_mode == "strace" else "written_ms"
        o, t = lat["latency"][key], lat["baseline_latency"][key]
        for p in ("p50", "p99", "max"):
            print(f"   latency {p} ({'durable' if key == 'durable_ms' else 'written'}): python {fmt(t[p])} ms / "
                  f"pilogger {fmt(o[p])} ms = {ratio(t[p], o[p])}")


if __name__ == "__main__":
    main()

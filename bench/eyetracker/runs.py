"""The benchmark's runs: pilogger-eyetracker against neon-sim, and the ffmpeg + Python baseline."""
import json
import os
import signal
import subprocess
import sys
import time

from helpers import Sim, clock_pair, count_packets, csv_rows, kept, wait_for
from latency import Tailer, durable_latency, parse_strace
from procfs import CpuMeter, children, proc_comm

HERE = os.path.dirname(os.path.abspath(__file__))
STRACE = ["-f", "-ff", "--seccomp-bpf", "-ttt", "-T", "-y", "-s", "0",
          "-e", "trace=write,pwrite64,writev,pwritev,fdatasync,fsync", "-e", "signal=none"]
COUNTERS = {"packets_lost", "packets_late", "packets_reordered", "untimed_samples", "bad_payloads",
            "scene_frames_dropped", "drops", "events_dropped"}


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

#!/usr/bin/env python3
"""bench/gui: what the GUI costs, and how fast it shows a change.

Runs the supervisor with config/demo.yaml (simulated devices, recording) and pilogger-gui on its
own Xvfb display, then:

1. CPU and memory: the GUI showing every preview of the demo at its default rate, for --seconds
   (CPU from /proc/<pid>/stat, RSS from /proc/<pid>/status, sampled once a second). The X
   server's CPU is reported beside it: drawing the previews costs it too.
2. Supervisor-to-screen latency, with a second GUI started with --trace-latency: notes sent to
   the supervisor (stamped by it on arrival, CLOCK_MONOTONIC) until the note list starts to
   repaint, and trial start/stop (from the moment the command is sent) until the trial label
   repaints. The alternative a user would pick, a script polling `pilogger status --json` once
   a second (as the Python tool does), runs at the same time and sees the same changes; the
   ratio is printed.

  python3 bench/gui/run.py [--seconds 30] [--notes-per-s 3]
Needs a build with the GUI (./scripts/build.sh; PILOGGER_BIN overrides build/bin) and Xvfb.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("PILOGGER_BIN", os.path.join(SOURCE, "build", "bin"))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(p / 100 * len(values))) - 1))]


def start_xvfb(size):
    """Xvfb on a free display (it tells which through -displayfd)."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{size}x24", "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        display = f.readline().strip()
    if not display:
        raise RuntimeError("Xvfb did not start")
    return proc, f":{display}"


class Control:
    """One request at a time over the control socket (a fresh connection each, like the CLI)."""

    def __init__(self, path):
        self.path = path
        self.next_id = 1
        self.lock = threading.Lock()

    def request(self, cmd, args=None):
        with self.lock:
            rid = self.next_id
            self.next_id += 1
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.path)
        f = s.makefile("rb")
        s.sendall((json.dumps({"id": rid, "cmd": cmd, "args": args or {}}) + "\n").encode())
        while True:
            msg = json.loads(f.readline())
            if msg.get("id") == rid:
                s.close()
                return msg

    def wait_up(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status = self.request("status")["result"]
                mods = [m for m in status["modules"] if m["enabled"]]
                if status["trial"] and mods and all(m["state"] == "recording" for m in mods):
                    return status
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        raise RuntimeError("the supervisor did not come up recording")


def run_gui(env, display, size, extra):
    genv = dict(env, DISPLAY=display)
    return subprocess.Popen([os.path.join(BIN, "pilogger-gui"), "--no-start", "--size", size, *extra],
                            env=genv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def measure_cost(env, seconds, size):
    xvfb, display = start_xvfb("1920x1080")
    gui = run_gui(env, display, size, [])
    try:
        time.sleep(4)  # connected, previews flowing
        g0, x0, t0 = cpu_seconds(gui.pid), cpu_seconds(xvfb.pid), time.monotonic()
        rss = []
        for _ in range(int(seconds)):
            time.sleep(1)
            rss.append(rss_mib(gui.pid))
        g1, x1, t1 = cpu_seconds(gui.pid), cpu_seconds(xvfb.pid), time.monotonic()
        return {"gui_cpu": 100 * (g1 - g0) / (t1 - t0), "xvfb_cpu": 100 * (x1 - x0) / (t1 - t0),
                "rss_mean": statistics.mean(rss), "rss_max": max(rss)}
    finally:
        gui.terminate()
        gui.wait()
        xvfb.terminate()
        xvfb.wait()


class Poller(threading.Thread):
    """What a user's script does: `pilogger status --json` once a second."""

    def __init__(self, env):
        super().__init__(daemon=True)
        self.env = env
        self.stop = threading.Event()
        self.samples = []  # (time seen, status)

    def run(self):
        while not self.stop.is_set():
            r = subprocess.run([os.path.join(BIN, "pilogger"), "status", "--json"], env=self.env,
                               capture_output=True, text=True)
            if r.returncode == 0:
                self.samples.append((time.monotonic_ns(), json.loads(r.stdout)))
            self.stop.wait(1.0)

    def first_seen(self, predicate, after_ns):
        for t, status in self.samples:
            if t >= after_ns and predicate(status):
                return t
        return None


def measure_latency(env, control, seconds, notes_per_s, size, trace):
    xvfb, display = start_xvfb("1920x1080")
    gui = run_gui(env, display, size, ["--trace-latency", trace, "--watch-event-loop"])
    poller = Poller(env)
    notes = {}   # note_id -> supervisor stamp
    trials = []  # (sent_ns, trial number, active)
    try:
        deadline = time.monotonic() + 15
        while not (os.path.exists(trace) and b'"subscribed"' in open(trace, "rb").read()):
            if time.monotonic() > deadline:
                raise RuntimeError("the GUI did not connect")
            time.sleep(0.1)
        time.sleep(2)
        poller.start()
        time.sleep(1.5)

        stop = threading.Event()

        def send_notes():
            i = 0
            while not stop.is_set():
                i += 1
                r = control.request("note", {"text": f"bench note {i}"})
                if r.get("ok"):
                    notes[r["result"]["note_id"]] = None
                stop.wait(1.0 / notes_per_s)

        sender = threading.Thread(target=send_notes, daemon=True)
        sender.start()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(3.3)  # never in step with the poller's second
            status = control.request("status")["result"]
            active = status["trial"] is not None
            t0 = time.monotonic_ns()
            r = control.request("trial_stop" if active else "trial_start", {"label": "bench"})
            if r.get("ok"):
                trials.append((t0, r["result"]["trial"], not active))
        stop.set()
        sender.join()
        time.sleep(2.5)  # the last changes reach the screen and the poller
    finally:
        poller.stop.set()
        poller.join()
        gui.terminate()  # SIGTERM closes the window like Quit: it prints its event-loop gaps
        _, err = gui.communicate()
        xvfb.terminate()
        xvfb.wait()

    lines = [json.loads(l) for l in open(trace) if l.strip()]
    gui_notes, poll_notes, gui_trials, poll_trials = [], [], [], []
    for line in lines:
        if line["what"] == "note" and line.get("painted_ns") and line["note_id"] in notes:
            stamp = line["event_mono_ns"]
            gui_notes.append((line["painted_ns"] - stamp) / 1e6)
            seen = poller.first_seen(lambda s, n=line["note_id"]: s["notes"]["next_id"] > n, 0)
            if seen is not None:
                poll_notes.append((seen - stamp) / 1e6)
    for sent, number, active in trials:
        shown = [l["painted_ns"] for l in lines if l["what"] == "trial" and l["trial"] == number
                 and l["active"] == active and l.get("painted_ns") and l["painted_ns"] >= sent]
        if shown:
            gui_trials.append((min(shown) - sent) / 1e6)

        def matches(s, number=number, active=active):
            t = s["trial"]
            return (t is not None and t["number"] == number) if active else (t is None or t["number"] != number)
        seen = poller.first_seen(matches, sent)
        if seen is not None:
            poll_trials.append((seen - sent) / 1e6)
    return gui_notes, poll_notes, gui_trials, poll_trials, err


def row(name, gui, poll):
    g50, g99, p50, p99 = percentile(gui, 50), percentile(gui, 99), percentile(poll, 50), percentile(poll, 99)
    print(f"{name:<22} {len(gui):>4} {g50:>8.2f} {g99:>8.2f} | {len(poll):>4} {p50:>8.1f} {p99:>8.1f} | "
          f"p50 {p50 / g50:>5.0f}x  p99 {p99 / g99:>5.0f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--notes-per-s", type=float, default=3)
    parser.add_argument("--size", default="1280x800", help="GUI window size")
    args = parser.parse_args()
    if not shutil.which("Xvfb"):
        sys.exit("bench/gui needs Xvfb (apt-get install xvfb)")

    tmp = tempfile.mkdtemp(prefix="pilogger-bench-gui-")
    runtime = os.path.join(tmp, "run")
    os.mkdir(runtime, 0o700)
    config = os.path.join(tmp, "demo.yaml")
    with open(os.path.join(SOURCE, "config", "demo.yaml")) as f:
        text = f.read()
    with open(config, "w") as f:
        f.write("\n".join(f"data_dir: {tmp}/data" if l.startswith("data_dir:") else l for l in text.splitlines()) + "\n")
    env = dict(os.environ, XDG_RUNTIME_DIR=runtime, XDG_CONFIG_HOME=os.path.join(tmp, "config"))
    sup = subprocess.Popen([os.path.join(BIN, "pilogger"), "run", "--config", config, "--record"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    control = Control(os.path.join(runtime, "pilogger", "control.sock"))
    try:
        status = control.wait_up()
        previews = [m["name"] for m in status["modules"] if "preview" in (m.get("capabilities") or [])]
        print(f"GUI benchmark (host: {os.uname().machine}, {os.cpu_count()} cores, window {args.size})")
        print(f"demo modules: {', '.join(m['name'] + ' (' + m['type'] + ')' for m in status['modules'])}; "
              f"previews: {', '.join(previews) or 'none'}"
              f"{'' if any(m['type'] == 'eyetracker' for m in status['modules']) else '; no eye tracker module in this build'}")

        cost = measure_cost(env, args.seconds, args.size)
        print(f"\n1. cost over {args.seconds:.0f} s, recording, previews at their default rate:")
        print(f"   pilogger-gui CPU {cost['gui_cpu']:.1f} % of one core, RSS {cost['rss_mean']:.1f} MiB "
              f"(max {cost['rss_max']:.1f}); Xvfb drawing it: {cost['xvfb_cpu']:.1f} %")

        trace = os.path.join(tmp, "trace.jsonl")
        gui_notes, poll_notes, gui_trials, poll_trials, err = measure_latency(
            env, control, args.seconds, args.notes_per_s, args.size, trace)
        print(f"\n2. supervisor-to-screen latency over {args.seconds:.0f} s, ms "
              f"(pilogger-gui vs `pilogger status --json` polled once a second):")
        print(f"{'':<22} {'n':>4} {'gui p50':>8} {'p99':>8} | {'n':>4} {'poll p50':>8} {'p99':>8} | poll/gui")
        row("note shown", gui_notes, poll_notes)
        row("trial start/stop shown", gui_trials, poll_trials)
        gap = [l for l in err.splitlines() if "event loop" in l]
        if gap:
            print("   " + gap[-1].replace("pilogger-gui: ", "GUI "))
    finally:
        try:
            control.request("shutdown")
        except OSError:
            pass
        try:
            sup.wait(timeout=60)
        except subprocess.TimeoutExpired:
            sup.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

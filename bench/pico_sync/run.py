#!/usr/bin/env python3
"""bench/pico_sync: accuracy of the Pico W clock fit and the supervisor's CPU cost for the link.

Runs the real supervisor (`pilogger run`, no modules) with the Pico emulator at USB full-speed-
like timing: each direction 0.1 ms plus U(0, 0.9 ms) (a 1 ms frame), a crystal 23.5 ppm fast,
0.1 % of the Pico's lines lost. A trial starts every 30 s (its coded flash and the LED give LED
changes to check). At the end it compares, against the emulator's ground truth:
  - every LED change in pico/led.csv, mapped through the live fit (what a user gets);
  - the live fit at every PING exchange of pico/sync.csv;
  - the final drift estimate;
and reports the supervisor's CPU use over the run, minus a baseline run without the Pico.

  python3 bench/pico_sync/run.py                # 10 minutes (the figure to report)
  python3 bench/pico_sync/run.py --duration 60  # a quick look
Needs a build (./scripts/build.sh, or PILOGGER_BIN=<build>/bin).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("PILOGGER_BIN", os.path.join(SOURCE, "build", "bin"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
import test_pico_sync as analysis  # noqa: E402  (truth log and error figures)
from harness import read_csv  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


class Supervisor:
    def __init__(self, tmp, config_text):
        self.env = dict(os.environ, XDG_RUNTIME_DIR=os.path.join(tmp, "run"))
        os.makedirs(self.env["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
        self.config = os.path.join(tmp, "config.yaml")
        with open(self.config, "w") as f:
            f.write(config_text)
        self.proc = subprocess.Popen([os.path.join(BIN, "pilogger"), "run", "--config", self.config],
                                     env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cli(self, *args):
        r = subprocess.run([os.path.join(BIN, "pilogger"), *args], env=self.env, capture_output=True, text=True)
        return r

    def status(self):
        r = self.cli("status", "--json")
        return json.loads(r.stdout) if r.returncode == 0 else None

    def wait(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.status()
            if s is not None and predicate(s):
                return s
            time.sleep(0.2)
        raise SystemExit("timed out waiting for the supervisor")

    def stop(self):
        self.cli("shutdown")
        self.proc.wait(timeout=60)


def baseline_cpu(tmp, seconds):
    """CPU of an idle supervisor with a session open and no Pico."""
    folder = os.path.join(tmp, "baseline")
    os.makedirs(folder)
    sup = Supervisor(folder, f"data_dir: {folder}/data\nlog_level: warning\nmodules: {{}}\n")
    sup.wait(lambda s: s["session"] is not None, 10)
    c0, t0 = cpu_seconds(sup.proc.pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(sup.proc.pid), time.monotonic()
    sup.stop()
    return (c1 - c0) / (t1 - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=600, help="seconds of session (default 600)")
    p.add_argument("--skew-ppm", type=float, default=23.5)
    p.add_argument("--latency-us", type=float, default=100)
    p.add_argument("--jitter-us", type=float, default=900, help="uniform extra delay per direction")
    p.add_argument("--loss", type=float, default=0.001)
    p.add_argument("--trial-every", type=float, default=30)
    p.add_argument("--trial-length", type=float, default=20)
    p.add_argument("--baseline", type=float, default=60, help="seconds of baseline run without the Pico (0: skip)")
    p.add_argument("--keep", action="store_true", help="keep the session folder")
    args = p.parse_args()

    tmp = tempfile.mkdtemp(prefix="pilogger-pico-bench-")
    try:
        base = baseline_cpu(tmp, args.baseline) if args.baseline > 0 else None
        truth_log = os.path.join(tmp, "truth.log")
        config = analysis.pico_config(os.path.join(tmp, "data"), truth_log, log_level="warning",
                                      skew_ppm=args.skew_ppm, latency_us=args.latency_us,
                                      jitter_us=args.jitter_us, jitter_dist="uniform", loss=args.loss,
                                      offset_us=4200000)
        sup = Supervisor(tmp, config)
        sup.wait(lambda s: (s["pico"] or {}).get("connected"), 15)
        emulator = children(sup.proc.pid)
        t_start = time.monotonic()
        c0 = cpu_seconds(sup.proc.pid)
        e0 = sum(cpu_seconds(pid) for pid in emulator)
        trials = 0
        next_trial = t_start + 10  # the fit has settled by then
        print(f"running {args.duration:.0f} s ...", file=sys.stderr)
        while time.monotonic() - t_start < args.duration:
            now = time.monotonic()
            if now >= next_trial:
                sup.cli("trial", "start")
                time.sleep(min(args.trial_length, max(0.0, args.duration - (now - t_start) - 1)))
                sup.cli("trial", "stop")
                trials += 1
                next_trial += args.trial_every
            time.sleep(0.2)
        elapsed = time.monotonic() - t_start
        cpu = (cpu_seconds(sup.proc.pid) - c0) / elapsed
        emu_cpu = sum(cpu_seconds(pid) for pid in emulator if os.path.exists(f"/proc/{pid}")) - e0
        final = sup.status()["pico"]
        session = sup.status()["session"]["dir"]
        sup.stop()

        truth = analysis.read_truth(truth_log)
        led, unmatched, rows = analysis.led_errors(session, truth, args.skew_ppm)
        fit = analysis.fit_errors(session, truth, args.skew_ppm)
        sync = read_csv(os.path.join(session, "pico", "sync.csv"))
        settled = analysis.fit_errors(session, truth, args.skew_ppm, settle_s=10)
        drift = float(sync[-1]["drift_ppm"])
        rtts = sorted(float(r["rtt_us"]) for r in sync)
        kept_rtts = sorted(float(r["rtt_us"]) for r in sync if r["kept"] == "1")

        print(f"pico_sync: {elapsed:.0f} s, {trials} trials, emulator +{args.skew_ppm} ppm, "
              f"{args.latency_us:.0f} us + U(0, {args.jitter_us:.0f} us) each way, loss {args.loss:.2%}")
        print("  " + analysis.describe("LED changes vs truth", analysis.percentiles(led)))
        print("  " + analysis.describe("live fit at every exchange vs truth", analysis.percentiles(fit)))
        print("  " + analysis.describe("  the same after the first 10 s", analysis.percentiles(settled)))
        print(f"  drift {drift:+.3f} ppm, error {drift - args.skew_ppm:+.3f} ppm; final residual "
              f"{final['fit']['residual_us']:.1f} us over {final['fit']['points']} points")
        print(f"  rtt p50 {rtts[len(rtts) // 2]:.0f} us (all exchanges), kept p50 {kept_rtts[len(kept_rtts) // 2]:.0f} us; "
              f"{len(sync)} exchanges, {final['lines_lost']} Pico lines lost, {len(unmatched)} LED rows unmatched, "
              f"{len(rows)} LED rows for {len(truth)} changes")
        line = f"  supervisor CPU {cpu * 100:.2f} %"
        if base is not None:
            line += f" (idle supervisor {base * 100:.2f} %: the link costs {(cpu - base) * 100:.2f} % of one core)"
        print(line)
        print(f"  emulator (python) CPU {emu_cpu / elapsed * 100:.1f} %")
        for r in unmatched:
            print(f"  unmatched LED row: {dict(r)}")
        if args.keep:
            print(f"  session kept in {session}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

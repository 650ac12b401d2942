"""Pico W sync link through the emulator: the recorded fit against the emulator's ground truth.

A 60 s session with the emulator at +40 ppm, 0.3 ms +- 0.2 ms one-way latency and 1 % of the
Pico's lines lost. Three trials flash their codes. Every LED change in pico/led.csv must map to
within 200 us of when the emulated pin really changed, and the drift estimate must end within
2 ppm of the truth.

The module-level helpers (truth log, error figures) are shared with test_pico_faults.py and
bench/pico_sync/run.py.
"""
import json
import os
import statistics
import sys
import time
import unittest

from harness import Rig, read_csv, wait_for


def pico_config(data_dir, truth_log, log_level="info", **emulator):
    """A config with no modules and the Pico emulator; emulator knobs as keyword arguments."""
    knobs = {"offset_us": 123456789, "seed": 4, "truth_log": truth_log}
    knobs.update(emulator)
    lines = [f"data_dir: {data_dir}", f"log_level: {log_level}", "disk_reserve_mb: 10", "modules: {}",
             "pico:", "  device: emulator", "  led_pin: 15", "  emulator:"]
    lines += [f"    {k}: {v}" for k, v in knobs.items()]
    return "\n".join(lines) + "\n"


def read_truth(path):
    """The emulator's --log: [(mono_ns, pico_us, boot, channel, level)]."""
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] == "LED":
                out.append((int(parts[1]), int(parts[2]), parts[3], int(parts[4]), int(parts[5])))
    return out


def segment_boots(session_dir):
    with open(os.path.join(session_dir, "session.json")) as f:
        info = json.load(f)["pico"]
    return {s["segment"]: s["boot"] for s in info["segments"]}


def led_errors(session_dir, truth, skew_ppm):
    """Matches every led.csv row to its truth entry. Returns (errors_us, unmatched_rows, rows).

    The firmware stamps an LED line just after the pin write, so its pico_us is a little later
    than the truth's (much later if the emulator process was descheduled in between); the
    expected host time moves by that difference at the Pico's rate.
    """
    boots = segment_boots(session_dir)
    rows = read_csv(os.path.join(session_dir, "pico", "led.csv"))
    errors = []
    unmatched = []
    for r in rows:
        boot = boots[int(r["segment"])]
        pico_us = int(r["pico_us"])
        candidates = [t for t in truth if t[2] == boot and t[3] == int(r["channel"]) and t[4] == int(r["level"])
                      and 0 <= pico_us - t[1] < 50000]  # code edges are >= 100 ms apart
        if not candidates or not r["mono_ns"]:
            unmatched.append(r)
            continue
        t = min(candidates, key=lambda t: pico_us - t[1])
        expected = t[0] + (pico_us - t[1]) * 1000 / (1 + skew_ppm * 1e-6)
        errors.append((int(r["mono_ns"]) - expected) / 1000)
    return errors, unmatched, rows


def fit_errors(session_dir, truth, skew_ppm, settle_s=0):
    """The live fit (each sync.csv row) against the true clock at host_t4_ns, in us; rows in the
    first settle_s seconds of each segment are left out."""
    anchor = {}
    for t in truth:
        anchor.setdefault(t[2], t)
    errors = []
    first = {}
    for r in read_csv(os.path.join(session_dir, "pico", "sync.csv")):
        first.setdefault(r["segment"], int(r["host_t1_ns"]))
        if int(r["host_t1_ns"]) - first[r["segment"]] < settle_s * 1e9:
            continue
        if not r["offset_us"] or r["boot"] not in anchor:
            continue
        m, p = anchor[r["boot"]][0], anchor[r["boot"]][1]
        t4 = int(r["host_t4_ns"])
        true_pico = p + (t4 - m) * (1 + skew_ppm * 1e-6) / 1000
        fitted_pico = t4 / 1000 + float(r["offset_us"])
        errors.append(fitted_pico - true_pico)
    return errors


def percentiles(values):
    a = sorted(abs(v) for v in values)
    if not a:
        return {"n": 0}
    pick = lambda q: a[min(len(a) - 1, int(q * len(a)))]
    return {"n": len(a), "p50": pick(0.5), "p99": pick(0.99), "max": a[-1], "mean": statistics.fmean(values)}


def describe(name, stats):
    if not stats.get("n"):
        return f"{name}: no samples"
    return (f"{name}: n={stats['n']} |err| p50={stats['p50']:.1f} us p99={stats['p99']:.1f} us "
            f"max={stats['max']:.1f} us (mean {stats['mean']:+.1f} us)")


class PicoSync(unittest.TestCase):
    SKEW_PPM = 40

    def setUp(self):
        self.rig = Rig()
        self.addCleanup(self.rig.cleanup)
        self.truth_log = os.path.join(self.rig.tmp, "truth.log")
        # 0.3 ms +- 0.2 ms each way: 100 us plus U(0, 400 us).
        with open(self.rig.config, "w") as f:
            f.write(pico_config(self.rig.data, self.truth_log, skew_ppm=self.SKEW_PPM, latency_us=100,
                                jitter_us=400, jitter_dist="uniform", loss=0.01))

    def test_fit_maps_every_led_change_within_200_us(self):
        rig = self.rig
        rig.start()
        t0 = time.monotonic()
        wait_for(lambda: (rig.status()["pico"]["fit"] or {}).get("span_s", 0) >= 8, 20,
                 what="8 s of clock fit")
        report = rig.cli("status").stdout
        self.assertRegex(report, r"pico +connected on .*pico-emulator.tty, fw 1\.0\.0 \(clock segment 1\), "
                                 r"offset -?\d+\.\d+ s, drift [+-]\d+\.\d+ ppm, residual \d+ us, LED off")
        for n in (1, 2, 3):
            rig.cli("trial", "start")
            time.sleep(12)
            rig.cli("trial", "stop")
            time.sleep(3)
        time.sleep(max(0.0, 62 - (time.monotonic() - t0)))
        status = rig.status()["pico"]
        code, out, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        self.assertEqual(status["segment"], 1)
        self.assertGreater(status["lines_lost"], 0)  # 1 % of ~600 lines
        self.assertEqual(status["lines_bad"], 0)

        session = rig.session_dir()
        truth = read_truth(self.truth_log)
        errors, unmatched, rows = led_errors(session, truth, self.SKEW_PPM)
        fit = fit_errors(session, truth, self.SKEW_PPM)
        sync_rows = read_csv(os.path.join(session, "pico", "sync.csv"))
        drift = float(sync_rows[-1]["drift_ppm"])
        led_stats, fit_stats = percentiles(errors), percentiles(fit)
        sys.stderr.write("\n" + describe("LED changes vs truth", led_stats) + "\n" +
                         describe("fit at every exchange vs truth", fit_stats) + "\n" +
                         f"drift: {drift:+.3f} ppm (truth {self.SKEW_PPM:+d}), error {drift - self.SKEW_PPM:+.3f} ppm; "
                         f"{len(truth)} LED changes, {len(rows)} rows, {status['lines_lost']} lines lost\n")

        self.assertEqual(unmatched, [])
        # Each trial: the edges of its code (1110, n in 16 bits, 1010), LED on after it, off at the stop.
        codes = ["0" + f"1110{n:016b}1010" + "0" for n in (1, 2, 3)]
        expected = sum(sum(a != b for a, b in zip(c, c[1:])) + 2 for c in codes)
        self.assertEqual(len(truth), expected)
        # Rows missing only where the Pico's LED line was one of the 1 % lost.
        self.assertGreaterEqual(len(rows), len(truth) - 3)
        self.assertTrue(all(abs(e) < 200 for e in errors), errors)
        self.assertLess(abs(drift - self.SKEW_PPM), 2)
        self.assertLess(fit_stats["p99"], 200)

        # Every exchange is logged, one kept per burst, with the fit beside it.
        self.assertGreater(len(sync_rows), 8 * 55)
        kept = [r for r in sync_rows if r["kept"] == "1"]
        self.assertGreater(len(kept), 55)
        self.assertTrue(all(r["segment"] == "1" for r in sync_rows))
        for r in kept:
            self.assertLessEqual(float(r["rtt_us"]), min(float(x["rtt_us"]) for x in sync_rows
                                                         if abs(int(x["host_t1_ns"]) - int(r["host_t1_ns"])) < 100e6))

        # The code starts at the trial's start instant and the LED goes off at the stop instant.
        events = rig.events()
        starts = [int(e["mono_ns"]) for e in events if e["event"] == "trial_start"]
        stops = [int(e["mono_ns"]) for e in events if e["event"] == "trial_stop"]
        self.assertEqual(len(starts), 3)
        self.assertEqual(len([e for e in events if e["event"] == "pico_code"]), 3)
        for n, (start, stop) in enumerate(zip(starts, stops), 1):
            edges = [t for t in truth if start - 5e6 < t[0] < stop + 5e6]
            # The emulated firmware is a Python process: on a busy machine an edge can come a few
            # ms late (its LED line then carries the real time), never early.
            self.assertEqual(edges[0][4], 1)
            self.assertTrue(-1e6 < edges[0][0] - start < 20e6, f"trial {n} code not at its start instant")
            self.assertEqual(edges[-1][4], 0)
            self.assertTrue(-1e6 < edges[-1][0] - stop < 20e6, f"trial {n} LED not off at the stop instant")
            # 1110 | trial number in 16 bits | 1010, 100 ms per bit, then on for the trial.
            bits = f"1110{n:016b}1010"
            level_at = lambda ns: [t[4] for t in edges if t[0] <= ns][-1] if any(t[0] <= ns for t in edges) else 0
            decoded = "".join(str(level_at(edges[0][0] + (i + 0.5) * 100e6)) for i in range(24))
            self.assertEqual(decoded, bits)
            self.assertEqual(level_at(edges[0][0] + 3e9), 1)


if __name__ == "__main__":
    unittest.main()

"""A kind of module that lives only in tests/ (tests/example_module/ticker.cpp, built from the
module SDK alone): the supervisor and `pilogger config check` learn its settings from
`pilogger-ticker --describe`, and a session records its CSV like any other module's."""
import json
import os
import subprocess
import unittest

from harness import BIN, PILOGGER, Rig, read_csv, wait_for, yaml_config

TICKER = os.path.join(BIN, "pilogger-ticker")


class ExampleModule(unittest.TestCase):
    def test_it_describes_itself(self):
        out = subprocess.run([TICKER, "--describe"], check=True, capture_output=True, text=True).stdout
        description = json.loads(out)
        self.assertEqual(description["kind"], "ticker")
        rate = next(s for s in description["settings"] if s["key"] == "rate_hz")
        self.assertEqual((rate["type"], rate["default"], rate["min"], rate["max"]), ("number", 10, 0.1, 1000))

    def test_pilogger_devices_lists_what_it_finds(self):
        # A kind with the capability "devices" is listed under its summary, with no change to pilogger.
        human = subprocess.run([PILOGGER, "devices"], check=True, capture_output=True, text=True, timeout=60).stdout
        self.assertIn("An example module: a row per tick on the host's clock:\n  CLOCK_MONOTONIC (the host's clock)\n",
                      human)
        listing = subprocess.run([PILOGGER, "devices", "--json"], check=True, capture_output=True, text=True,
                                 timeout=60).stdout
        self.assertEqual(json.loads(listing)["clocks"], [{"name": "CLOCK_MONOTONIC"}])

    def check(self, rig, text):
        with open(rig.config, "w") as f:
            f.write(text)
        return subprocess.run([PILOGGER, "config", "check", rig.config], capture_output=True, text=True, env=rig.env)

    def test_config_check_names_file_line_column_and_key(self):
        rig = Rig()
        self.addCleanup(rig.cleanup)
        r = self.check(rig, f"data_dir: {rig.data}\nmodules:\n  tick:\n    type: ticker\n    rate_hz: 0\n")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(f"{rig.config}:5:14: modules.tick.rate_hz: expected a number from 0.1 to 1000, got 0", r.stderr)
        r = self.check(rig, f"data_dir: {rig.data}\nmodules:\n  tick:\n    type: ticker\n    lable: x\n")
        self.assertIn(f"{rig.config}:5:5: modules.tick.lable: unknown key; expected one of: ", r.stderr)
        self.assertIn("label", r.stderr)
        r = self.check(rig, f"data_dir: {rig.data}\nmodules:\n  tick:\n    type: ticker\n    rate_hz: 50\n")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_a_session_records_its_rows(self):
        rig = Rig(modules={"tick": {"type": "ticker", "rate_hz": 100, "label": '"a, b"'}})
        self.addCleanup(rig.cleanup)
        rig.start("--record")
        rig.wait_all("recording")
        wait_for(lambda: rig.module("tick")["stats"].get("ticks", 0) >= 50, 10, what="50 ticks")
        status = rig.module("tick")
        self.assertIn("ticks", status["stats"])
        rig.cli("trial", "stop")
        rig.wait_all("ready")
        code, out, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        rows = read_csv(os.path.join(rig.session_dir(), "ticker", "tick", "trial_001_ticks.csv"))
        self.assertGreaterEqual(len(rows), 50)
        self.assertEqual([int(r["tick"]) for r in rows], list(range(len(rows))))
        mono = [int(r["mono_ns"]) for r in rows]
        self.assertTrue(all(b - a == 10_000_000 for a, b in zip(mono, mono[1:])))
        self.assertEqual({r["label"] for r in rows}, {"a, b"})
        session = json.load(open(os.path.join(rig.session_dir(), "session.json")))
        self.assertEqual(session["config"]["effective"]["modules"]["tick"]["settings"], {"rate_hz": 100, "label": "a, b"})


if __name__ == "__main__":
    unittest.main()

"""Pico W link faults through the emulator: unplug and replug, reboot, a crash to the REPL, and a
Pico that is configured but absent. The recording goes on through all of them."""
import collections
import os
import time
import unittest

import test_pico_sync as pico
from harness import Rig, read_csv, wait_for


def sync_rows(rig):
    return read_csv(os.path.join(rig.session_dir(), "pico", "sync.csv"))


class PicoFaults(unittest.TestCase):
    def rig_with(self, **knobs):
        rig = Rig()
        self.addCleanup(rig.cleanup)
        truth = os.path.join(rig.tmp, "truth.log")
        knobs.setdefault("latency_us", 200)
        knobs.setdefault("jitter_us", 100)
        with open(rig.config, "w") as f:
            f.write(pico.pico_config(rig.data, truth, **knobs))
        return rig, truth

    def assert_segments_fitted_alone(self, rows):
        """fit_points counts only the kept exchanges of the row's own segment: no fit across."""
        # The rows of one burst are written together, after its kept exchange joined the fit.
        bursts = []
        for r in rows:
            if bursts and r["segment"] == bursts[-1][0]["segment"] and \
                    int(r["host_t1_ns"]) - int(bursts[-1][0]["host_t1_ns"]) < 500e6:
                bursts[-1].append(r)
            else:
                bursts.append([r])
        kept = collections.Counter()
        boots = {}
        for burst in bursts:
            seg = burst[0]["segment"]
            boots.setdefault(seg, burst[0]["boot"])
            self.assertLessEqual(sum(r["kept"] == "1" for r in burst), 1)
            kept[seg] += sum(r["kept"] == "1" for r in burst)
            for r in burst:
                self.assertEqual(r["boot"], boots[seg])
                self.assertEqual(int(r["fit_points"]), kept[seg], f"segment {seg} row {r}")
        self.assertEqual(len(set(boots.values())), len(boots), "each segment has its own boot id")
        return kept

    def assert_leds_match_truth(self, rig, truth_log, skew_ppm):
        errors, unmatched, rows = pico.led_errors(rig.session_dir(), pico.read_truth(truth_log), skew_ppm)
        self.assertEqual(unmatched, [])
        self.assertTrue(errors)
        self.assertTrue(all(abs(e) < 200 for e in errors), errors)
        return rows

    def test_unplug_and_replug_during_a_trial(self):
        rig, truth = self.rig_with(skew_ppm=-25, unplug_after_s=7, replug_after_s=3)
        rig.start("--record")
        wait_for(lambda: rig.status()["trial"] is not None, 10, what="the trial")
        wait_for(lambda: not rig.status()["pico"]["connected"], 15, what="the unplug")
        s = rig.status()
        self.assertEqual(s["pico"]["state"], "disconnected")
        self.assertEqual(s["trial"]["number"], 1)  # recording goes on
        wait_for(lambda: rig.status()["pico"]["segment"] == 2 and rig.status()["pico"]["led"] == "on", 15,
                 what="the replugged Pico, LED on again")
        wait_for(lambda: (rig.status()["pico"]["fit"] or {}).get("span_s", 0) >= 3, 10, what="a fit of the new boot")
        self.assertEqual(rig.status()["trial"]["number"], 1)
        rig.cli("trial", "stop")
        time.sleep(0.5)
        code, out, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        self.assertIn("Pico W disconnected", err)

        names = [e["event"] for e in rig.events()]
        self.assertEqual(names.count("pico_disconnected"), 1)
        self.assertEqual(names.count("pico_connected"), 2)
        self.assertEqual(names.count("pico_segment"), 2)
        self.assertLess(names.index("trial_start"), names.index("pico_disconnected"))
        self.assertLess(names.index("pico_disconnected"), names.index("trial_stop"))
        disconnect = next(e for e in rig.events() if e["event"] == "pico_disconnected")
        self.assertEqual(disconnect["module"], "pico")
        self.assertEqual(disconnect["trial"], "1")

        kept = self.assert_segments_fitted_alone(sync_rows(rig))
        self.assertEqual(set(kept), {"1", "2"})
        rows = self.assert_leds_match_truth(rig, truth, -25)
        self.assertTrue(any(r["segment"] == "2" and r["level"] == "1" and r["cmd_id"] == "t1on" for r in rows))

    def test_reboot_starts_a_new_segment(self):
        rig, truth = self.rig_with(skew_ppm=60, reboot_after_s=6)
        rig.start("--record")
        wait_for(lambda: rig.status()["pico"]["segment"] == 2, 15, what="the reboot")
        wait_for(lambda: (rig.status()["pico"]["fit"] or {}).get("span_s", 0) >= 6, 15, what="a fit of the new boot")
        rig.cli("trial", "stop")
        time.sleep(0.5)
        code, out, err = rig.shutdown()
        self.assertEqual(code, 0, err)

        events = rig.events()
        names = [e["event"] for e in events]
        self.assertEqual(names.count("pico_segment"), 2)
        self.assertNotIn("pico_disconnected", names)  # the port stayed open
        rows = sync_rows(rig)
        kept = self.assert_segments_fitted_alone(rows)
        self.assertGreaterEqual(kept["2"], 3)
        # The first kept exchange of the new boot starts a fit of one point: nothing carried over.
        first = next(r for r in rows if r["segment"] == "2" and r["kept"] == "1")
        self.assertEqual(first["fit_points"], "1")
        self.assertEqual(float(first["drift_ppm"]), 0.0)
        last = rows[-1]
        self.assertEqual(last["segment"], "2")
        self.assertLess(abs(float(last["drift_ppm"]) - 60), 40)  # six seconds of data only
        led_rows = self.assert_leds_match_truth(rig, truth, 60)
        self.assertTrue(any(r["segment"] == "2" and r["level"] == "1" for r in led_rows))  # on again after the boot

    def test_repl_prompt_is_recovered(self):
        rig, truth = self.rig_with(repl_after_s=4)
        rig.start()
        wait_for(lambda: any(e["event"] == "pico_repl" for e in rig.events()), 15, what="the REPL prompt")
        wait_for(lambda: rig.status()["pico"]["segment"] == 2 and rig.status()["pico"]["connected"], 10,
                 what="the soft reboot")
        code, out, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        self.assertIn("MicroPython prompt", err)
        self.assert_segments_fitted_alone(sync_rows(rig))

    def test_absent_pico_warns_once_and_the_session_runs(self):
        rig = Rig()
        self.addCleanup(rig.cleanup)
        missing = "/dev/serial/by-id/usb-MicroPython_Board_in_FS_mode_0000000000000000-if00"
        with open(rig.config, "w") as f:
            f.write(f"data_dir: {rig.data}\nlog_level: info\ndisk_reserve_mb: 10\nmodules:\n  notes: {{}}\n"
                    f"pico:\n  device: {missing}\n  led_pin: 15\n")
        t0 = time.monotonic()
        rig.start("--record")
        wait_for(lambda: rig.status()["trial"] is not None, 10, what="the trial")
        self.assertLess(time.monotonic() - t0, 5)  # nothing waits for a Pico that is not there
        rig.cli("note", "still recording")
        time.sleep(3)  # several quiet retries
        s = rig.status()["pico"]
        self.assertEqual(s["state"], "absent")
        self.assertFalse(s["connected"])
        self.assertIn(missing, s["last_error"])
        self.assertIn("pico        absent", rig.cli("status").stdout)
        code, out, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        self.assertEqual(err.count("Pico W not available"), 1, err)
        names = [e["event"] for e in rig.events()]
        self.assertEqual(names.count("pico_absent"), 1)
        self.assertIn("pico_no_code", names)
        self.assertEqual(len(rig.notes()), 1)

    def test_no_pico_section_no_pico(self):
        rig = Rig()
        self.addCleanup(rig.cleanup)
        rig.start()
        self.assertIsNone(rig.status()["pico"])
        self.assertNotIn("pico", rig.cli("status").stdout)
        code, out, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        self.assertFalse(os.path.exists(os.path.join(rig.session_dir(), "pico")))


if __name__ == "__main__":
    unittest.main()

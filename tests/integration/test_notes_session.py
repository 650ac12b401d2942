"""A session with the real notes module: notes from the CLI read back exactly."""
import json
import os
import re
import unittest

from harness import Rig, read_csv, wait_for

AWKWARD_NOTES = [
    "plain note",
    "comma, inside, twice",
    'she said "stop" and ""double""',
    "first line\nsecond line\r\nthird line",
    "ünïcödé ✓ 日本語 🙂",
    "-starts with a dash",
    "  spaces around  ",
    "tab\there, and a trailing newline\n",
]


class NotesSession(unittest.TestCase):
    def setUp(self):
        self.rig = Rig(modules={"notes": {}, "cam": {"type": "test"}})
        self.addCleanup(self.rig.cleanup)

    def test_notes_from_the_cli_read_back_exactly(self):
        rig = self.rig
        rig.start("--record", "--trial-label", "drive 1")
        rig.wait_all("recording")
        wait_for(lambda: rig.status()["trial"]["elapsed_s"] > 0, 2, what="the trial's start instant")
        for text in AWKWARD_NOTES:
            r = rig.cli("note", "--", text)
            self.assertRegex(r.stdout, r"note \d+ saved")
        rig.cli("trial", "stop")
        rig.wait_all("ready")
        rig.cli("note", "between", "trials")  # words are joined with spaces
        code, out, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        self.assertIn("Session: " + rig.session_dir(), out)
        self.assertIn("notes/notes.csv", out)

        path = os.path.join(rig.session_dir(), "notes", "notes.csv")
        with open(path, newline="", encoding="utf-8") as f:
            header = f.readline().strip()
        self.assertEqual(header, "note_id,mono_ns,wall_time_utc,session_elapsed_s,trial,recording_modules,text")
        rows = read_csv(path)
        self.assertEqual([r["text"] for r in rows], AWKWARD_NOTES + ["between trials"])
        self.assertEqual([int(r["note_id"]) for r in rows], list(range(1, len(rows) + 1)))
        mono = [int(r["mono_ns"]) for r in rows]
        self.assertEqual(mono, sorted(mono))
        elapsed = [float(r["session_elapsed_s"]) for r in rows]
        self.assertTrue(all(0 < e < 60 for e in elapsed))
        for r in rows:
            self.assertRegex(r["wall_time_utc"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        for r in rows[:-1]:
            self.assertEqual(r["trial"], "1")
            self.assertEqual(r["recording_modules"], "cam")
        self.assertEqual(rows[-1]["trial"], "")
        self.assertEqual(rows[-1]["recording_modules"], "")

        session = json.load(open(os.path.join(rig.session_dir(), "session.json")))
        self.assertEqual(session["status"], "closed")
        self.assertEqual(session["notes"]["count"], len(rows))
        self.assertEqual(session["trials"][0]["label"], "drive 1")
        self.assertIn("start", session["clock_anchors"])
        self.assertIn("stop", session["clock_anchors"])

        names = [e["event"] for e in rig.events()]
        for expected in ["session_start", "module_start", "trial_start", "trial_stop", "session_stop", "shutdown"]:
            self.assertIn(expected, names)
        clocks = read_csv(os.path.join(rig.session_dir(), "clocks.csv"))
        self.assertGreaterEqual(len(clocks), 2)
        self.assertTrue(all(int(c["monotonic_ns"]) > 0 for c in clocks))

    def test_notes_go_to_the_module_with_the_note_capability(self):
        # Found by its kind's capability, whatever the instance is called; a module that never
        # said hello (disabled) reports its kind's capabilities too.
        rig = Rig(modules={"jot": {"type": "notes"}, "cam": {"type": "test"}, "spare": {"type": "notes", "enabled": "false"}})
        self.addCleanup(rig.cleanup)
        rig.start("--record")
        rig.wait_all("recording")
        self.assertEqual(rig.module("spare")["capabilities"], ["note"])
        self.assertEqual(rig.module("jot")["capabilities"], ["note"])
        self.assertIn("test", rig.module("cam")["capabilities"])
        wait_for(lambda: rig.status()["trial"]["elapsed_s"] > 0, 2, what="the trial's start instant")
        rig.cli("note", "found by capability")
        code, _, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        rows = rig.notes()
        self.assertEqual([r["text"] for r in rows], ["found by capability"])
        self.assertEqual(rows[0]["recording_modules"], "cam")  # never the notes module itself

    def test_session_and_trial_commands(self):
        rig = self.rig
        rig.start("--label", "first")
        rig.wait_all("ready")
        self.assertIsNone(rig.status()["trial"])
        # A trial needs a session; a note too.
        rig.cli("session", "stop")
        wait_for(lambda: rig.status()["session"] is None, 5, what="the session to close")
        r = rig.cli("trial", "start", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no session is open", r.stderr)
        r = rig.cli("note", "lost?", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no session", r.stderr)

        r = rig.cli("session", "start", "--label", "second run/../x")
        self.assertIn("session started", r.stdout)
        rig.wait_all("ready")
        rig.cli("trial", "start", "--label", "baseline")
        rig.wait_all("recording")
        status = rig.status()
        self.assertEqual(status["trial"]["number"], 1)
        self.assertEqual(status["trial"]["label"], "baseline")
        r = rig.cli("trial", "start", check=False)
        self.assertIn("already recording", r.stderr)
        rig.cli("trial", "stop")
        rig.cli("trial", "start")
        self.assertEqual(rig.status()["trial"]["number"], 2)
        human = rig.cli("status").stdout
        self.assertIn("trial       2", human)
        self.assertIn("cam (test): recording", human)
        code, _, err = rig.shutdown()
        self.assertEqual(code, 0, err)

        dirs = [os.path.basename(d) for d in rig.session_dirs()]
        self.assertEqual(len(dirs), 2)
        self.assertTrue(re.match(r"session_\d{8}T\d{6}Z_first$", dirs[0]), dirs)
        self.assertTrue(re.match(r"session_\d{8}T\d{6}Z_second_run_x$", dirs[1]), dirs)
        trials = [(e["event"], e["trial"], e["detail"]) for e in rig.events() if e["event"].startswith("trial_")]
        self.assertEqual(trials, [("trial_start", "1", "label=baseline"), ("trial_stop", "1", ""),
                                  ("trial_start", "2", ""), ("trial_stop", "2", "")])


class WithoutSupervisor(unittest.TestCase):
    def setUp(self):
        self.rig = Rig()
        self.addCleanup(self.rig.cleanup)

    def test_client_commands_say_nothing_runs(self):
        for args in (["status"], ["note", "x"], ["trial", "start"], ["shutdown"], ["module", "restart", "notes"]):
            r = self.rig.cli(*args, check=False)
            self.assertEqual(r.returncode, 3, args)
            self.assertIn("pilogger is not running", r.stderr)

    def test_second_run_is_refused(self):
        self.rig.start()
        second = self.rig.cli("run", "--config", self.rig.config, check=False, timeout=10)
        self.assertEqual(second.returncode, 3)
        self.assertIn("already running", second.stderr)
        self.assertEqual(self.rig.status()["supervisor"]["pid"], self.rig.proc.pid)
        code, _, _ = self.rig.shutdown()
        self.assertEqual(code, 0)

    def test_duration_run_exits_zero_with_a_summary(self):
        r = self.rig.cli("run", "--config", self.rig.config, "--record", "--duration", "1.5", timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Session: ", r.stdout)
        self.assertIn("notes (notes): exited", r.stdout)
        events = self.rig.events()
        start = next(int(e["mono_ns"]) for e in events if e["event"] == "trial_start")
        stop = next(int(e["mono_ns"]) for e in events if e["event"] == "trial_stop")
        self.assertEqual(stop - start, 1_500_000_000)
        # The session closes only after the trial's stop instant has passed.
        session_stop = next(int(e["mono_ns"]) for e in events if e["event"] == "session_stop")
        self.assertGreaterEqual(session_stop, stop)
        # The control socket is gone once the supervisor has exited.
        self.assertFalse(os.path.exists(os.path.join(self.rig.runtime, "pilogger", "control.sock")))


if __name__ == "__main__":
    unittest.main()

"""Crashes, hangs and misbehaving modules: the supervisor notices, records and recovers."""
import os
import signal
import time
import unittest

from harness import Rig, pid_alive, wait_for


class ModuleFailures(unittest.TestCase):
    def rig(self, **kwargs):
        rig = Rig(**kwargs)
        self.addCleanup(rig.cleanup)
        return rig

    def test_kill9_of_the_notes_module_mid_trial(self):
        rig = self.rig(modules={"notes": {}})
        rig.start("--record")
        first = rig.wait_module("notes", "recording")
        rig.cli("note", "before the crash")
        os.kill(first["pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        again = rig.wait_module("notes", "recording", timeout=5, other_than_pid=first["pid"])
        restart_s = time.monotonic() - killed_at
        self.assertLess(restart_s, 3.0, "restarted and recording again within 3 s")
        self.assertEqual(again["restarts"], 1)
        rig.cli("note", "after the crash")
        code, _, err = rig.shutdown()
        self.assertEqual(code, 0, err)

        events = [(e["event"], e["module"]) for e in rig.events()]
        self.assertIn(("module_crash", "notes"), events)
        self.assertIn(("module_restart", "notes"), events)
        crash = next(e for e in rig.events() if e["event"] == "module_crash")
        self.assertIn("signal 9", crash["detail"])
        self.assertEqual(crash["trial"], "1")
        self.assertEqual([n["text"] for n in rig.notes()], ["before the crash", "after the crash"])
        self.assertFalse(pid_alive(first["pid"]))

    def test_notes_sent_while_the_module_is_down_still_land(self):
        rig = self.rig(modules={"notes": {}}, supervisor={"restart_backoff_initial_ms": 1500})
        rig.start("--record")
        first = rig.wait_module("notes", "recording")
        os.kill(first["pid"], signal.SIGKILL)
        wait_for(lambda: rig.module("notes")["state"] == "restarting", 3, what="notes to be restarting")
        r = rig.cli("note", "typed during the restart")
        self.assertIn("queued", r.stdout)
        rig.wait_module("notes", "recording", timeout=5, other_than_pid=first["pid"])
        wait_for(lambda: os.path.exists(os.path.join(rig.session_dir(), "notes", "notes.csv")) and rig.notes(), 3,
                 what="the queued note in notes.csv")
        rig.shutdown()
        self.assertEqual([n["text"] for n in rig.notes()], ["typed during the restart"])

    def test_sigstop_is_seen_as_a_hang_and_the_module_replaced(self):
        rig = self.rig(modules={"notes": {}})
        rig.start("--record")
        first = rig.wait_module("notes", "recording")
        os.kill(first["pid"], signal.SIGSTOP)
        stopped_at = time.monotonic()
        wait_for(lambda: any(e["event"] == "module_hung" for e in rig.events()), 6, what="module_hung")
        self.assertLess(time.monotonic() - stopped_at, 5.0, "hang seen within 5 s")
        rig.wait_module("notes", "recording", timeout=5, other_than_pid=first["pid"])
        wait_for(lambda: not pid_alive(first["pid"]), 2, what="the stopped process to be gone")
        rig.cli("note", "after the hang")
        rig.shutdown()
        hung = next(e for e in rig.events() if e["event"] == "module_hung")
        self.assertIn("no heartbeat", hung["detail"])
        self.assertEqual([n["text"] for n in rig.notes()], ["after the hang"])

    def test_kill9_of_the_supervisor_leaves_no_process(self):
        rig = self.rig(modules={"notes": {}, "a": {"type": "test"}, "b": {"type": "test"}})
        rig.start("--record")
        rig.wait_all("recording")
        rig.cli("note", "written before the supervisor died")
        pids = [m["pid"] for m in rig.status()["modules"]]
        self.assertEqual(len(pids), 3)
        rig.proc.kill()
        rig.proc.wait()
        died_at = time.monotonic()
        wait_for(lambda: not any(pid_alive(p) for p in pids), 2, what="every module to exit")
        self.assertLess(time.monotonic() - died_at, 2.0)
        # The notes module closed its file properly on stdin EOF.
        self.assertEqual([n["text"] for n in rig.notes()], ["written before the supervisor died"])

    def test_sigterm_of_the_supervisor_closes_the_session(self):
        rig = self.rig(modules={"notes": {}})
        rig.start("--record")
        rig.wait_all("recording")
        rig.proc.send_signal(signal.SIGTERM)
        code, out, err = rig.wait_exit()
        self.assertEqual(code, 0, err)
        names = [e["event"] for e in rig.events()]
        for expected in ("shutdown", "trial_stop", "session_stop"):
            self.assertIn(expected, names)
        self.assertIn("Session: ", out)

    def test_restart_backoff_doubles(self):
        rig = self.rig(modules={"flaky": {"type": "test"}})
        rig.start()
        delays = []
        for attempt in range(3):
            m = rig.wait_module("flaky", "ready", timeout=10)
            rig_pid = m["pid"]
            os.kill(rig_pid, signal.SIGKILL)
            wait_for(lambda: rig.module("flaky")["pid"] != rig_pid and rig.module("flaky")["state"] == "ready", 10,
                     what=f"restart {attempt + 1}")
        details = [e["detail"] for e in rig.events() if e["event"] == "module_restart_scheduled"]
        for d in details:
            delays.append(int(d.split()[1]))
        self.assertEqual(delays, [500, 1000, 2000])
        rig.shutdown()

    def test_misbehaving_module_garbage_and_crash(self):
        rig = self.rig(modules={"notes": {}, "bad": {"type": "test"}})
        rig.start()
        rig.wait_all("ready")
        s = rig.status()
        # Garbage on the module's stdout (including a 10 MiB line) is counted, never fatal.
        pid = rig.module("bad")["pid"]
        self.send_to_module(rig, "bad", "garbage")
        wait_for(lambda: rig.module("bad")["bad_lines"] >= 4, 5, what="bad lines to be counted")
        self.assertEqual(rig.module("bad")["pid"], pid, "garbage must not cost a restart")
        self.assertIsNotNone(s["session"])
        rig.cli("note", "still fine")
        # A crash is a crash: restarted.
        self.send_to_module(rig, "bad", "crash")
        rig.wait_module("bad", "ready", timeout=5, other_than_pid=pid)
        crash = [e for e in rig.events() if e["event"] == "module_crash" and e["module"] == "bad"]
        self.assertTrue(crash and "signal 6" in crash[0]["detail"], crash)
        protocol_errors = [e for e in rig.events() if e["event"] == "module_protocol_error"]
        self.assertTrue(any("over-long" in e["detail"] for e in protocol_errors))
        rig.shutdown()
        self.assertEqual([n["text"] for n in rig.notes()], ["still fine"])

    def test_a_module_that_never_acks(self):
        rig = self.rig(modules={"notes": {}, "mute": {"type": "test"}}, supervisor={"ack_timeout_ms": 500})
        rig.start()
        rig.wait_all("ready")
        pid = rig.module("mute")["pid"]
        self.send_to_module(rig, "mute", "mute")
        r = rig.cli("trial", "start")  # answers even though one module never does
        self.assertIn("mute", r.stderr)
        self.assertIn("did not answer start_recording", r.stderr)
        self.assertEqual(rig.module("notes")["state"], "recording")
        timeouts = [e for e in rig.events() if e["event"] == "ack_timeout" and e["module"] == "mute"]
        self.assertTrue(timeouts)
        # Out of step with the supervisor: restarted, and the new process joins the trial as part 2.
        rig.wait_module("mute", "recording", timeout=10, other_than_pid=pid)
        wait_for(lambda: rig.module("mute")["stats"].get("part") == 2, 3, what="the new process's heartbeat")
        self.assertFalse(pid_alive(pid))
        rig.cli("trial", "stop")
        code, _, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        parts = [e["detail"] for e in rig.events() if e["event"] == "module_part"]
        self.assertEqual(parts, ["continues trial in part 2"])

    def test_shutdown_escalates_to_sigterm_and_sigkill(self):
        rig = self.rig(modules={"notes": {}, "stuck": {"type": "test"}},
                       supervisor={"shutdown_timeout_ms": 300, "terminate_timeout_ms": 300,
                                   "heartbeat_timeout_ms": 20000})
        rig.start("--record")
        rig.wait_all("recording")
        pid = rig.module("stuck")["pid"]
        self.send_to_module(rig, "stuck", "hang")  # its loop never runs again: no answer, no signal handler
        started = time.monotonic()
        code, _, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        self.assertLess(time.monotonic() - started, 15)
        self.assertFalse(pid_alive(pid))
        escalations = [e["detail"] for e in rig.events() if e["event"] == "module_stop_escalation"]
        self.assertEqual(len(escalations), 2, escalations)
        self.assertIn("SIGTERM", escalations[0])
        self.assertIn("SIGKILL", escalations[1])
        exits = {e["module"]: e["detail"] for e in rig.events() if e["event"] == "module_exit"}
        self.assertEqual(exits["notes"], "exit status 0")
        self.assertIn("signal 9", exits["stuck"])

    def send_to_module(self, rig, name, mode):
        """Forwards a command to one module through the control socket's module_command."""
        import json
        import socket
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(os.path.join(rig.runtime, "pilogger", "control.sock"))
        sock.sendall((json.dumps({"id": 1, "cmd": "module_command",
                                  "args": {"name": name, "cmd": "misbehave", "args": {"mode": mode}}}) + "\n").encode())
        sock.settimeout(5)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        sock.close()
        return json.loads(reply)


if __name__ == "__main__":
    unittest.main()

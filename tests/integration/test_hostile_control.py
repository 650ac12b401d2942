"""Hostile clients on the control socket during a recording. Every field of every request with
every wrong JSON type, numbers out of range, ids that are not ids, nesting 10,000 deep, invalid
UTF-8 and NUL bytes, lines over the limit (one of 100 MiB, streamed), 100,000 lines a second,
clients that close at once or half-close, 200 at once and more than the limit, subscribers
that never read, clients that pipeline thousands of requests without reading, lines never
finished. Meanwhile a real camera records, the notes module takes notes and a test module
answers: the supervisor must answer each bad request with an error naming the problem (or
disconnect the client where docs/protocol.md says so), lose no frame, keep every note, stay
within 20 MB of its starting RSS, and keep events.csv small."""
import json
import os
import socket
import time
import unittest

import hostile_common as hc
from harness import ControlClient, Rig, control_path, read_csv
from hostile_control_clients import HostileClients
from hostile_control_lines import MODULES, line_cases, request


class HostileControl(HostileClients, unittest.TestCase):
    def test_hostile_clients_during_a_recording(self):
        t_begin = time.monotonic()
        rig = Rig(modules={"cam0": hc.CAMERA, "notes": {}, "healthy": {"type": "test"}})
        self.addCleanup(rig.cleanup)
        rig.start()
        for name in MODULES:
            rig.wait_module(name, "ready", timeout=30)
        self.path = control_path(rig)
        control = ControlClient(self.path, timeout=30)
        self.addCleanup(control.close)
        self.control = control
        self.rig = rig
        r = control.request("trial_start", {"label": "hostile control"})
        self.assertTrue(r["ok"], r)
        for name in MODULES:
            rig.wait_module(name, "recording", timeout=15)
        watch = hc.Watch(rig)
        self.addCleanup(watch.stop)
        self.fds_before = len(os.listdir(f"/proc/{rig.proc.pid}/fd"))
        # Subscribers that never read, for the whole recording.
        self.deaf = [self.connect() for _ in range(20)]
        for s in self.deaf:
            s.sendall(request(1, "subscribe"))
        self.idle = self.connect()  # connected all along, never says a word
        self.dropped_at_start = self.status()["control"]["clients_dropped"]
        self.notes_accepted = []

        table = []
        failures = []
        hostile = ControlClient(self.path, timeout=20)
        self.addCleanup(hostile.close)
        for case in line_cases():
            try:
                table.append(self.run_line_case(hostile, case))
            except AssertionError as e:
                failures.append(f"{case.label}: {e}")
                table.append((case.label, "FAILED", str(e)[:200]))
                if hostile.closed:
                    hostile = ControlClient(self.path, timeout=20)
        hostile.close()
        line_count = len(table)
        # Control-client rows are rate-limited (2 a second, burst 10): the cases whose rows are
        # checked come before the one that disconnects a hundred clients.
        for fn in (self.duplicate_ids, self.byte_by_byte, self.big_line_streamed, self.flood, self.send_and_close,
                   self.close_unread, self.half_close, self.note_storm, self.note_storm_40, self.module_command_storm_40,
                   self.module_command_flood,
                   self.pipeliners,
                   self.concurrent_200, self.over_the_client_limit, self.connect_churn, self.deaf_subscribers_dropped,
                   self.unfinished_lines, self.idle_client_still_served):
            try:
                rows = fn()
                table += rows
                self.check_recording(fn.__name__)
            except Exception as e:  # noqa: BLE001 (one broken case must not hide the others)
                failures.append(f"{fn.__name__}: {e!r}")
                table.append((fn.__name__, "FAILED", str(e)[:200]))
                if self.rig.proc.poll() is not None:
                    break
        hc.print_table("hostile control requests", table, ("case", "answer", "detail"))
        self.assertEqual(failures, [])
        self.assertGreaterEqual(line_count, 50)

        cam = rig.module("cam0")
        self.assertEqual((cam["state"], cam["restarts"], cam["stats"].get("dropped")), ("recording", 0, 0), cam)
        hc.end_recording(self, rig, control, watch)
        self.check_after(rig, watch, len(table), line_count)
        print(f"test duration {time.monotonic() - t_begin:.1f} s", flush=True)

    # ---- helpers ----
    def connect(self, timeout=20):
        # Non-blocking, as the CLI and the GUI connect (libuv): EAGAIN if the kernel's queue of
        # connections waiting for accept() is full.
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        s.connect(self.path)
        return s

    def status(self):
        r = self.control.request("status", timeout=20)
        self.assertTrue(r["ok"], r)
        return r["result"]

    def check_recording(self, what):
        self.assertIsNone(self.rig.proc.poll(), f"the supervisor died at {what}")
        s = self.status()
        for m in s["modules"]:
            self.assertEqual((m["state"], m["restarts"]), ("recording", 0), f"{what}: {m['name']}")
        cam = next(m for m in s["modules"] if m["name"] == "cam0")
        self.assertEqual(cam["stats"].get("dropped", 0), 0, f"{what}: the camera dropped frames")
        return s

    def run_line_case(self, client, case):
        client.send_raw(case.data)
        if case.code is None:
            # Nothing to answer: the next request's answer comes first.
            r = client.request("status", timeout=20)
            self.assertTrue(r["ok"], r)
            self.check_recording(case.label)
            return (case.label, "no answer", "")
        m = client.answer(None, timeout=20)
        want_id = case.sent_id if case.id == "same" and case.sent_id is not None else case.id
        if case.id != "same" or case.sent_id is not None:
            self.assertEqual(m.get("id"), want_id, f"{case.label}: {str(m)[:200]}")
        if case.code == "ok":
            self.assertTrue(m.get("ok"), f"{case.label}: {str(m)[:300]}")
            shown = json.dumps(m["result"])
            self.assertIn(case.text, shown, case.label)
            answer, detail = "ok", shown[:70]
            if case.note is not None:
                self.notes_accepted.append(case.note)
        else:
            self.assertIs(m.get("ok"), False, f"{case.label}: {str(m)[:300]}")
            self.assertEqual(m["error"]["code"], case.code, f"{case.label}: {m['error']}")
            self.assertIn(case.text, m["error"]["message"], case.label)
            self.assertLess(len(m["error"]["message"]), 400, f"{case.label}: an error message that long")
            answer, detail = m["error"]["code"], m["error"]["message"]
        self.check_recording(case.label)
        return (case.label, answer, detail[:90])

    # ---- afterwards ----
    def check_after(self, rig, watch, cases, line_count):
        session = rig.session_dir()
        frames, expected, notes, growth = hc.check_recording_whole(self, session, watch)
        texts = set(r["text"] for r in read_csv(os.path.join(session, "notes", "notes.csv")))
        missing = [t[:60] for t in self.notes_accepted if t not in texts]
        self.assertEqual(missing, [], "notes answered ok but not in notes.csv")
        self.assertNotIn(hc.FORGED, "".join(texts))
        seconds = hc.session_seconds(session)
        events = rig.events()
        control_rows = [e for e in events if e["event"] == "control_client"]
        self.assertLessEqual(len(control_rows), 10 + 2 * seconds + 2)
        refusals = [e for e in events if e["event"] in ("note_refused", "module_command_refused")]
        self.assertLessEqual(len(refusals), 10 + 2 * seconds + 2)
        self.assertLessEqual(len([e for e in events if e["event"] == "control_flood"]), seconds + 2)
        size = os.path.getsize(os.path.join(session, "events.csv"))
        self.assertLess(size, 1 << 20, "events.csv stays small")
        self.assertLessEqual(size, len(events) * 1024)
        print(f"\ncontrol socket: {cases} cases ({line_count} kinds of request line); camera {frames} frames "
              f"(expected {expected:.1f}), 0 dropped; {notes} watch notes and {len(self.notes_accepted)} hostile "
              f"ones saved; RSS baseline {watch.baseline_kb} KiB, peak growth {watch.peak_rss_growth_kb()} KiB; "
              f"status round trip max {max(watch.status_ms):.0f} ms; events.csv {size} bytes, {len(events)} rows "
              f"({len(control_rows)} control_client) over {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    unittest.main()

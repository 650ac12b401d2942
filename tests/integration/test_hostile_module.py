"""A hostile module during a recording: tests/integration/hostile_module.py, a module written in
Python that speaks the protocol itself, sends every kind of wrong line a module can, floods, and
says a dozen kinds of bad hello (one module instance each). Meanwhile a real camera records, the
notes module takes notes and a second, healthy module records: the supervisor must stay up and
answer, the camera must lose no frame, every bad line must be counted and named, events.csv and
the logs must stay small, and no subscriber may see a supervisor event a module made up."""
import base64
import json
import os
import subprocess
import time
import unittest

import hostile_common as hc
from harness import HERE, PILOGGER, ControlClient, Rig, control_path, folder_bytes, read_csv, wait_for
from hostile_module import HELLOS

HOSTILE = os.path.join(HERE, "hostile_module.py")
TYPES = [("null", None), ("bool", True), ("int", 7), ("float", 1.5), ("string", "text"), ("array", [1, 2]),
         ("object", {"k": 1})]
# The expected events.csv detail of each bad hello (module_protocol_error or module_error).
HELLO_PROBLEMS = {
    "hello_protocol_string": '"protocol" must be an integer, got string',
    "hello_protocol_float": '"protocol" must be an integer, got number',
    "hello_protocol_2": "speaks protocol 2, expected 1",
    "hello_protocol_huge": '"protocol" must be an integer, got number',
    "hello_protocol_missing": '"protocol" is missing',
    "hello_version_number": '"version" must be a string, got number',
    "hello_caps_string": '"capabilities" must be an array, got string',
    "hello_caps_deep_20000": "nested deeper than 32 levels",
    "hello_caps_100k": "more than 64 capabilities",
    "hello_invalid_utf8": "not valid JSON",
    "hello_nul": "not valid JSON",
    "no_hello_steady_stats": "no valid hello within",
}
assert set(HELLO_PROBLEMS) == set(HELLOS)


def line(obj):
    return json.dumps(obj).encode() + b"\n"


def raw(data):
    return {"b64": base64.b64encode(data).decode()}


def nested(depth, inner=b"1"):
    return b"[" * depth + inner + b"]" * depth


class Case:
    """One hostile line (or answer). bad: bad_lines it must add; detail: what its events.csv row
    must say; answer: 'ok' or a substring of the error message the module_command gets back."""

    def __init__(self, label, args, bad=1, detail=None, answer="ok"):
        self.label, self.args, self.bad, self.detail, self.answer = label, args, bad, detail, answer


def module_cases():
    cases = []
    add = cases.append
    for tname, v in TYPES:
        if tname != "string":
            add(Case(f"event name {tname}", raw(line({"event": v})), detail='"event" must be a string'))
    for event in ("warning", "error", "log"):
        for tname, v in TYPES:
            if tname == "string":
                continue
            want = '"message" is missing' if v is None else '"message" must be a string'
            add(Case(f"{event}.message {tname}", raw(line({"event": event, "message": v})), detail=want))
    for tname, v in TYPES:
        if tname != "string":
            want = '"state" is missing' if v is None else '"state" must be a string'
            add(Case(f"state.state {tname}", raw(line({"event": "state", "state": v})), detail=want))
    # A second hello: its fields are checked first; a well-formed one is refused as a second hello.
    for field, right in (("protocol", "int"), ("version", "string"), ("capabilities", "array"), ("type", "string")):
        for tname, v in TYPES:
            h = {"event": "hello", "protocol": 1, "version": "x", "capabilities": ["a"]}
            h[field] = v
            if field == "capabilities" and tname == "array":
                want = "every capability must be a string"
            elif tname == right or v is None and field != "protocol":
                want = "a second hello"
            elif v is None:
                want = '"protocol" is missing'
            else:
                want = f'"{field}" must be'
            add(Case(f"hello.{field} {tname}", raw(line(h)), detail=want))
    # Stats are free-form: any type in any field is kept and shown, never fatal.
    for tname, v in TYPES:
        add(Case(f"stats.fps+frames {tname}", {"stats": {"fps": v, "frames": v, "dropped": v}}, bad=0))
    for label, text in (("stats 1e308", b'{"event":"stats","frames":1e308}'),
                        ("stats -2^63", b'{"event":"stats","frames":-9223372036854775808}'),
                        ("stats 2^64", b'{"event":"stats","frames":18446744073709551616}'),
                        ("stats 8 levels", b'{"event":"stats","deep":' + nested(7) + b"}"),
                        ("device event", b'{"event":"device","name":"x","what":[1,{"a":null}]}'),
                        ("state unknown name", b'{"event":"state","state":"dancing"}'),
                        ("warning 100 KB", line({"event": "warning", "message": "W" * 100_000})),
                        ("warning with NUL escape", b'{"event":"warning","message":"nul\\u0000here"}'),
                        ("warning accents+emoji", line({"event": "warning", "message": "Zoë 😀 ✓"})),
                        ("blank CR line", b"\r\n")):
        add(Case(label, raw(text + (b"" if text.endswith(b"\n") else b"\n")), bad=0))
    for label, text, want in (
            ("stats 1e999", b'{"event":"stats","frames":1e999}', "not valid JSON"),
            ("stats 9 levels", b'{"event":"stats","deep":' + nested(8) + b"}", "nested deeper than 8"),
            ("stats over 16 KiB", line({"event": "stats", "pad": "p" * 17000}), "larger than 16384"),
            ("10,000-deep array", nested(10000), "nested deeper than 32"),
            ("10,000-deep object in an event", b'{"event":"log","message":"m","x":' + b'{"a":' * 10000 + b"1" +
             b"}" * 10000 + b"}", "nested deeper than 32"),
            ("invalid UTF-8 in a string", b'{"event":"warning","message":"\xff\xfe bad"}', "not valid JSON"),
            ("overlong UTF-8", b'{"event":"warning","message":"\xc0\xaf"}', "not valid JSON"),
            ("invalid UTF-8 outside JSON", b"\xff\xfe\xfd", "not valid JSON"),
            ("raw NUL in a string", b'{"event":"warning","message":"a\x00b"}', "not valid JSON"),
            ("NUL line", b"\x00", "not valid JSON"),
            ("lone surrogate escape", b'{"event":"warning","message":"\\ud800"}', "not valid JSON"),
            ("spaces only", b"     ", "not valid JSON"),
            ("top-level array", b"[1,2,3]", "got array"),
            ("top-level string", b'"hello"', "got string"),
            ("top-level number", b"42", "got number"),
            ("top-level null", b"null", "got null"),
            ("empty object", b"{}", 'none of "cmd", "ok", "event"'),
            ("unknown keys only", b'{"foo":1}', 'none of "cmd", "ok", "event"'),
            ("duplicate key, last wrong", b'{"event":"warning","message":"ok","message":5}', '"message" must be'),
            ("a command from a module", b'{"id":1,"cmd":"shutdown"}', "a module sends no commands"),
            ("a command without id", b'{"cmd":"status"}', 'without an integer "id"'),
            ("event session", line({"event": "session", "active": False, "dir": hc.FORGED}), 'unknown event "session"'),
            ("event trial", line({"event": "trial", "active": True, "trial": 99, "label": hc.FORGED}),
             'unknown event "trial"'),
            ("event note", line({"event": "note", "note_id": 1, "text": hc.FORGED}), 'unknown event "note"'),
            ("event module_state", line({"event": "module_state", "name": "cam0", "state": hc.FORGED}),
             'unknown event "module_state"'),
            ("event supervisor_event", line({"event": "supervisor_event", "name": "trial_start", "detail": hc.FORGED}),
             'unknown event "supervisor_event"'),
            ("event empty name", b'{"event":""}', 'unknown event ""'),
            ("event 10 KB name", line({"event": "e" * 10000}), 'unknown event "eeee'),
            ("event Warning (case)", b'{"event":"Warning","message":"m"}', 'unknown event "Warning"'),
    ):
        add(Case(label, raw(text + b"\n"), detail=want))
    # Longer than a control request may be: the module makes it up itself, after its answer.
    # The bound is on the line without its newline: 1 MiB exactly passes, one byte more does not.
    add(Case("line of exactly 1 MiB", {"big_line_bytes": (1 << 20) + 1}, bad=0))
    add(Case("line of 1 MiB + 1", {"big_line_bytes": (1 << 20) + 2}, detail="over-long line of 1048578 bytes"))
    # Answers with wrong ids, next to a good answer to the command itself.
    for tname, v in TYPES:
        if tname == "int":
            continue
        want = 'a reply without an integer "id"' if v is None else '"id" must be an integer'
        add(Case(f"reply.id {tname}", raw(line({"id": v, "ok": True})), detail=want))
    for label, text, want in (("reply.id 2^63", b'{"id":9223372036854775808,"ok":true}', '"id" must be an integer'),
                              ("reply.id 2^64", b'{"id":18446744073709551616,"ok":true}', '"id" must be an integer'),
                              ("reply.id 1e308", b'{"id":1e308,"ok":true}', '"id" must be an integer'),
                              ("reply.id -2^63", b'{"id":-9223372036854775808,"ok":true}', "not waiting"),
                              ("reply.id -1", b'{"id":-1,"ok":false}', "not waiting"),
                              ("reply.id unknown", b'{"id":987654321,"ok":true}', "not waiting")):
        add(Case(label, raw(text + b"\n"), detail=want))
    add(Case("reply twice", {"reply_twice": True}, detail="not waiting"))
    # Answers to its own command with a field of the wrong type: the command fails at once,
    # naming the field (never waits for its timeout).
    for tname, v in TYPES:
        if tname != "bool":
            add(Case(f"own reply.ok {tname}", {"reply_as": {"ok": v}}, detail='"ok" must be true or false',
                     answer='"ok" must be true or false'))
    for tname, v in TYPES:
        if tname == "object":
            continue
        if v is None:
            add(Case("own reply.result null", {"reply_as": {"ok": True, "result": None}}, bad=0))
        else:
            add(Case(f"own reply.result {tname}", {"reply_as": {"ok": True, "result": v}},
                     detail='"result" must be an object', answer='"result" must be an object'))
    for tname, v in TYPES:
        if tname == "object":
            continue
        if v is None:
            add(Case("own reply.error null", {"reply_as": {"ok": False, "error": None}}, bad=0, answer=""))
        else:
            add(Case(f"own reply.error {tname}", {"reply_as": {"ok": False, "error": v}},
                     detail='"error" must be an object', answer='"error" must be an object'))
    for field in ("code", "message"):
        for tname, v in TYPES:
            if tname == "string":
                continue
            error = {"code": "x", "message": "m"}
            error[field] = v
            if v is None:
                add(Case(f"own reply.error.{field} null", {"reply_as": {"ok": False, "error": error}}, bad=0,
                         answer="" if field == "message" else "m"))
            else:
                add(Case(f"own reply.error.{field} {tname}", {"reply_as": {"ok": False, "error": error}},
                         detail=f'"{field}" must be a string', answer=f'"{field}" must be a string'))
    add(Case("own reply.error.code 100 chars", {"reply_as": {"ok": False, "error": {"code": "c" * 100}}},
             detail='"code" is longer than 64', answer='"code" is longer than 64'))
    return cases


class HostileModule(unittest.TestCase):
    def test_a_hostile_module_during_a_recording(self):
        modules = {"cam0": hc.CAMERA, "notes": {}, "healthy": {"type": "test"},
                   "hostile": {"type": "test", "executable": HOSTILE},
                   # Typed as an eye tracker: its stats are shown the way the Neon's are.
                   "hostile-eye": {"type": "eyetracker", "executable": HOSTILE}}
        for name in HELLOS:
            modules[name] = {"type": "test", "executable": HOSTILE}
        rig = Rig(modules=modules)
        self.addCleanup(rig.cleanup)
        t_begin = time.monotonic()
        rig.start()
        for name in ("cam0", "notes", "healthy", "hostile", "hostile-eye"):
            rig.wait_module(name, "ready", timeout=30)
        control = ControlClient(control_path(rig), timeout=30)
        self.addCleanup(control.close)
        # The bad hellos never hold the trial back: it starts (and is answered) at once.
        t0 = time.monotonic()
        r = control.request("trial_start", {"label": "hostile module"})
        trial_answer_s = time.monotonic() - t0
        self.assertTrue(r["ok"], r)
        self.assertLess(trial_answer_s, 5)
        for name in ("cam0", "notes", "healthy", "hostile", "hostile-eye"):
            rig.wait_module(name, "recording", timeout=10)
        watch = hc.Watch(rig)
        self.addCleanup(watch.stop)

        table = []
        failures = []
        for case in module_cases():
            try:
                table.append(self.run_case(rig, control, case))
            except AssertionError as e:
                failures.append(f"{case.label}: {e}")
                table.append((case.label, "FAILED", str(e)[:200], ""))
        self.assertGreaterEqual(len(table), 50)

        # The eye tracker's stats with every field of the wrong type: status still prints.
        r = control.module_command("hostile-eye", "hostile", {"stats": {
            "connected": "yes", "device_error": 5, "device_name": ["x"], "battery_percent": "full",
            "gaze_rate_hz": "fast", "scene_fps": None, "clock_offset_ms": {}}})
        self.assertTrue(r["ok"], r)
        wait_for(lambda: rig.module("hostile-eye")["stats"].get("connected") == "yes", 5, what="the stats")
        st = rig.cli("status", check=False)
        table.append(("eyetracker stats of wrong types", 0, "ok" if st.returncode == 0 else st.stderr.strip(), ""))
        if st.returncode != 0 or "hostile-eye (eyetracker): recording" not in st.stdout:
            failures.append(f"pilogger status with an eye tracker's stats of wrong types: {st.stderr}")

        table += self.floods(rig, control)
        hc.print_table("hostile module lines", table, ("case", "bad_lines +", "answer", "events.csv detail"))

        # Every bad hello: its own row naming the problem, restarted, never connected.
        hello_rows = []
        for name, problem in HELLO_PROBLEMS.items():
            row = hc.wait_events(rig, lambda e, n=name, p=problem: e["module"] == n and p in e["detail"], 15,
                                 what=f"{name}'s events.csv row")
            hung = hc.wait_events(rig, lambda e, n=name: e["module"] == n and e["event"] == "module_hung", 15,
                                  what=f"{name} restarted")
            m = wait_for(lambda n=name: (lambda m: m if m["restarts"] >= 1 else None)(rig.module(n)), 15,
                         what=f"{name} restarted")
            self.assertNotIn(m["state"], ("ready", "recording"))
            hello_rows.append((name, row["event"], row["detail"][:70], hung["detail"][:40], m["restarts"]))
        hc.print_table("bad hellos (one module each)", hello_rows, ("module", "event", "detail", "module_hung", "restarts"))

        self.assertEqual(failures, [])
        healthy = rig.module("healthy")
        self.assertEqual((healthy["state"], healthy["restarts"], healthy["bad_lines"]), ("recording", 0, 0))
        hostile = self.mod(control)
        self.assertEqual((hostile["state"], hostile["restarts"]), ("recording", 0), hostile)
        cam = rig.module("cam0")
        self.assertEqual((cam["state"], cam["restarts"], cam["stats"].get("dropped")), ("recording", 0, 0), cam)

        hc.end_recording(self, rig, control, watch)
        self.check_after(rig, watch)
        print(f"test duration {time.monotonic() - t_begin:.1f} s", flush=True)

    last_bad_case = 0.0

    def mod(self, control, name="hostile"):
        r = control.request("status", timeout=20)
        self.assertTrue(r["ok"], r)
        return next(m for m in r["result"]["modules"] if m["name"] == name)

    def run_case(self, rig, control, case):
        # Paced under the 5-a-second protocol-error limit, so each bad line gets its own row.
        if case.bad:
            wait = self.last_bad_case + 0.21 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.last_bad_case = time.monotonic()
        before = self.mod(control)["bad_lines"]
        rows_before = len(rig.events())
        r = control.module_command("hostile", "hostile", case.args, timeout=15)
        if case.answer == "ok":
            self.assertTrue(r.get("ok"), f"{case.label}: {r}")
            answer = "ok"
        else:
            self.assertFalse(r.get("ok"), f"{case.label}: {r}")
            answer = r["error"]["code"] + ": " + r["error"]["message"]
            self.assertIn(case.answer, r["error"]["message"], case.label)
        if case.bad:
            wait_for(lambda: self.mod(control)["bad_lines"] >= before + case.bad, 5,
                     what=f"{case.label} to be counted")
        if "stats" in case.args:
            # Kept as the module's last heartbeat and shown by pilogger status as it is.
            want = case.args["stats"]["fps"]
            wait_for(lambda: self.mod(control)["stats"].get("fps", "absent") == want, 5, what="the new stats")
            st = rig.cli("status", check=False)
            self.assertEqual(st.returncode, 0, f"{case.label}: pilogger status: {st.stderr}")
        delta = self.mod(control)["bad_lines"] - before
        self.assertEqual(delta, case.bad, f"{case.label}: bad_lines grew by {delta}")
        detail = ""
        if case.detail:
            def new_row():
                rows = [e for e in rig.events()[rows_before:]
                        if e["module"] == "hostile" and e["event"] == "module_protocol_error"]
                return rows[0] if rows else None
            row = wait_for(new_row, 5, what=f"{case.label}'s events.csv row")
            detail = row["detail"]
            self.assertIn(case.detail, detail, case.label)
        self.assertIsNone(rig.proc.poll(), f"the supervisor died at {case.label}")
        return (case.label, delta, answer[:60], detail)

    def wait_floods(self, control, n, timeout):
        wait_for(lambda: self.mod(control)["stats"].get("floods_done", 0) >= n, timeout,
                 what=f"{n} floods done")

    def floods(self, rig, control):
        rows = []
        wait_for(lambda: "floods_done" in self.mod(control)["stats"], 5, what="the module's own stats")
        stats = self.mod(control)["stats"]
        done = stats.get("floods_done", 0)
        flooded = stats.get("lines_flooded", 0)
        # 100,000 garbage lines a second for 3 s, and a stderr flood meanwhile.
        before = self.mod(control)["bad_lines"]
        r = control.module_command("hostile", "hostile", {
            **raw(b"garbage, not JSON at all\n"), "repeat": 300000, "per_second": 100000, "seconds": 3,
            "stderr_seconds": 3})
        self.assertTrue(r["ok"], r)
        self.wait_floods(control, done + 2, 60)
        sent = self.mod(control)["stats"]["lines_flooded"] - flooded
        wait_for(lambda: self.mod(control)["bad_lines"] - before >= sent, 30, what="every flooded line counted")
        rows.append(("garbage flood 100k/s x 3 s", self.mod(control)["bad_lines"] - before, f"{sent} sent", ""))
        self.assertEqual(self.mod(control)["bad_lines"] - before, sent)
        # Supervisor-only event names, flooded.
        before = self.mod(control)["bad_lines"]
        flooded = self.mod(control)["stats"]["lines_flooded"]
        r = control.module_command("hostile", "hostile", {
            **raw(line({"event": "trial", "active": False, "trial": 1, "label": hc.FORGED})),
            "repeat": 200000, "per_second": 100000, "seconds": 2})
        self.wait_floods(control, done + 3, 60)
        sent = self.mod(control)["stats"]["lines_flooded"] - flooded
        wait_for(lambda: self.mod(control)["bad_lines"] - before >= sent, 30, what="every forged line counted")
        rows.append(("forged trial events 100k/s x 2 s", self.mod(control)["bad_lines"] - before, f"{sent} sent", ""))
        # Well-formed warnings and stats, flooded: passed on at the rate limits, the rest counted.
        before = self.mod(control)["bad_lines"]
        r = control.module_command("hostile", "hostile", {
            **raw(line({"event": "warning", "message": "warning flood"}) + line({"event": "stats", "x": 1})),
            "repeat": 300000, "per_second": 100000, "seconds": 3})
        self.wait_floods(control, done + 4, 60)
        summary = hc.wait_events(rig, lambda e: e["module"] == "hostile" and e["event"] == "module_flood" and
                                 "events over the rate limits" in e["detail"] and not e["detail"].startswith("0 "),
                                 10, what="a module_flood summary")
        rows.append(("warning+stats flood 100k/s x 3 s", self.mod(control)["bad_lines"] - before, "ok",
                     summary["detail"]))
        self.assertEqual(self.mod(control)["bad_lines"], before)
        # One line of 100 MiB: dropped as it streams, never buffered.
        before = self.mod(control)["bad_lines"]
        rows_before = len(rig.events())
        r = control.module_command("hostile", "hostile", {"big_line_bytes": 100 << 20})
        self.assertTrue(r["ok"], r)
        self.wait_floods(control, done + 5, 90)
        row = hc.wait_events(rig, lambda e: e["module"] == "hostile" and "over-long line of 104857600" in e["detail"],
                             30, what="the 100 MiB line's row")
        wait_for(lambda: self.mod(control)["bad_lines"] > before, 5, what="the 100 MiB line counted")
        rows.append(("one 100 MiB line", self.mod(control)["bad_lines"] - before, "ok", row["detail"]))
        self.assertEqual(self.mod(control)["bad_lines"] - before, 1)
        self.assertGreater(len(rig.events()), rows_before)
        return rows

    def check_after(self, rig, watch):
        session = rig.session_dir()
        frames, expected, notes, growth = hc.check_recording_whole(self, session, watch)

        # events.csv: bounded by the rate limits, per module, over the session's length.
        seconds = hc.session_seconds(session)
        events = rig.events()
        per = {}
        for e in events:
            per.setdefault((e["module"], e["event"]), 0)
            per[(e["module"], e["event"])] += 1
        limit_protocol = 20 + 5 * seconds + 5
        limit_messages = 100 + 20 * seconds + 5
        for (module, event), n in sorted(per.items()):
            if event == "module_protocol_error":
                self.assertLessEqual(n, limit_protocol, (module, event))
            if event == "module_flood":
                self.assertLessEqual(n, seconds + 2, (module, event))
        warnings = per.get(("hostile", "module_warning"), 0) + per.get(("hostile", "module_error"), 0)
        self.assertLessEqual(warnings, limit_messages)
        size = os.path.getsize(os.path.join(session, "events.csv"))
        # Every row but the warnings' fits in 1 KiB; a warning's text is cut at 4 KiB.
        bound = len(events) * 1024 + warnings * 4096
        self.assertLessEqual(size, bound)
        self.assertLess(size, 2 << 20, "events.csv stays small")
        logs = folder_bytes(os.path.join(session, "logs"))
        # stderr is read at 128 KiB per 100 ms: 1.25 MiB a second at most, and 64 MiB per log. The
        # 3 s flood is timed by the module, whose writes block while the reading pauses: a second
        # of slack for a loaded machine (unbounded, it wrote 1.27 GB in 5 s).
        self.assertLessEqual(os.path.getsize(os.path.join(session, "logs", "hostile.log")), 4 * 1.25 * (1 << 20) + (1 << 20))
        self.assertLess(logs, 64 << 20)
        # The NUL of a warning's \\u0000 and the accents read back from events.csv.
        details = [e["detail"] for e in events if e["module"] == "hostile" and e["event"] == "module_warning"]
        self.assertIn("Zoë 😀 ✓", details)
        self.assertTrue(any(d.startswith("W" * 4096) and len(d) <= 4099 for d in details))
        print(f"\nmodule channel: camera {frames} frames (expected {expected:.1f}), 0 dropped; "
              f"{notes} notes; RSS baseline {watch.baseline_kb} KiB, peak growth {growth} KiB; "
              f"events.csv {size} bytes, {len(events)} rows over {seconds:.1f} s; logs {logs} bytes; "
              f"status round trip max {max(watch.status_ms):.0f} ms", flush=True)


if __name__ == "__main__":
    unittest.main()

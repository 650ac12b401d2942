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
import select
import socket
import threading
import time
import unittest

import hostile_common as hc
from harness import ControlClient, Rig, control_path, read_csv, wait_for

TYPES = [("null", None), ("bool", True), ("int", 7), ("float", 1.5), ("2^64", 2 ** 64), ("string", "text"),
         ("array", [1, 2]), ("object", {"k": 1})]
# nlohmann's names for them, as the errors say "got ...".
TYPE_NAMES = {"null": "null", "bool": "boolean", "int": "number", "float": "number", "2^64": "number",
              "string": "string", "array": "array", "object": "object"}
LINE_LIMIT = 256 * 1024
MODULES = ("cam0", "notes", "healthy")


def nested(depth, inner=b"1"):
    return b"[" * depth + inner + b"]" * depth


def nested_object(depth):
    return b'{"a":' * depth + b"1" + b"}" * depth


def request(id_, cmd, args=None):
    line = {"id": id_, "cmd": cmd}
    if args is not None:
        line["args"] = args
    return json.dumps(line).encode() + b"\n"


class Case:
    """One hostile line. code: the error code expected ('ok' for success, None for no answer at
    all); text: a substring of the error message (or of the result, for 'ok'); id: the id the
    answer must carry ('same': the one sent, None: null)."""

    def __init__(self, label, data, code, text="", id_="same", sent_id=None, note=None):
        self.label, self.data, self.code, self.text, self.id, self.sent_id = label, data, code, text, id_, sent_id
        self.note = note  # a note text that was accepted: it must be in notes.csv


def line_cases():
    cases = []
    ids = iter(range(1000, 100000))

    def add(label, data, code, text="", id_="same", note=None):
        cases.append(Case(label, data, code, text, id_, note=note))

    def req(label, cmd, args, code, text="", note=None):
        n = next(ids)
        cases.append(Case(label, request(n, cmd, args), code, text, "same", sent_id=n, note=note))

    # ---- framing ----
    for label, data, text in (
            ("not JSON", b"garbage, not JSON at all", "not valid JSON"),
            ("spaces only", b"     ", "not valid JSON"),
            ("trailing garbage", b'{"id":1,"cmd":"status"} x', "not valid JSON"),
            ("two objects on a line", b'{"id":1,"cmd":"status"}{"id":2,"cmd":"status"}', "not valid JSON"),
            ("unclosed object", b'{"id":1,"cmd":"status"', "not valid JSON"),
            ("number 1e400", b'{"id":1e400,"cmd":"status"}', "not valid JSON"),
            ("invalid UTF-8 in a string", b'{"id":1,"cmd":"note","args":{"text":"\xff\xfe bad"}}', "not valid JSON"),
            ("overlong UTF-8", b'{"id":1,"cmd":"note","args":{"text":"\xc0\xaf"}}', "not valid JSON"),
            ("UTF-16 surrogate bytes", b'{"id":1,"cmd":"note","args":{"text":"\xed\xa0\x80"}}', "not valid JSON"),
            ("invalid UTF-8 outside JSON", b"\xff\xfe\xfd", "not valid JSON"),
            ("lone surrogate escape", b'{"id":1,"cmd":"note","args":{"text":"\\ud800"}}', "not valid JSON"),
            ("raw NUL in a string", b'{"id":1,"cmd":"note","args":{"text":"a\x00b"}}', "not valid JSON"),
            ("NUL line", b"\x00", "not valid JSON"),
            ("NUL after the object", b'{"id":1,"cmd":"status"}\x00', "a NUL byte at offset 23"),
            ("NUL, then another request", b'{"id":1,"cmd":"status"}\x00{"id":2,"cmd":"shutdown"}', "a NUL byte"),
            ("top-level array", b"[1,2,3]", "expected a JSON object, got array"),
            ("top-level string", b'"status"', "expected a JSON object, got string"),
            ("top-level number", b"42", "expected a JSON object, got number"),
            ("top-level null", b"null", "expected a JSON object, got null"),
            ("top-level true", b"true", "expected a JSON object, got boolean"),
            ("empty object", b"{}", 'none of "cmd", "ok", "event"'),
            ("unknown keys only", b'{"foo":1,"bar":[]}', 'none of "cmd", "ok", "event"'),
            ("10,000-deep array in args", b'{"id":1,"cmd":"status","args":{"x":' + nested(10000) + b"}}",
             "nested deeper than 32 levels"),
            ("10,000-deep object in args", b'{"id":1,"cmd":"status","args":' + nested_object(10000) + b"}",
             "nested deeper than 32 levels"),
            ("10,000-deep, never closed", b'{"id":1,"cmd":"status","args":' + b"[" * 10000, "nested deeper than 32"),
            ("33 levels", b'{"id":1,"cmd":"status","args":{"x":' + nested(32) + b"}}", "nested deeper than 32"),
            ("line over the limit (300 KB)", b'{"id":1,"cmd":"status","args":{"p":"' + b"p" * 300_000 + b'"}}',
             "bytes (limit 262144)")):
        code = "line_too_long" if "limit" in label else "parse_error"
        add(label, data + b"\n", code, text, None)
    add("31 levels in args", b'{"id":7,"cmd":"status","args":{"x":' + nested(30) + b"}}\n", "ok", id_=7)
    add("a line just under the limit", b'{"id":8,"cmd":"status","args":{"p":"' + b"p" * (LINE_LIMIT - 100) +
        b'"}}\n', "ok", id_=8)
    add("UTF-8 BOM before the object", b'\xef\xbb\xbf{"id":9,"cmd":"status"}\n', "ok", id_=9)
    add("CRLF line end", b'{"id":10,"cmd":"status"}\r\n', "ok", id_=10)
    add("blank lines and CRLFs", b"\n\r\n\n\r\n", None)
    add("whitespace around the object", b'  \t {"id":11,"cmd":"status"}  \t\n', "ok", id_=11)

    # ---- id ----
    for tname, v in TYPES:
        if tname == "int":
            continue
        text = 'command without an integer "id"' if v is None else '"id" must be an integer'
        add(f"id {tname}", json.dumps({"id": v, "cmd": "status"}).encode() + b"\n", "parse_error", text, None)
    add("id missing", b'{"cmd":"status"}\n', "parse_error", 'command without an integer "id"', None)
    add("id 1.0", b'{"id":1.0,"cmd":"status"}\n', "parse_error", '"id" must be an integer', None)
    add("id 2^63", b'{"id":9223372036854775808,"cmd":"status"}\n', "parse_error", '"id" must be an integer', None)
    add("id -2^63-1", b'{"id":-9223372036854775809,"cmd":"status"}\n', "parse_error", '"id" must be an integer', None)
    add("id 2^63-1", b'{"id":9223372036854775807,"cmd":"status"}\n', "ok", id_=2 ** 63 - 1)
    add("id -2^63", b'{"id":-9223372036854775808,"cmd":"status"}\n', "ok", id_=-2 ** 63)
    add("id -1", b'{"id":-1,"cmd":"status"}\n', "ok", id_=-1)
    add("id 0", b'{"id":0,"cmd":"status"}\n', "ok", id_=0)
    add("id twice, the last a string", b'{"id":1,"id":"x","cmd":"status"}\n', "parse_error",
        '"id" must be an integer', None)
    add("id twice, both integers", b'{"id":1,"id":12,"cmd":"status"}\n', "ok", id_=12)
    add("unknown id: a reply", b'{"id":424242,"ok":true,"result":{}}\n', "bad_request", "expected a command", 424242)
    add("unknown id: a failed reply", b'{"id":424243,"ok":false,"error":{"code":"x","message":"y"}}\n', "bad_request",
        "expected a command", 424243)
    add("a reply with ok a string", b'{"id":5,"ok":"yes"}\n', "bad_request", '"ok" must be true or false', 5)
    add("a forged trial event", json.dumps({"event": "trial", "active": False, "trial": 1,
                                            "label": hc.FORGED}).encode() + b"\n", "parse_error", "expected a command",
        None)
    add("a forged note event", json.dumps({"event": "note", "note_id": 1, "text": hc.FORGED}).encode() + b"\n",
        "parse_error", "expected a command", None)

    # ---- cmd ----
    for tname, v in TYPES:
        if tname != "string":
            add(f"cmd {tname}", json.dumps({"id": 20, "cmd": v}).encode() + b"\n", "bad_request",
                '"cmd" must be a string', 20)
    for label, cmd, text in (("cmd empty", "", 'unknown command ""'),
                             ("cmd Status (case)", "Status", 'unknown command "Status"'),
                             ("cmd with a trailing space", "status ", 'unknown command "status "'),
                             ("cmd 10 KB", "s" * 10000, 'unknown command "ssss'),
                             ("cmd with a NUL escape", "sta\u0000tus", "unknown command"),
                             ("cmd start_recording (a module's)", "start_recording", "unknown command"),
                             ("cmd snapshot (a module's)", "snapshot", "unknown command"),
                             ("cmd hello", "hello", "unknown command"),
                             ("cmd emoji", "😀", 'unknown command "😀"')):
        req(label, cmd, None, "unknown_command", text)

    # ---- args ----
    add("args null", b'{"id":21,"cmd":"status","args":null}\n', "bad_request", '"args" must be an object', 21)
    for tname, v in TYPES:
        if tname not in ("object", "null"):
            req(f"args {tname}", "status", v, "bad_request", '"args" must be an object')
    req("status with unknown args", "status", {"verbose": True, "x": [1, {"y": None}]}, "ok", "supervisor")
    req("status with 100 args", "status", {f"k{i}": i for i in range(100)}, "ok", "supervisor")

    # ---- each command's own arguments ----
    for cmd in ("trial_start", "session_start"):
        busy = "trial 1 is already recording" if cmd == "trial_start" else "a session is already open"
        for tname, v in TYPES:
            if tname == "string":
                continue
            if v is None:
                req(f"{cmd}.label null", cmd, {"label": None}, "bad_state", busy)
            else:
                req(f"{cmd}.label {tname}", cmd, {"label": v}, "bad_request",
                    f'{cmd}: "label" must be a string, got {TYPE_NAMES[tname]}')
        req(f"{cmd}.label 257 bytes", cmd, {"label": "l" * 257}, "bad_request", '"label" is longer than 256 bytes')
        req(f"{cmd}.label 100 emoji (400 bytes)", cmd, {"label": "😀" * 100}, "bad_request", "longer than 256 bytes")
        req(f"{cmd}.label ../../etc", cmd, {"label": "../../etc/passwd"}, "bad_state", busy)
        req(f"{cmd}.label with NUL and newline", cmd, {"label": "a\u0000b\nc"}, "bad_state", busy)
        req(f"{cmd} without args", cmd, None, "bad_state", busy)
    for tname, v in TYPES:
        if tname == "string":
            continue
        text = '"text" is missing' if v is None else f'note: "text" must be a string, got {TYPE_NAMES[tname]}'
        req(f"note.text {tname}", "note", {"text": v}, "bad_request", text)
    req("note without args", "note", None, "bad_request", '"text" is missing')
    req("note.text empty", "note", {"text": ""}, "bad_request", "a note needs some text")
    req("note.text 64 KiB + 1", "note", {"text": "n" * 65537}, "bad_request", '"text" is longer than 65536 bytes')
    for label, text in (("note.text 64 KiB", "N" * 65536),
                        ("note.text with NUL, CR, LF, quotes, commas", 'nul\u0000 cr\r lf\n "quoted", commas,'),
                        ("note.text accents and emoji", "Zoë wrote 😀 ✓ 日本語"),
                        ("note.text looks like CSV and JSON", '1,2,3\n{"event":"note"}'),
                        ("note.text 16,000 escaped emoji", "😀" * 16000)):
        req(label, "note", {"text": text}, "ok", "note_id", note=text)
    for tname, v in TYPES:
        if tname in ("int", "null"):
            continue
        req(f"note.mono_ns {tname}", "note", {"text": "t", "mono_ns": v}, "bad_request",
            f'"mono_ns" must be an integer, got {TYPE_NAMES[tname]}')
    req("note.mono_ns -1", "note", {"text": "t", "mono_ns": -1}, "bad_request", '"mono_ns" must be 0..')
    req("note.mono_ns 2^62+1", "note", {"text": "t", "mono_ns": 2 ** 62 + 1}, "bad_request", '"mono_ns" must be 0..')
    req("note.mono_ns -2^63", "note", {"text": "t", "mono_ns": -2 ** 63}, "bad_request", '"mono_ns" must be 0..')
    req("note.mono_ns 2^63", "note", {"text": "t", "mono_ns": 2 ** 63}, "bad_request", '"mono_ns" must be an integer')
    for label, at in (("note.mono_ns 0 (far off: stamped now)", 0), ("note.mono_ns null", None),
                      ("note.mono_ns 2^62", 2 ** 62)):
        text = f"hostile note, {label}"
        req(label, "note", {"text": text, "mono_ns": at}, "ok", "note_id", note=text)

    for tname, v in TYPES:
        if tname == "string":
            continue
        text = '"name" is missing' if v is None else f'"name" must be a string, got {TYPE_NAMES[tname]}'
        req(f"module_command.name {tname}", "module_command", {"name": v, "cmd": "ping", "args": {}}, "bad_request",
            text)
        text = '"cmd" is missing' if v is None else f'"cmd" must be a string, got {TYPE_NAMES[tname]}'
        req(f"module_command.cmd {tname}", "module_command", {"name": "healthy", "cmd": v, "args": {}}, "bad_request",
            text)
        if tname != "object":
            if v is None:
                req("module_command.args null", "module_command", {"name": "healthy", "cmd": "ping", "args": None},
                    "ok", "pong")
            else:
                req(f"module_command.args {tname}", "module_command", {"name": "healthy", "cmd": "ping", "args": v},
                    "bad_request", f'"args" must be an object, got {TYPE_NAMES[tname]}')
    req("module_command without args", "module_command", None, "bad_request", '"name" is missing')
    req("module_command.name empty", "module_command", {"name": "", "cmd": "ping"}, "bad_request", 'needs "name"')
    req("module_command.name 65 bytes", "module_command", {"name": "m" * 65, "cmd": "ping"}, "bad_request",
        '"name" is longer than 64 bytes')
    req("module_command.name unknown", "module_command", {"name": "nosuch", "cmd": "ping"}, "bad_request",
        "no module named 'nosuch'")
    req("module_command.name with NUL", "module_command", {"name": "cam0\u0000", "cmd": "snapshot"}, "bad_request",
        "no module named")
    req("module_command.cmd empty", "module_command", {"name": "healthy", "cmd": ""}, "bad_request", 'needs "name"')
    req("module_command.cmd 65 bytes", "module_command", {"name": "healthy", "cmd": "c" * 65}, "bad_request",
        '"cmd" is longer than 64 bytes')
    for cmd in ("configure", "start_session", "start_recording", "stop_recording", "stop_session", "shutdown"):
        req(f"module_command.cmd {cmd}", "module_command", {"name": "cam0", "cmd": cmd, "args": {}}, "bad_request",
            f"{cmd} is sent by the supervisor")
    req("module_command note to the notes module", "module_command",
        {"name": "notes", "cmd": "note", "args": {"text": hc.FORGED, "note_id": "1", "trial": 99}}, "bad_request",
        "note is sent by the supervisor; use the note command")
    req("module_command note to every module", "module_command",
        {"name": "*", "cmd": "note", "args": {"text": hc.FORGED}}, "bad_request", "note is sent by the supervisor")
    req("module_command unknown cmd", "module_command", {"name": "cam0", "cmd": "fly", "args": {}},
        "unknown_command", 'unknown command "fly"')
    req("module_command unknown cmd to *", "module_command", {"name": "*", "cmd": "fly", "args": {}}, "ok",
        "unknown_command")
    req("module_command status to *", "module_command", {"name": "*", "cmd": "status", "args": {}}, "ok",
        '"healthy"')
    req("module_command 30-deep args", "module_command",
        {"name": "healthy", "cmd": "ping", "args": json.loads(b'{"x":' + nested(28) + b"}")}, "ok", "pong")
    req("module_command 200 KB args", "module_command", {"name": "healthy", "cmd": "ping", "args": {"p": "p" * 200_000}},
        "ok", "pong")
    req("snapshot", "module_command", {"name": "cam0", "cmd": "snapshot", "args": {}}, "ok", "path")
    req("snapshot with junk args", "module_command",
        {"name": "cam0", "cmd": "snapshot", "args": {"format": 5, "x": [None]}}, "ok", "path")
    req("snapshot to the notes module", "module_command", {"name": "notes", "cmd": "snapshot", "args": {}},
        "unknown_command", 'unknown command "snapshot"')
    for cmd in ("module_enable", "module_disable", "module_restart"):
        for tname, v in TYPES:
            if tname == "string":
                continue
            text = '"name" is missing' if v is None else f'"name" must be a string, got {TYPE_NAMES[tname]}'
            req(f"{cmd}.name {tname}", cmd, {"name": v}, "bad_request", text)
        req(f"{cmd}.name empty", cmd, {"name": ""}, "bad_request", 'needs "name" of a module')
        req(f"{cmd}.name unknown", cmd, {"name": "nosuch"}, "bad_request", "no module named 'nosuch' (modules: cam0")
        req(f"{cmd}.name *", cmd, {"name": "*"}, "bad_request", "no module named '*'")
    for cmd in ("status", "subscribe"):
        req(f"{cmd} with args of every type", cmd, {t: v for t, v in TYPES}, "ok", "supervisor")
    return cases


class HostileControl(unittest.TestCase):
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

    # ---- connections ----
    def duplicate_ids(self):
        c = ControlClient(self.path, timeout=20)
        c.send_raw(request(5, "status") * 3 + request(5, "note", {"text": "duplicate id 5"}) + request(5, "bogus"))
        answers = [c.answer(None) for _ in range(5)]
        c.close()
        self.assertEqual([a["id"] for a in answers], [5] * 5)
        # The note is answered once it is on the disk, after the unknown command.
        self.assertEqual(sorted(a["ok"] for a in answers), [False, True, True, True, True])
        self.notes_accepted.append("duplicate id 5")
        return [("duplicate ids: 5 requests with id 5", "ok x4 + unknown_command", "each answered once, in order")]

    def byte_by_byte(self):
        c = ControlClient(self.path, timeout=20)
        for b in request(77, "status"):
            c.send_raw(bytes([b]))
            time.sleep(0.002)  # pacing: one byte per read
        r = c.answer(77)
        c.close()
        self.assertTrue(r["ok"], r)
        return [("a request one byte at a time", "ok", "")]

    def big_line_streamed(self):
        c = self.connect(timeout=60)
        before = self.status()["control"]
        chunk = b"x" * (1 << 20)
        head = b'{"id":1,"cmd":"status","args":{"p":"'
        c.sendall(head)
        peak_input = 0
        for i in range(100):
            c.sendall(chunk)
            if i % 20 == 0:
                peak_input = max(peak_input, self.status()["control"]["input_bytes"])
        c.sendall(b'"}}\n' + request(2, "status"))
        reader = c.makefile("rb")
        first = json.loads(reader.readline())
        second = json.loads(reader.readline())
        c.close()
        self.assertEqual(first["error"]["code"], "line_too_long", first)
        line_bytes = len(head) + 100 * (1 << 20) + len(b'"}}\n')
        self.assertIn(f"dropped a request of {line_bytes} bytes (limit 262144)", first["error"]["message"])
        self.assertTrue(second["ok"] and second["id"] == 2, second)
        # Held up to the limit, then dropped as it streams.
        self.assertLess(peak_input, LINE_LIMIT + 64 * 1024, "the 100 MiB line was buffered")
        after = self.status()["control"]
        self.assertGreater(after["lines_too_long"], before["lines_too_long"])
        self.reported(f"dropped a request of {line_bytes} bytes")
        return [("one line of 100 MiB, streamed", "line_too_long", first["error"]["message"] +
                 f"; input held at most {peak_input} bytes")]

    def flood(self):
        """100,000 lines a second for 3 s (garbage, and a status every 1000th), read meanwhile."""
        c = self.connect(timeout=60)
        got = {"answers": 0, "parse_error": 0, "ok": 0, "other": 0}

        def read():
            # Told apart without parsing each: the test must not take the camera's CPU.
            f = c.makefile("rb")
            for line in f:
                got["answers"] += 1
                got["ok" if b'"ok":true' in line else "parse_error" if b'"parse_error"' in line else "other"] += 1

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        block = b"not json at all\n" * 999 + request(3, "status")
        sent = 0
        t0 = time.monotonic()
        for i in range(300):
            # Pacing: 1000 lines every 10 ms.
            wait = t0 + i * 0.01 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            c.sendall(block)
            sent += 1000
        took = time.monotonic() - t0
        c.shutdown(socket.SHUT_WR)
        reader.join(60)
        c.close()
        self.assertEqual(got["answers"], sent)
        self.assertEqual((got["ok"], got["other"]), (300, 0))
        return [(f"flood: {sent} lines in {took:.1f} s", f"{got['parse_error']} parse_error + {got['ok']} ok",
                 f"every line answered ({sent / took:.0f} lines/s offered)")]

    def send_and_close(self):
        rows = []
        for i in range(50):
            s = self.connect()
            s.sendall(request(1, "status"))
            s.close()
        text = "sent and closed at once"
        for i in range(10):
            s = self.connect()
            s.sendall(request(1, "note", {"text": f"{text} {i}"}))
            s.close()
            self.notes_accepted.append(f"{text} {i}")
        s = self.connect()
        s.sendall(request(1, "module_command", {"name": "cam0", "cmd": "snapshot", "args": {}}))
        s.close()
        s = self.connect()
        s.sendall(request(1, "status") * 2000)
        s.close()
        rows.append(("50 x status, then close at once (SIGPIPE)", "alive", ""))
        rows.append(("10 x note, then close at once", "alive", "notes saved (checked in notes.csv)"))
        rows.append(("snapshot then close / 2000 status then close", "alive", ""))
        return rows

    def close_unread(self):
        # Closes with its answers unread in its socket: the supervisor's next write fails.
        s = self.connect()
        s.sendall(request(1, "subscribe") + request(2, "status") * 200)
        time.sleep(0.3)  # pacing: let answers arrive unread
        s.close()
        return [("closed with 200 answers unread", "alive", "")]

    def half_close(self):
        rows = []
        for label, data, n in (("status", request(1, "status"), 1),
                               ("500 pipelined status", request(1, "status") * 500, 500),
                               ("a last request without its newline", request(1, "status")[:-1], 1),
                               ("snapshot (answered later)",
                                request(1, "module_command", {"name": "cam0", "cmd": "snapshot", "args": {}}), 1),
                               ("subscribe", request(1, "subscribe"), 1),
                               ("nothing", b"", 0),
                               ("garbage then status", b"junk\n" + request(1, "status"), 2)):
            s = self.connect()
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            f = s.makefile("rb")
            answers = [json.loads(line) for line in f]  # until the supervisor closes its side
            s.close()
            answers = [a for a in answers if "event" not in a or "ok" in a]
            self.assertEqual(len(answers), n, f"half-close after {label}: {str(answers)[:300]}")
            if label != "garbage then status":
                self.assertTrue(all(a.get("ok") for a in answers), f"{label}: {str(answers)[:300]}")
            rows.append((f"half-close after {label}", f"{len(answers)} answers, then EOF", ""))
        # One that half-closes and never reads: let go 10 s later (checked at the end).
        self.half_closed_deaf = self.connect()
        self.half_closed_deaf.sendall(request(1, "status") * 3000)
        self.half_closed_deaf.shutdown(socket.SHUT_WR)
        return rows

    def note_storm(self):
        """40 notes of 60 KB from one client, and 500 small ones pipelined: every one saved."""
        c = ControlClient(self.path, timeout=30)
        texts = [f"storm {i} " + "s" * 60000 for i in range(40)] + [f"pipelined note {i}" for i in range(500)]
        c.send_raw(b"".join(request(i + 1, "note", {"text": t}) for i, t in enumerate(texts[:40])))
        big = [c.answer(i + 1, timeout=30) for i in range(40)]
        sender = threading.Thread(target=lambda: c.send_raw(
            b"".join(request(i + 1, "note", {"text": t}) for i, t in enumerate(texts) if i >= 40)), daemon=True)
        sender.start()
        small = [c.answer(i + 1, timeout=30) for i in range(40, len(texts))]
        sender.join(30)
        c.close()
        failed = [a for a in big + small if not a.get("ok")]
        self.assertEqual(failed, [])
        self.notes_accepted += texts
        return [("note storm: 40 x 60 KB + 500 pipelined", "ok x540", "each saved (checked in notes.csv)")]

    def storm(self, clients, per_client, line, refusal):
        """clients at once, each pipelining per_client requests (line(k, i) makes one) and reading
        the answers: each is ok, or unavailable with refusal in its message, or the client was let
        go by the input bound. Returns the counts and the (k, i) of every ok."""
        before = self.status()["control"]
        outcome = {"ok": 0, "refused": 0, "cut off": 0, "oks": []}
        lock = threading.Lock()

        def client(k):
            s = None
            try:
                s = self.connect(timeout=30)
                data = b"".join(line(k, i) for i in range(per_client))
                threading.Thread(target=self.send_quietly, args=(s, data), daemon=True).start()
                f = s.makefile("rb")
                for _ in range(per_client):
                    raw = f.readline()
                    if not raw:
                        raise ConnectionResetError
                    m = json.loads(raw)
                    with lock:
                        if m["ok"]:
                            outcome["ok"] += 1
                            outcome["oks"].append((k, m["id"]))
                        else:
                            self.assertEqual(m["error"]["code"], "unavailable", m)
                            self.assertIn(refusal, m["error"]["message"])
                            outcome["refused"] += 1
            except OSError:
                with lock:
                    outcome["cut off"] += 1
            finally:
                if s is not None:
                    s.close()

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        let_go = self.status()["control"]["clients_dropped"] - before["clients_dropped"]
        # Only the input bound lets them go.
        self.assertEqual(outcome["cut off"] > 0, let_go > 0, (outcome["cut off"], let_go))
        self.assertGreater(outcome["ok"], 0)
        return outcome

    def note_storm_40(self):
        """40 clients each pipelining 50 notes of 60 KB: past 2 MiB of notes waiting for the notes
        module they are refused, and the clients holding the most input are let go."""
        dropped = self.status()["notes"]["dropped"]
        text = lambda k, i: f"storm40 {k}.{i} " + "t" * 60000  # noqa: E731
        o = self.storm(40, 50, lambda k, i: request(i, "note", {"text": text(k, i)}), "too many notes waiting")
        self.assertEqual(self.status()["notes"]["dropped"] - dropped, o["refused"])
        self.notes_accepted += [text(k, i) for k, i in o["oks"]]
        return [("40 clients x 50 notes of 60 KB", f"{o['ok']} ok, {o['refused']} unavailable",
                 f"{o['cut off']} clients let go (they held the most input)")]

    def module_command_storm_40(self):
        """40 clients each pipelining 30 module commands with 200 KB of arguments: past 1 MiB the
        module has not read, they are refused."""
        refused = self.status()["module_commands_refused"]
        o = self.storm(40, 30, lambda k, i: request(i, "module_command", {
            "name": "healthy", "cmd": "ping", "args": {"n": i, "pad": "p" * 200_000}}), "healthy has not read")
        self.assertEqual(self.status()["module_commands_refused"] - refused, o["refused"])
        return [("40 clients x 30 module commands of 200 KB", f"{o['ok']} ok, {o['refused']} unavailable",
                 f"{o['cut off']} clients let go (they held the most input)")]

    @staticmethod
    def send_quietly(sock, data):
        try:
            sock.sendall(data)
        except OSError:
            pass  # let go meanwhile

    def module_command_flood(self):
        c = self.connect(timeout=60)
        n = 5000
        got = []

        def read():
            f = c.makefile("rb")
            for line in f:
                got.append(json.loads(line))
                if len(got) == n:
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        c.sendall(b"".join(request(i, "module_command", {"name": "healthy", "cmd": "ping", "args": {"n": i}})
                           for i in range(n)))
        reader.join(60)
        c.close()
        self.assertEqual(len(got), n)
        self.assertTrue(all(a.get("ok") for a in got), [a for a in got if not a.get("ok")][:3])
        self.assertEqual([a["result"]["pong"] for a in got], list(range(n)))
        return [(f"{n} module commands pipelined", f"ok x{n}", "in order, 8 at a time in flight")]

    def pipeliners(self):
        """10 clients pipelining 2000 status each without reading, for 3 s; then they read."""
        base = self.status()["control"]  # the subscribers that never read hold some output too
        clients = [self.connect(timeout=60) for _ in range(10)]
        data = request(1, "status") * 2000
        senders = [threading.Thread(target=s.sendall, args=(data,), daemon=True) for s in clients]
        for t in senders:
            t.start()
        worst = {"input_bytes": 0, "output_bytes": 0}
        t_status = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            control = self.status()["control"]
            t_status.append((time.monotonic() - t0) * 1000)
            for k in worst:
                worst[k] = max(worst[k], control[k] - base[k])
            time.sleep(0.2)  # pacing
        # They all read at once now (each within 10 s of being blocked, or it would be let go).
        counts = [0] * len(clients)

        def read(k):
            f = clients[k].makefile("rb")
            while counts[k] < 2000 and f.readline():
                counts[k] += 1

        readers = [threading.Thread(target=read, args=(k,), daemon=True) for k in range(len(clients))]
        for t in readers:
            t.start()
        for t in readers:
            t.join(60)
        for s in clients:
            s.close()
        for t in senders:
            t.join(10)
        self.assertEqual(counts, [2000] * 10)
        self.assertLess(worst["input_bytes"], 10 * 8 * 1024)
        self.assertLess(worst["output_bytes"], 10 * 16 * 1024)
        return [("10 clients pipelining 2000 status unread", "20000 answers once read",
                 f"input <= {worst['input_bytes']} B, output <= {worst['output_bytes']} B, "
                 f"status meanwhile max {max(t_status):.0f} ms")]

    def concurrent_200(self):
        """200 clients at once: each a status, a note and a subscribe, all answered."""
        socks = [self.connect(timeout=30) for _ in range(200)]
        texts = [f"one of 200 clients: {i}" for i in range(200)]
        for s, text in zip(socks, texts):
            s.sendall(request(1, "status") + request(2, "note", {"text": text}) + request(3, "subscribe"))
        t0 = time.monotonic()
        answered = 0
        for s in socks:
            f = s.makefile("rb")
            seen = set()
            while len(seen) < 3:
                m = json.loads(f.readline())
                if "ok" in m:
                    self.assertTrue(m["ok"], m)
                    seen.add(m["id"])
            answered += 1
        took = time.monotonic() - t0
        during = self.status()["control"]
        for s in socks:
            s.close()
        self.notes_accepted += texts
        self.assertEqual(answered, 200)
        self.assertGreaterEqual(during["clients"], 200)
        return [("200 clients at once (status, note, subscribe)", "600 ok", f"all answered within {took:.1f} s")]

    def over_the_client_limit(self):
        """Up to the limit of 256 and 3 more: those are refused with a reason, and a row in events.csv."""
        before = self.status()["control"]
        # The clients of earlier cases gone first, and no more leaving.
        wait_for(lambda: self.status()["control"]["clients"] < 40, 10, what="the clients of earlier cases to go")
        counts = []

        def settled():
            counts.append(self.status()["control"]["clients"])
            return len(counts) >= 5 and len(set(counts[-5:])) == 1

        wait_for(settled, 10, interval=0.1, what="the number of clients to settle")
        socks = [self.connect() for _ in range(256 - counts[-1] + 3)]
        refused = []
        for s in socks[-3:]:
            s.settimeout(5)
            f = s.makefile("rb")
            try:
                refused.append((json.loads(f.readline()), f.readline()))
            except socket.timeout:
                pass  # accepted: a client of an earlier case left after all
        for s in socks:
            s.close()
        self.assertTrue(refused, "nobody was refused")
        for answer, eof in refused:
            self.assertEqual(answer["error"]["code"], "unavailable", answer)
            self.assertIn("too many clients", answer["error"]["message"])
            self.assertEqual(eof, b"", "the refused client's socket is closed")
        after = self.status()["control"]
        self.assertEqual(after["clients_refused"] - before["clients_refused"], len(refused))
        self.reported("refused a control client: 256 are connected")
        return [(f"clients 257 to {256 + len(refused)}", "unavailable", refused[0][0]["error"]["message"] +
                 ", then closed")]

    def unfinished_lines(self):
        """200 clients each leave 100 KB of a line unfinished (20 MB): past 4 MiB together, the
        ones holding the most go."""
        before = self.status()["control"]
        socks = []
        for i in range(200):
            s = self.connect()
            try:
                s.sendall(b'{"id":1,"cmd":"status","args":{"p":"' + b"u" * 100_000)
            except OSError:
                pass  # dropped meanwhile
            socks.append(s)
        worst = 0
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            worst = max(worst, self.status()["control"]["input_bytes"])
            time.sleep(0.1)  # pacing
        after = self.status()["control"]
        dropped = after["clients_dropped"] - before["clients_dropped"]
        # The rest are still served once they finish their lines.
        served = 0
        for s in socks:
            try:
                s.sendall(b'"}}\n')
                s.settimeout(5)
                line = s.makefile("rb").readline()
                served += 1 if line and json.loads(line).get("ok") else 0
            except OSError:
                pass
            s.close()
        self.assertLessEqual(worst, 4 * 1024 * 1024 + 200_000)
        self.assertGreater(dropped, 100)
        self.assertEqual(served + dropped, 200)
        told = self.reported("unserved input passed")
        flood = hc.wait_events(self.rig, lambda e: e["event"] == "control_flood", 5,
                               what="the count of the rows the rate limit held back")
        return [("200 clients x 100 KB unfinished lines", f"{dropped} disconnected, {served} served",
                 f"input held at most {worst} bytes; {told}"),
                ("(the rows held back)", "control_flood", flood["detail"])]

    def connect_churn(self):
        for _ in range(1000):
            s = socket.socket(socket.AF_UNIX)
            s.connect(self.path)
            s.close()
        wait_for(lambda: self.status()["control"]["clients"] < 40, 10, what="the churned clients to go")
        return [("1000 x connect and close", "alive", "")]

    def deaf_subscribers_dropped(self):
        """The 20 subscribers that never read: events dropped for them, then disconnected."""
        wait_for(lambda: self.all_closed(self.deaf), 30, interval=0.2,
                 what="the subscribers that never read to be disconnected")
        control = self.status()["control"]
        self.assertGreater(control["events_dropped"], 0)
        row = self.reported("did not read its events for 10 s")
        self.reported("does not read its events: dropping them")
        wait_for(lambda: self.all_closed([self.half_closed_deaf]), 20, interval=0.2,
                 what="the half-closed client that never reads")
        for s in self.deaf + [self.half_closed_deaf]:
            s.close()
        control = self.status()["control"]
        self.assertGreaterEqual(control["clients_dropped"] - self.dropped_at_start, 21)
        told = self.reported("did not read its answers for 10 s")
        return [("20 subscribers that never read", "disconnected", row),
                ("half-closed, 3000 requests, never reads", "disconnected", told)]

    def reported(self, problem):
        """The control_client row naming problem; or, if the rate limit (2 a second, burst 10)
        held it back, the control_flood row that counts it."""
        def found():
            rows = self.rig.events()
            told = [e for e in rows if e["event"] == "control_client" and problem in e["detail"]]
            held = [e for e in rows if e["event"] == "control_flood"]
            return (told or held or [None])[0]
        row = wait_for(found, 5, what=f"an events.csv row for '{problem}'")
        return row["detail"][:90]

    def all_closed(self, socks):
        """True once the supervisor closed every one of socks (seen without reading them: a read
        would make a subscriber that never reads keep up)."""
        poller = select.poll()
        for s in socks:
            poller.register(s, select.POLLRDHUP)
        hung_up = [fd for fd, ev in poller.poll(0) if ev & (select.POLLRDHUP | select.POLLHUP)]
        return len(hung_up) == len(socks)

    def idle_client_still_served(self):
        self.idle.sendall(request(1, "status"))
        line = self.idle.makefile("rb").readline()
        self.idle.close()
        self.assertTrue(json.loads(line)["ok"])
        wait_for(lambda: self.status()["control"]["clients"] < 10, 10, what="every hostile client to go")
        fds = len(os.listdir(f"/proc/{self.rig.proc.pid}/fd"))
        self.assertLessEqual(fds, self.fds_before + 2, "file descriptors leaked")
        return [("silent the whole time, then status", "ok", f"{fds} fds open (before: {self.fds_before})")]

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

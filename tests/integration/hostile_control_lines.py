"""The hostile request lines of test_hostile_control.py: every field of every request with every
wrong JSON type, numbers out of range, ids that are not ids, deep nesting, invalid UTF-8 and NUL
bytes, lines over the limit; each with the answer the supervisor must give."""
import json

import hostile_common as hc

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

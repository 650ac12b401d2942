#!/usr/bin/env python3
"""A pilogger module written from scratch in Python: it speaks the module protocol itself, so it
can say anything at all. The hostile peer of tests/integration/test_hostile_module.py.

The supervisor starts it as `hostile_module.py --supervised --name NAME` (config: `type: test`,
`executable:` this file). NAME picks its first line (HELLOS below; any other name says a valid
hello). It answers every lifecycle command ok, sends stats every 500 ms from a thread, exits 0 on
shutdown or EOF on stdin, and on the command `hostile` does what the args say:

  b64             these bytes go to stdout as they are, `repeat` times (default once), before the
                  answer: once the answer is back, the supervisor has read them
  per_second      with repeat: a thread writes them after the answer, at most this many a second
  seconds         with per_second: the flood ends after this long, whatever is left unsent
  big_line_bytes  one line of this many bytes (a log event), written by a thread after the answer
  stderr_seconds  a thread writes stderr lines of stderr_line_bytes (default 200) for this long
  reply_twice     the answer is sent twice
  reply_as        the answer is this object instead ("id" added unless it has one)
  reply_as_b64    the answer is these bytes instead (newline included)
  no_reply        no answer at all

Its stats carry `floods_done` and `lines_flooded`, so a test knows when a thread has finished.
Standard library only; stdout is a blocking pipe, so a flood goes as fast as the supervisor reads.
"""
import base64
import json
import os
import sys
import threading
import time

OUT = threading.Lock()
STATE = {"state": "idle", "floods_done": 0, "lines_flooded": 0, "stderr_bytes": 0, "commands": 0}
EXTRA_STATS = {}


def write_out(data):
    view = memoryview(data)
    while view:
        n = os.write(1, view)
        view = view[n:]


def send(data):
    with OUT:
        write_out(data)


def line(obj):
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


def name_arg():
    args = sys.argv[1:]
    return args[args.index("--name") + 1] if "--name" in args else "hostile"


NAME = name_arg()


def hello(**fields):
    h = {"event": "hello", "module": NAME, "protocol": 1, "type": "test", "version": "0.0-hostile",
         "pid": os.getpid(), "capabilities": ["hostile"], "mono_ns": time.monotonic_ns()}
    for k, v in fields.items():
        if v is DROP:
            h.pop(k, None)
        else:
            h[k] = v
    return line(h)


DROP = object()
HELLO_HEAD = b'{"event":"hello","module":"%s","protocol":1,"type":"test",' % NAME.encode()

HELLOS = {
    "hello_protocol_string": lambda: hello(protocol="1"),
    "hello_protocol_float": lambda: hello(protocol=1.0),
    "hello_protocol_2": lambda: hello(protocol=2),
    "hello_protocol_huge": lambda: HELLO_HEAD.replace(b'"protocol":1', b'"protocol":18446744073709551616') + b'"version":"x"}\n',
    "hello_protocol_missing": lambda: hello(protocol=DROP),
    "hello_version_number": lambda: hello(version=7),
    "hello_caps_string": lambda: hello(capabilities="all"),
    "hello_caps_deep_20000": lambda: HELLO_HEAD + b'"capabilities":' + b"[" * 20000 + b"]" * 20000 + b"}\n",
    "hello_caps_100k": lambda: hello(capabilities=["c"] * 100000),
    "hello_invalid_utf8": lambda: HELLO_HEAD + b'"version":"\xff\xfe\xc3"}\n',
    "hello_nul": lambda: HELLO_HEAD + b'"version":"a\x00b"}\n',
    "no_hello_steady_stats": lambda: b"",
}


def stats_loop():
    while True:
        time.sleep(0.5)
        s = {"event": "stats", "mono_ns": time.monotonic_ns(), **STATE, **EXTRA_STATS}
        send(line(s))


def flood(data, repeat, per_second, seconds):
    start = time.monotonic()
    sent = 0
    while sent < repeat:
        elapsed = time.monotonic() - start
        if seconds and elapsed >= seconds:
            break
        due = min(repeat, int(per_second * elapsed) + 1) if per_second else repeat
        n = min(due - sent, 1000)
        if n <= 0:
            time.sleep(0.001)
            continue
        send(data * n)
        sent += n
    STATE["lines_flooded"] += sent
    STATE["floods_done"] += 1


def big_line(size):
    head = b'{"event":"log","message":"'
    tail = b'"}\n'
    body = size - len(head) - len(tail)
    chunk = b"x" * (1 << 20)
    with OUT:  # one line: nothing may come between its pieces
        write_out(head)
        while body > 0:
            piece = chunk[:min(body, len(chunk))]
            write_out(piece)
            body -= len(piece)
        write_out(tail)
    STATE["lines_flooded"] += 1
    STATE["floods_done"] += 1


def stderr_flood(seconds, line_bytes):
    text = ("E" * (line_bytes - 1) + "\n").encode()
    block = text * max(1, 16384 // len(text))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        os.write(2, block)
        STATE["stderr_bytes"] += len(block)
    STATE["floods_done"] += 1


def background(fn, *args):
    threading.Thread(target=fn, args=args, daemon=True).start()


def reply(id_, result=None):
    return line({"id": id_, "ok": True, "result": result or {}})


def hostile(id_, args):
    data = base64.b64decode(args.get("b64", ""))
    repeat = int(args.get("repeat", 1))
    per_second = args.get("per_second")
    if "stats" in args:
        EXTRA_STATS.clear()
        EXTRA_STATS.update(args["stats"])
    if data and not per_second:
        send(data * repeat)
    if "reply_as_b64" in args:
        send(base64.b64decode(args["reply_as_b64"]))
    elif "reply_as" in args:
        answer = dict(args["reply_as"])
        answer.setdefault("id", id_)
        send(line(answer))
    elif not args.get("no_reply"):
        send(reply(id_) * (2 if args.get("reply_twice") else 1))
    if data and per_second:
        background(flood, data, repeat, float(per_second), float(args.get("seconds", 0)))
    if args.get("big_line_bytes"):
        background(big_line, int(args["big_line_bytes"]))
    if args.get("stderr_seconds"):
        background(stderr_flood, float(args["stderr_seconds"]), int(args.get("stderr_line_bytes", 200)))


def main():
    first = HELLOS.get(NAME, hello)()
    if first:
        send(first)
    background(stats_loop)
    for raw in sys.stdin.buffer:
        try:
            msg = json.loads(raw)
            id_, cmd, args = msg["id"], msg["cmd"], msg.get("args") or {}
        except (ValueError, KeyError, TypeError):
            continue
        STATE["commands"] += 1
        if cmd == "hostile":
            hostile(id_, args)
            continue
        if cmd == "start_recording":
            STATE["state"] = "recording"
        elif cmd in ("stop_recording", "start_session"):
            STATE["state"] = "session"
        elif cmd == "stop_session":
            STATE["state"] = "configured"
        send(reply(id_))
        if cmd == "shutdown":
            os._exit(0)
    os._exit(0)  # EOF on stdin: done


if __name__ == "__main__":
    main()

"""The NDJSON protocol under bad input, on both the module side (stdin/stdout) and the control socket."""
import array
import fcntl
import json
import os
import socket
import subprocess
import tempfile
import time
import unittest

from harness import BIN, Rig, read_csv, wait_for

SIOCOUTQ = 0x5411  # TIOCOUTQ: what a unix socket sent that its peer has not read yet (0: all read)
FIONREAD = 0x541B  # bytes in a pipe nobody has read yet


def unread_bytes(fd, request):
    count = array.array("i", [0])
    fcntl.ioctl(fd, request, count)
    return count[0]


class ModuleEnd:
    """A module process driven directly over its stdin/stdout, as the supervisor does."""

    def __init__(self, test, executable="pilogger-notes", name="notes"):
        self.proc = subprocess.Popen([os.path.join(BIN, executable), "--supervised", "--name", name],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        test.addCleanup(self.close)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buffer = b""
        self.messages = []

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            stream.close()

    def send(self, data):
        self.proc.stdin.write(data if isinstance(data, bytes) else data.encode())
        self.proc.stdin.flush()

    def pump(self):
        try:
            chunk = self.proc.stdout.read()
        except BlockingIOError:
            chunk = None
        if chunk:
            self.buffer += chunk
            *lines, self.buffer = self.buffer.split(b"\n")
            self.messages += [json.loads(line) for line in lines if line]

    def wait(self, predicate, timeout=5, what="a message"):
        def found():
            self.pump()
            for m in self.messages:
                if predicate(m):
                    self.messages.remove(m)
                    return m
            return None
        return wait_for(found, timeout, interval=0.01, what=what)

    def reply(self, id_, timeout=5):
        return self.wait(lambda m: m.get("id") == id_ and "ok" in m, timeout, what=f"the answer to {id_}")

    def command(self, id_, cmd, **args):
        self.send(json.dumps({"id": id_, "cmd": cmd, "args": args}) + "\n")
        return self.reply(id_)


class ModuleProtocol(unittest.TestCase):
    def test_hello_then_bad_input_is_answered_and_survived(self):
        m = ModuleEnd(self)
        hello = m.wait(lambda x: x.get("event") == "hello", what="hello")
        self.assertEqual(hello["protocol"], 1)
        self.assertEqual(hello["module"], "notes")
        self.assertIn("note", hello["capabilities"])

        m.send("this is not json\n")
        r = m.wait(lambda x: x.get("ok") is False and x["error"]["code"] == "parse_error")
        self.assertIsNone(r["id"])
        m.send("[1, 2, 3]\n")
        r = m.wait(lambda x: x.get("ok") is False and "array" in x["error"]["message"])
        m.send('{"id": 4, "cmd": "start_recording", "args": [1]}\n')
        self.assertEqual(m.reply(4)["error"]["code"], "bad_request")
        self.assertEqual(m.command(5, "fly_to_the_moon")["error"]["code"], "unknown_command")
        # A 10 MiB line is dropped with an error, never buffered whole; the next line still works.
        m.send(b'{"id": 6, "cmd": "status", "args": {"x": "' + b"x" * (10 * 1024 * 1024) + b'"}}\n')
        r = m.wait(lambda x: x.get("ok") is False and x["error"]["code"] == "line_too_long", timeout=10)
        self.assertIn("10485", r["error"]["message"])
        self.assertTrue(m.command(7, "status")["ok"])
        # A command split across several writes.
        for piece in ['{"id": 8, "cm', 'd": "sta', 'tus"}', "\n"]:
            m.send(piece)
            # Each piece read by the module on its own before the next is written.
            wait_for(lambda: unread_bytes(m.proc.stdin.fileno(), FIONREAD) == 0, 5, interval=0.001,
                     what="the module to read the piece")
        self.assertTrue(m.reply(8)["ok"])
        # Lifecycle order is enforced with clear errors.
        r = m.command(9, "start_recording", trial=1)
        self.assertEqual(r["error"]["code"], "bad_state")
        r = m.command(10, "note", text="no session yet")
        self.assertFalse(r["ok"])
        self.assertIsNone(m.proc.poll(), "still running after all that")

    def test_stats_heartbeat_and_stdin_eof(self):
        m = ModuleEnd(self)
        m.wait(lambda x: x.get("event") == "hello")
        with tempfile.TemporaryDirectory() as session:
            self.assertTrue(m.command(1, "configure", settings={}, stats_interval_ms=500)["ok"])
            self.assertTrue(m.command(2, "start_session", session_dir=session, session_start_mono_ns=1)["ok"])
            start = time.monotonic()
            stats = [m.wait(lambda x: x.get("event") == "stats", timeout=2) for _ in range(4)]
            self.assertLess(time.monotonic() - start, 3.0, "at least one stats event a second")
            self.assertTrue(all("mono_ns" in s and "state" in s for s in stats))
            self.assertTrue(m.command(3, "note", text="a, b\n\"c\"", note_id=1)["ok"])
            # EOF on stdin: finish, close files, exit 0.
            m.proc.stdin.close()
            self.assertEqual(m.proc.wait(timeout=5), 0)
            rows = read_csv(os.path.join(session, "notes", "notes.csv"))
            self.assertEqual([r["text"] for r in rows], ['a, b\n"c"'])


class ControlSocket(unittest.TestCase):
    def test_bad_requests_are_answered_and_the_supervisor_keeps_going(self):
        rig = Rig()
        self.addCleanup(rig.cleanup)
        rig.start()
        path = os.path.join(rig.runtime, "pilogger", "control.sock")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.dirname(path)).st_mode & 0o777, 0o700)

        sock = socket.socket(socket.AF_UNIX)
        sock.connect(path)
        sock.settimeout(10)
        reader = sock.makefile("rb")

        def ask(data):
            sock.sendall(data)
            return json.loads(reader.readline())

        self.assertEqual(ask(b"garbage\n")["error"]["code"], "parse_error")
        self.assertEqual(ask(b'"just a string"\n')["error"]["code"], "parse_error")
        self.assertEqual(ask(b'{"id": 3, "cmd": "teleport"}\n')["error"]["code"], "unknown_command")
        self.assertEqual(ask(b'{"id": 4, "cmd": "note", "args": {"text": 5}}\n')["error"]["code"], "bad_request")
        self.assertEqual(ask(b'{"id": 5, "ok": true}\n')["error"]["code"], "bad_request")
        r = ask(b'{"id": 6, "cmd": "status", "args": {"pad": "' + b"p" * (10 * 1024 * 1024) + b'"}}\n')
        self.assertEqual(r["error"]["code"], "line_too_long")
        sock.sendall(b'{"id": 7, ')
        wait_for(lambda: unread_bytes(sock.fileno(), SIOCOUTQ) == 0, 5, interval=0.001,
                 what="the supervisor to read the first half")
        r = ask(b'"cmd": "status"}\n')
        self.assertEqual(r["id"], 7)
        self.assertTrue(r["ok"])
        # Subscribers get a stream of events (stats heartbeats, state changes).
        r = ask(b'{"id": 8, "cmd": "subscribe"}\n')
        self.assertTrue(r["ok"])
        events = set()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and "stats" not in events:
            events.add(json.loads(reader.readline()).get("event"))
        self.assertIn("stats", events)
        # A client that vanishes mid-request costs nothing.
        sock.sendall(b'{"id": 9, "cmd": "trial_start"}\n')
        sock.close()
        trial = wait_for(lambda: rig.status()["trial"], 5, what="the trial the vanished client started")
        self.assertEqual(trial["number"], 1)
        code, _, err = rig.shutdown()
        self.assertEqual(code, 0, err)


if __name__ == "__main__":
    unittest.main()

"""The hostile clients of test_hostile_control.py, a mixin of its test case: connections that
close at once or half-close, floods, storms, pipeliners, 200 at once and more than the limit,
unfinished lines, subscribers that never read. Each returns rows for the table; it uses the test's
connect(), status(), self.path, self.rig and the sockets the test opened at the start."""
import json
import os
import select
import socket
import threading
import time

import hostile_common as hc
from harness import ControlClient, wait_for
from hostile_control_lines import LINE_LIMIT, request


class HostileClients:
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

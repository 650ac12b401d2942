"""End-to-end tests of tests/tools/neon_sim.py over loopback.

Run from the repository root:
    python3 -m unittest discover -s tests/tools -v
"""
import base64
import hashlib
import http.client
import json
import os
import socket
import struct
import time
import unittest

import neon_sim_support as sim


class HttpWebSocketTimeEcho(sim.SimTest):
    def test_status(self):
        ports = self.start("--device-name", "Bench Neon", "--battery", "42")
        conn = http.client.HTTPConnection("127.0.0.1", ports["http"], timeout=5)
        st, obj = self.http("GET", "/api/status", conn=conn)
        self.assertEqual(st, 200)
        self.assertEqual(obj["message"], "Success")
        models = {}
        for comp in obj["result"]:
            models.setdefault(comp["model"], []).append(comp["data"])
        phone = models["Phone"][0]
        self.assertEqual(phone["device_name"], "Bench Neon")
        self.assertEqual(phone["battery_level"], 42)
        self.assertEqual(phone["time_echo_port"], ports["time_echo"])
        self.assertEqual(phone["port"], ports["http"])
        self.assertEqual(models["Hardware"][0]["version"], "2.0")
        direct = {s["sensor"]: s for s in models["Sensor"] if s["conn_type"] == "DIRECT"}
        self.assertEqual(set(direct), {"world", "gaze", "imu", "eye_events"})
        for name, s in direct.items():
            self.assertEqual((s["port"], s["protocol"], s["params"], s["connected"]),
                             (ports["rtsp"], "rtsp", "camera=" + name, True))
        self.assertTrue(any(s["conn_type"] == "WEBSOCKET" for s in models["Sensor"]))
        self.assertNotIn("Recording", models)
        # Same keep-alive connection: 404, then status again.
        st, _ = self.http("GET", "/api/nope", conn=conn)
        self.assertEqual(st, 404)
        st, _ = self.http("GET", "/api/status", conn=conn)
        self.assertEqual(st, 200)
        conn.close()

    def test_event_and_recording(self):
        self.start()
        st, obj = self.http("POST", "/api/event", {"name": "first"})
        self.assertEqual(st, 200)
        self.assertEqual(obj["message"], "Event sent.")
        self.assertEqual(obj["result"]["name"], "first")
        self.assertIsNone(obj["result"]["recording_id"])
        self.assertLess(abs(obj["result"]["timestamp"] - time.time_ns()), 10**9)
        st, obj = self.http("POST", "/api/recording:start")
        self.assertEqual(st, 200)
        rec_id = obj["result"]["id"]
        st, obj = self.http("POST", "/api/recording:start")
        self.assertEqual(st, 500)
        self.assertEqual(obj["message"], "already recording")
        st, obj = self.http("GET", "/api/status")
        recs = [c["data"] for c in obj["result"] if c["model"] == "Recording"]
        self.assertEqual(recs[0]["id"], rec_id)
        st, obj = self.http("POST", "/api/event", {"name": "second", "timestamp": 1234567890})
        self.assertEqual(obj["result"], {"name": "second", "recording_id": rec_id,
                                         "timestamp": 1234567890})
        st, obj = self.http("POST", "/api/event", {"timestamp": 5})
        self.assertEqual(st, 400)
        # Chunked body with Expect: 100-continue, on a raw socket.
        s = socket.create_connection(("127.0.0.1", self.ports["http"]), timeout=5)
        self.addCleanup(s.close)
        s.sendall(b"POST /api/event HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n"))
        s.sendall(b"".join(b"%x\r\n%s\r\n" % (len(c), c)
                           for c in (b'{"name": "c', b'hunked"', b"}", b"")))
        reply = b""
        while True:
            data = s.recv(4096)
            if not data:
                break
            reply += data
        self.assertTrue(reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply)
        self.assertEqual(json.loads(reply.split(b"\r\n\r\n", 1)[1])["result"]["name"],
                         "chunked")
        st, obj = self.http("POST", "/api/recording:stop_and_save")
        self.assertEqual((st, obj["result"]["id"]), (200, rec_id))
        self.assertGreater(obj["result"]["rec_duration_ns"], 0)
        st, _ = self.http("POST", "/api/recording:cancel")
        self.assertEqual(st, 500)
        time.sleep(1.1)  # flushed at least once a second
        events = [r for r in sim.read_truth(self.truth) if r["kind"] == "api_event"]
        self.assertEqual([e["name"] for e in events], ["first", "second", "chunked"])
        self.assertEqual(events[1]["timestamp"], 1234567890)
        self.assertEqual(events[1]["recording_id"], rec_id)
        truth = self.finish()
        recs = [(r["action"], r["id"]) for r in truth if r["kind"] == "recording"]
        self.assertEqual(recs, [("start", rec_id), ("stop_and_save", rec_id)])

    def test_websocket(self):
        ports = self.start()
        s = socket.create_connection(("127.0.0.1", ports["http"]), timeout=5)
        self.addCleanup(s.close)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET /api/status HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(4096)
        head, buf = buf.split(b"\r\n\r\n", 1)
        self.assertIn(b" 101 ", head.split(b"\r\n")[0])
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC11B65").encode()).digest())
        self.assertIn(b"Sec-WebSocket-Accept: " + accept, head)

        def frame():
            nonlocal buf
            while True:
                if len(buf) >= 4:
                    self.assertFalse(buf[1] & 0x80, "server frames are not masked")
                    n, off = buf[1] & 0x7F, 2
                    self.assertLess(n, 127)
                    if n == 126:
                        n, off = struct.unpack("!H", buf[2:4])[0], 4
                    if len(buf) >= off + n:
                        op, payload, buf = buf[0] & 0x0F, buf[off:off + n], buf[off + n:]
                        return op, payload
                data = s.recv(65536)
                self.assertTrue(data, "WebSocket closed")
                buf += data

        def send(op, payload):
            mask = os.urandom(4)
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            s.sendall(bytes((0x80 | op, 0x80 | len(payload))) + mask + masked)

        first = [json.loads(frame()[1]) for _ in range(8)]
        self.assertEqual([c["model"] for c in first[:2]], ["Phone", "Hardware"])
        self.assertEqual(sum(c["model"] == "Sensor" for c in first), 6)
        send(9, b"hi")
        self.assertEqual(frame(), (10, b"hi"))
        st, obj = self.http("POST", "/api/recording:start")
        op, payload = frame()
        self.assertEqual(op, 1)
        rec = json.loads(payload)
        self.assertEqual((rec["model"], rec["data"]["action"], rec["data"]["id"]),
                         ("Recording", "START", obj["result"]["id"]))
        send(8, struct.pack("!H", 1000))
        self.assertEqual(frame()[0], 8)

    def test_time_echo_offset(self):
        ports = self.start("--offset-s", "-3.25")
        s = socket.create_connection(("127.0.0.1", ports["time_echo"]), timeout=5)
        self.addCleanup(s.close)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        offsets = []
        for i in range(30):
            t1 = time.time_ns() // 10**6
            req = struct.pack(">Q", t1)
            if i % 3 == 0:           # split request
                s.sendall(req[:3])
                time.sleep(0.002)
                s.sendall(req[3:])
            else:
                s.sendall(req)
            reply = b""
            while len(reply) < 16:
                reply += s.recv(16 - len(reply))
            t2 = time.time_ns() // 10**6
            echo, phone_ms = struct.unpack(">QQ", reply)
            self.assertEqual(echo, t1)
            offsets.append(phone_ms - (t1 + t2) / 2)
        # Several requests in one write.
        t1 = time.time_ns() // 10**6
        s.sendall(b"".join(struct.pack(">Q", t1 + k) for k in range(5)))
        reply = b""
        while len(reply) < 80:
            reply += s.recv(80 - len(reply))
        self.assertEqual([struct.unpack(">Q", reply[16 * k:16 * k + 8])[0] for k in range(5)],
                         [t1 + k for k in range(5)])
        offsets.sort()
        self.assertAlmostEqual(offsets[len(offsets) // 2], -3250, delta=5)


if __name__ == "__main__":
    unittest.main()

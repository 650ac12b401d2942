"""End-to-end tests of tests/tools/neon_sim.py over loopback.

Run from the repository root:
    python3 -m unittest discover -s tests/tools -v
"""
import base64
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

SIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "neon_sim.py")
NTP_UNIX_DELTA = 2208988800


def read_truth(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def parse_rtp(pkt):
    b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", pkt[:12])
    assert b0 >> 6 == 2
    off = 12 + 4 * (b0 & 0x0F)
    return {"marker": bool(b1 & 0x80), "pt": b1 & 0x7F, "seq": seq, "ts": ts, "ssrc": ssrc,
            "payload": pkt[off:]}


def parse_sr(pkt):
    """(ssrc, ntp unix ns, rtp ts) of the first SR in an RTCP compound packet."""
    while pkt:
        length = (struct.unpack("!H", pkt[2:4])[0] + 1) * 4
        if pkt[1] == 200:
            ssrc, sec, frac, ts = struct.unpack("!IIII", pkt[4:20])
            return ssrc, (sec - NTP_UNIX_DELTA) * 10**9 + (frac * 10**9 >> 32), ts
        pkt = pkt[length:]
    return None


def decode_pb(buf):
    """Minimal protobuf decoder: {field: value} (varint, fixed32 or bytes)."""
    out, i = {}, 0
    while i < len(buf):
        key, i = varint(buf, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            out[field], i = varint(buf, i)
        elif wt == 5:
            out[field] = struct.unpack("<f", buf[i:i + 4])[0]
            i += 4
        elif wt == 2:
            n, i = varint(buf, i)
            out[field] = buf[i:i + n]
            i += n
        else:
            raise ValueError("wire type %d" % wt)
    return out


def varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


class Rtsp:
    """Tiny RTSP/RTP client: one stream, RTP/RTCP over UDP."""

    def __init__(self, port, camera):
        self.url = "rtsp://127.0.0.1:%d/?camera=%s" % (port, camera)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self.cseq = 0
        self.session = None
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.rtp.bind(("127.0.0.1", 0))
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtcp.bind(("127.0.0.1", 0))
        self.rtp.setblocking(False)
        self.rtcp.setblocking(False)

    def close(self):
        for s in (self.sock, self.rtp, self.rtcp):
            s.close()

    def request(self, method, url=None, headers=None):
        self.cseq += 1
        lines = ["%s %s RTSP/1.0" % (method, url or self.url), "CSeq: %d" % self.cseq]
        if self.session:
            lines.append("Session: %s" % self.session)
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("RTSP connection closed")
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", 0))
        while len(self.buf) < n:
            self.buf += self.sock.recv(65536)
        body, self.buf = self.buf[:n], self.buf[n:]
        assert hdrs.get("cseq") == str(self.cseq) or status == 400, hdrs
        return status, hdrs, body.decode()

    def start(self):
        """OPTIONS, DESCRIBE, SETUP, PLAY; returns the SDP."""
        st, hdrs, _ = self.request("OPTIONS")
        assert st == 200 and "PLAY" in hdrs["public"], (st, hdrs)
        st, hdrs, sdp = self.request("DESCRIBE", headers={"Accept": "application/sdp"})
        assert st == 200, st
        base = hdrs["content-base"]
        control = re.search(r"a=control:(trackID=\d+)", sdp).group(1)
        cports = "%d-%d" % (self.rtp.getsockname()[1], self.rtcp.getsockname()[1])
        st, hdrs, _ = self.request("SETUP", base + control,
                                   {"Transport": "RTP/AVP;unicast;client_port=" + cports})
        assert st == 200, st
        self.session_header = hdrs["session"]
        self.session = hdrs["session"].split(";")[0]
        self.transport = hdrs["transport"]
        st, hdrs, _ = self.request("PLAY", headers={"Range": "npt=0.000-"})
        assert st == 200, st
        self.rtp_info = hdrs["rtp-info"]
        return sdp

    def receive(self, seconds):
        """RTP packets and SRs received in the next `seconds`."""
        import select
        packets, srs = [], []
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([self.rtp, self.rtcp], [], [], left)
            for s in r:
                while True:
                    try:
                        data = s.recv(65536)
                    except BlockingIOError:
                        break
                    if s is self.rtp:
                        packets.append(parse_rtp(data))
                    else:
                        sr = parse_sr(data)
                        if sr:
                            srs.append(sr)
        return packets, srs


class SimTest(unittest.TestCase):
    def start(self, *args):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        port_file = os.path.join(self.tmp.name, "ports.json")
        self.truth = os.path.join(self.tmp.name, "truth.ndjson")
        cmd = [sys.executable, SIM, "--http-port", "0", "--rtsp-port", "0",
               "--time-echo-port", "0", "--port-file", port_file, "--truth", self.truth,
               "--scene-size", "320x240", "--seed", "7"] + list(args)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(self.stop)
        deadline = time.monotonic() + 20
        while not os.path.exists(port_file):
            self.assertIsNone(self.proc.poll(), "simulator exited")
            self.assertLess(time.monotonic(), deadline, "no port file")
            time.sleep(0.02)
        with open(port_file) as f:
            self.ports = json.load(f)
        self.assertEqual(self.ports["pid"], self.proc.pid)
        return self.ports

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            rc = self.proc.wait(10)
        finally:
            self.proc.stderr.close()
        self.assertEqual(rc, 0)

    def finish(self):
        """SIGTERM, clean exit, then the whole truth log."""
        self.proc.terminate()
        self.assertEqual(self.proc.wait(10), 0)
        return read_truth(self.truth)

    def http(self, method, path, body=None, conn=None):
        own = conn is None
        if own:
            conn = http.client.HTTPConnection("127.0.0.1", self.ports["http"], timeout=5)
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data,
                     headers={"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        obj = json.loads(resp.read())
        if own:
            conn.close()
        return resp.status, obj

    def rtsp(self, camera):
        c = Rtsp(self.ports["rtsp"], camera)
        self.addCleanup(c.close)
        return c

    # ---- HTTP, WebSocket, Time Echo ------------------------------------------

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
        events = [r for r in read_truth(self.truth) if r["kind"] == "api_event"]
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

    # ---- RTSP streams ----------------------------------------------------

    def test_gaze_stream_and_sender_reports(self):
        self.start("--gaze-layout", "105", "--rtp-ts-start", str(2**32 - 90000),
                   "--sr-interval-s", "0.5")
        c = self.rtsp("gaze")
        sdp = c.start()
        self.assertIn("m=application 0 RTP/AVP 99", sdp)
        self.assertIn("a=rtpmap:99 com.pupillabs.gaze1/90000", sdp)
        self.assertIn("a=control:trackID=0", sdp)
        self.assertRegex(c.session_header, r"^[0-9A-F]+;timeout=60$")
        self.assertRegex(c.transport, r"server_port=\d+-\d+")
        self.assertIn("rtptime=%d" % (2**32 - 90000), c.rtp_info)
        packets, srs = c.receive(2.0)
        self.assertEqual(c.request("GET_PARAMETER")[0], 200)
        self.assertEqual(c.request("OPTIONS")[0], 200)
        self.assertTrue(370 <= len(packets) <= 430, len(packets))
        self.assertTrue(all(p["pt"] == 99 and len(p["payload"]) == 105 for p in packets))
        self.assertTrue(all(p["payload"][8] == 255 for p in packets))
        xs = [struct.unpack(">f", p["payload"][:4])[0] for p in packets]
        self.assertTrue(all(0 <= x < 1600 for x in xs))
        self.assertTrue(any(p["ts"] < 90000 for p in packets), "no RTP timestamp wrap")
        self.assertGreaterEqual(len(srs), 3)
        self.assertEqual(c.request("TEARDOWN")[0], 200)
        c.session = None
        time.sleep(0.1)
        c.receive(0.1)
        self.assertEqual(c.receive(0.3)[0], [])
        truth = self.finish()
        gaze = {r["seq"]: r for r in truth if r["kind"] == "gaze"}
        sr_truth = {r["rtp_ts"]: r for r in truth if r["kind"] == "sr"}
        for ssrc, ntp_ns, ts in srs:
            self.assertLess(abs(ntp_ns - sr_truth[ts]["device_ns"]), 1000)
        # Every packet, timed with the last SR (wrap-safe), matches the truth.
        ssrc, sr_ns, sr_ts = srs[-1]
        worst = 0
        for p in packets:
            self.assertEqual(p["ssrc"], ssrc)
            d = (p["ts"] - sr_ts + 2**31) % 2**32 - 2**31
            t = sr_ns + d * 10**9 // 90000
            worst = max(worst, abs(t - gaze[p["seq"]]["device_ns"]))
        self.assertLess(worst, 10**6)
        # The mono_ns/device_ns pairs are one instant: host realtime - mono is constant.
        diffs = [r["device_ns"] - r["mono_ns"] for r in gaze.values()]
        self.assertLess(max(diffs) - min(diffs), 10**6)

    def test_imu_and_eye_events(self):
        self.start("--eye-event-interval-s", "0.3", "--offset-s", "100")
        imu = self.rtsp("imu")
        ev = self.rtsp("eye_events")
        self.assertIn("a=rtpmap:100 com.pupillabs.imu1/90000", imu.start())
        self.assertIn("a=rtpmap:101 com.pupillabs.eye_events1/90000", ev.start())
        time.sleep(2.5)
        ipk, _ = imu.receive(0.05)
        epk, _ = ev.receive(0.05)
        self.assertTrue(240 <= len(ipk) <= 300, len(ipk))
        now = time.time_ns() + 100 * 10**9
        for p in ipk:
            msg = decode_pb(p["payload"])
            self.assertLess(abs(msg[1] - now), 3 * 10**9)
            accel = decode_pb(msg[2])
            self.assertAlmostEqual(accel[2], -1.0, delta=0.1)   # about -1 g on y
            self.assertEqual(set(decode_pb(msg[4])), {1, 2, 3, 4})
        types = [struct.unpack(">i", p["payload"][:4])[0] for p in epk]
        lengths = {0: 60, 1: 60, 2: 12, 3: 12, 4: 20, 5: 4}
        for t, p in zip(types, epk):
            self.assertEqual(len(p["payload"]), lengths[t])
        self.assertTrue({0, 1, 2, 3} <= set(types), types)
        for p in epk:
            if p["payload"][3] in (0, 1):
                start, end = struct.unpack(">qq", p["payload"][4:20])
                self.assertTrue(0 < end - start < 5 * 10**9)
                self.assertLess(abs(end - now), 4 * 10**9)
        truth = self.finish()
        ev_truth = [r for r in truth if r["kind"] == "eye_event"]
        self.assertGreaterEqual(len(ev_truth), len(epk))

    def test_world_h264(self):
        self.start("--scene-fps", "30", "--keyframe-interval-s", "0.5")
        c = self.rtsp("world")
        sdp = c.start()
        self.assertIn("m=video 0 RTP/AVP 96", sdp)
        self.assertIn("a=rtpmap:96 H264/90000", sdp)
        fmtp = re.search(r"a=fmtp:96 (.*)", sdp).group(1)
        params = dict(kv.split("=", 1) for kv in fmtp.strip().split(";"))
        self.assertEqual(params["packetization-mode"], "1")
        sps, pps = [base64.b64decode(x) for x in params["sprop-parameter-sets"].split(",")]
        self.assertEqual((sps[0] & 0x1F, pps[0] & 0x1F), (7, 8))
        self.assertEqual(params["profile-level-id"].upper(), sps[1:4].hex().upper())
        packets, srs = c.receive(2.0)
        self.assertTrue(srs)
        types = [p["payload"][0] & 0x1F for p in packets]
        self.assertNotIn(7, types)
        self.assertNotIn(8, types)
        fu = [p for p in packets if p["payload"][0] & 0x1F == 28]
        self.assertTrue(fu, "no FU-A packets")
        self.assertTrue(all(len(p["payload"]) <= 1400 for p in packets))
        # Reassemble: each access unit ends with a marker; frames keep their timestamp.
        frames, nal, cur = [], None, []
        for p in packets:
            pl = p["payload"]
            if pl[0] & 0x1F == 28:
                if pl[1] & 0x80:
                    nal = bytearray([(pl[0] & 0xE0) | (pl[1] & 0x1F)])
                nal += pl[2:]
                if pl[1] & 0x40:
                    cur.append(bytes(nal))
            else:
                cur.append(pl)
            if p["marker"]:
                frames.append((p["ts"], cur))
                cur = []
        self.assertTrue(35 <= len(frames) <= 62, len(frames))  # ffmpeg starts at PLAY
        self.assertEqual(len({ts for ts, _ in frames}), len(frames))
        idr = [ts for ts, nals in frames if any(n[0] & 0x1F == 5 for n in nals)]
        self.assertGreaterEqual(len(idr), 3)
        self.assertTrue(any(n[0] & 0x1F == 5 for n in frames[0][1]), "first frame not IDR")
        gaps = [(b - a) % 2**32 for (a, _), (b, _) in zip(frames, frames[1:])]
        self.assertAlmostEqual(sum(gaps) / len(gaps), 3000, delta=300)
        truth = self.finish()
        ftruth = [r for r in truth if r["kind"] == "frame"]
        self.assertGreaterEqual(len(ftruth), len(frames))
        self.assertEqual([r["index"] for r in ftruth], list(range(len(ftruth))))

    def test_inband_parameter_sets(self):
        self.start("--inband-parameter-sets", "--scene-fps", "10", "--scene-bitrate", "0")
        c = self.rtsp("world")
        c.start()
        packets, _ = c.receive(0.8)
        types = [p["payload"][0] & 0x1F for p in packets]
        self.assertIn(7, types)
        self.assertIn(8, types)

    def test_loss_and_reorder(self):
        self.start("--loss", "0.1", "--reorder", "0.05", "--seed", "11", "--gaze-layout", "9",
                   "--first-sr-delay-s", "1.5")
        c = self.rtsp("gaze")
        c.start()
        packets, _ = c.receive(2.5)
        seqs = [p["seq"] for p in packets]
        self.assertTrue(all(len(p["payload"]) == 9 for p in packets))
        span = (seqs[-1] - seqs[0]) % 65536 + 1
        lost = 1 - len(set(seqs)) / span
        self.assertTrue(0.06 <= lost <= 0.14, lost)
        out_of_order = sum(1 for a, b in zip(seqs, seqs[1:]) if (b - a) % 65536 > 32768)
        self.assertGreater(out_of_order, 5)
        truth = self.finish()
        play = [r["mono_ns"] for r in truth if r["kind"] == "rtsp" and r["action"] == "play"]
        first_sr = min(r["mono_ns"] for r in truth if r["kind"] == "sr")
        self.assertAlmostEqual((first_sr - play[0]) / 1e9, 1.5, delta=0.1)
        sent = {r["seq"]: r["sent"] for r in truth if r["kind"] == "gaze"}
        for seq in range(seqs[0], seqs[0] + span):
            self.assertEqual(sent[seq % 65536], seq % 65536 in set(seqs), seq)

    def test_session_timeout_and_errors(self):
        self.start("--session-timeout-s", "1")
        c = self.rtsp("gaze")
        c.start()
        self.assertTrue(c.session_header.endswith(";timeout=1"))
        self.assertGreater(len(c.receive(0.5)[0]), 50)
        # A second connection is idle: its session times out while the first lives on.
        idle = Rtsp(self.ports["rtsp"], "imu")
        self.addCleanup(idle.close)
        idle.start()
        for _ in range(5):
            time.sleep(0.4)
            self.assertEqual(c.request("GET_PARAMETER")[0], 200)
        self.assertGreater(len(c.receive(0.3)[0]), 30)
        idle.receive(0.1)
        self.assertEqual(idle.receive(0.3)[0], [])
        # Other requests of the idle client: its session is gone.
        self.assertEqual(idle.request("GET_PARAMETER")[0], 454)
        self.assertEqual(idle.request("PLAY")[0], 454)
        idle.session = None
        self.assertEqual(idle.request("PLAY")[0], 454)
        self.assertEqual(idle.request("DESCRIBE", "rtsp://127.0.0.1:%d/?camera=eyes"
                                      % self.ports["rtsp"])[0], 404)
        self.assertEqual(idle.request("SETUP", idle.url + "/trackID=0",
                                      {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})[0],
                         461)
        self.assertEqual(idle.request("PAUSE")[0], 501)
        truth = self.finish()
        actions = [r["action"] for r in truth if r["kind"] == "rtsp"]
        self.assertIn("timeout", actions)

    def test_sigusr1_disconnect_and_reconnect(self):
        ports = self.start("--down-for-s", "1.0")
        c = self.rtsp("gaze")
        c.start()
        self.assertGreater(len(c.receive(0.3)[0]), 30)
        te = socket.create_connection(("127.0.0.1", ports["time_echo"]), timeout=5)
        self.addCleanup(te.close)
        web = http.client.HTTPConnection("127.0.0.1", ports["http"], timeout=5)
        self.addCleanup(web.close)
        self.assertEqual(self.http("GET", "/api/status", conn=web)[0], 200)
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGUSR1)
        for s in (c.sock, te, web.sock):
            s.settimeout(2)
            try:
                self.assertEqual(s.recv(100), b"")
            except ConnectionResetError:
                pass
        c.receive(0.1)
        self.assertEqual(c.receive(0.3)[0], [])
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", ports["rtsp"]), timeout=1)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", ports["http"]), timeout=1)
        while True:
            try:
                socket.create_connection(("127.0.0.1", ports["time_echo"]), timeout=1).close()
                break
            except ConnectionRefusedError:
                self.assertLess(time.monotonic() - t0, 3.0)
                time.sleep(0.05)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        self.assertEqual(self.http("GET", "/api/status")[0], 200)
        c2 = self.rtsp("gaze")
        c2.start()
        self.assertGreater(len(c2.receive(0.3)[0]), 30)
        truth = self.finish()
        kinds = [r["kind"] for r in truth if r["kind"] in ("disconnect", "reconnect")]
        self.assertEqual(kinds, ["disconnect", "reconnect"])

    def test_disconnect_at(self):
        ports = self.start("--disconnect-at-s", "0.3", "--down-for-s", "0.5")
        time.sleep(0.5)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", ports["http"]), timeout=1)
        time.sleep(0.6)
        self.assertEqual(self.http("GET", "/api/status")[0], 200)


if __name__ == "__main__":
    unittest.main()

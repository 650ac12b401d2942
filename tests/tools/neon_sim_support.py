"""What the neon_sim.py tests share: the simulator started as its own process on free loopback
ports (SimTest), a small RTSP client, and parsers for what it sends (RTP, RTCP sender reports,
protobuf, the truth log)."""
import http.client
import json
import os
import re
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

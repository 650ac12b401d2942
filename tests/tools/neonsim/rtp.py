"""RTP/RTCP sessions over UDP, one per RTSP SETUP."""
import asyncio
import socket
import struct
import time

NTP_UNIX_DELTA = 2208988800
RTP_CLOCK = 90000
KINDS = ("world", "gaze", "imu", "eye_events")
PAYLOAD_TYPES = {"world": 96, "gaze": 99, "imu": 100, "eye_events": 101}
RTP_HDR = struct.Struct("!BBHII")


def open_udp_pair(host):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        a = socket.socket(fam, socket.SOCK_DGRAM)
        a.bind((host, 0))
        p = a.getsockname()[1]
        if p % 2 == 0 and p < 65535:
            b = socket.socket(fam, socket.SOCK_DGRAM)
            try:
                b.bind((host, p + 1))
            except OSError:
                b.close()
                a.close()
                continue
            for s in (a, b):
                s.setblocking(False)
            try:
                a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 21)
            except OSError:
                pass
            return a, b
        a.close()
    raise OSError("no free even/odd UDP port pair")


class RtpSession:
    def __init__(self, sim, conn, kind, client_ip, cports, url):
        self.sim = sim
        self.conn = conn
        self.kind = kind
        self.url = url
        self.id = "%08X" % sim.rng.getrandbits(32)
        while self.id in sim.sessions:
            self.id = "%08X" % sim.rng.getrandbits(32)
        self.pt = PAYLOAD_TYPES[kind]
        self.client = (client_ip, cports[0])
        self.client_rtcp = (client_ip, cports[1])
        self.rtp_sock, self.rtcp_sock = open_udp_pair(sim.args.host)
        self.server_ports = (self.rtp_sock.getsockname()[1], self.rtcp_sock.getsockname()[1])
        self.ssrc = sim.rng.getrandbits(32)
        self.seq = sim.rng.getrandbits(16)
        if sim.args.rtp_ts_start is not None:
            self.ts_start = sim.args.rtp_ts_start & 0xFFFFFFFF
        else:
            self.ts_start = sim.rng.getrandbits(32)
        self.dev0 = None
        self.playing = False
        self.closed = False
        self.held = None
        self.packets = 0
        self.octets = 0
        self.last_activity = time.monotonic_ns()
        self.sr_task = None

    def touch(self):
        self.last_activity = time.monotonic_ns()

    def rtp_ts(self, device_ns):
        d = device_ns - self.dev0
        return (self.ts_start + (d * 9 + 50000) // 100000) & 0xFFFFFFFF

    def play(self):
        if self.playing:
            return
        dev, mono = self.sim.clock.now()
        self.dev0 = dev
        self.playing = True
        self.sim.truth.obj(kind="rtsp", action="play", session=self.id, camera=self.kind,
                           ssrc=self.ssrc, seq=self.seq, rtp_ts=self.ts_start,
                           device_ns=dev, mono_ns=mono)
        if self.sim.args.first_sr_delay_s <= 0:
            self.send_sr()                      # before the first RTP packet
        self.sr_task = asyncio.get_running_loop().create_task(self._sr_loop())

    def _emit(self, pkt):
        sim = self.sim
        if sim.loss and sim.rng.random() < sim.loss:
            if self.held is not None:
                self._sendto(self.held)
                self.held = None
            return False
        if sim.reorder and self.held is None and sim.rng.random() < sim.reorder:
            self.held = pkt
            return True
        ok = self._sendto(pkt)
        if self.held is not None:
            self._sendto(self.held)
            self.held = None
        return ok

    def _sendto(self, pkt):
        try:
            self.rtp_sock.sendto(pkt, self.client)
            return True
        except OSError:
            self.sim.send_errors += 1
            return False

    def send(self, payload, device_ns, marker=True):
        """Send one RTP packet; returns (seq, sent)."""
        seq = self.seq
        self.seq = (seq + 1) & 0xFFFF
        pkt = RTP_HDR.pack(0x80, (0x80 if marker else 0) | self.pt, seq,
                           self.rtp_ts(device_ns), self.ssrc) + payload
        sent = self._emit(pkt)
        if sent:
            self.packets += 1
            self.octets += len(payload)
        return seq, sent

    def send_sr(self):
        dev, mono = self.sim.clock.now()
        ts = self.rtp_ts(dev)
        sec, rem = divmod(dev, 1_000_000_000)
        frac = (rem << 32) // 1_000_000_000
        sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, self.ssrc, sec + NTP_UNIX_DELTA, frac, ts,
                         self.packets & 0xFFFFFFFF, self.octets & 0xFFFFFFFF)
        cname = self.sim.cname
        items = bytes((1, len(cname))) + cname + b"\x00"
        items += b"\x00" * (-(4 + len(items)) % 4)
        sdes = struct.pack("!BBHI", 0x81, 202, (4 + len(items)) // 4, self.ssrc) + items
        try:
            self.rtcp_sock.sendto(sr + sdes, self.client_rtcp)
            sent = True
        except OSError:
            sent = False
        self.sim.truth.obj(kind="sr", session=self.id, camera=self.kind, rtp_ts=ts,
                           device_ns=dev, mono_ns=mono, sent=sent)

    async def _sr_loop(self):
        args = self.sim.args
        period = max(1, int(args.sr_interval_s * 1e9))
        if args.first_sr_delay_s <= 0:
            t = time.monotonic_ns() + period    # the first one went out at PLAY
        else:
            t = time.monotonic_ns() + int(args.first_sr_delay_s * 1e9)
        while True:
            await sleep_until(t)
            self.send_sr()
            t += period
            now = time.monotonic_ns()
            if now > t:
                t = now + period

    def close(self, action=None):
        if self.closed:
            return
        self.closed = True
        if self.held is not None:
            self._sendto(self.held)
            self.held = None
        if self.sr_task:
            self.sr_task.cancel()
        self.playing = False
        for s in (self.rtp_sock, self.rtcp_sock):
            s.close()
        if action:
            dev, mono = self.sim.clock.now()
            self.sim.truth.obj(kind="rtsp", action=action, session=self.id, camera=self.kind,
                               ssrc=self.ssrc, device_ns=dev, mono_ns=mono)


async def sleep_until(mono_ns):
    delay = mono_ns - time.monotonic_ns()
    if delay > 0:
        await asyncio.sleep(delay * 1e-9)
    else:
        await asyncio.sleep(0)

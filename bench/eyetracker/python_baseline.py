#!/usr/bin/env python3
"""The alternative a researcher would otherwise pick for the gaze stream: a small asyncio client in
Python (standard library only), as the Python tool does it. Used by bench/eyetracker/run.py.

  python_baseline.py --rtsp HOST:PORT --out gaze.csv

RTSP handshake to rtsp://HOST:PORT/?camera=gaze (OPTIONS, DESCRIBE, SETUP with a client UDP port
pair, PLAY, GET_PARAMETER keep-alive, TEARDOWN at the end), RTP over UDP, RTCP sender reports to map
RTP timestamps to the phone's clock, one CSV row per gaze sample written with the csv module to a
buffered file, flush + fsync once a second. SIGTERM/SIGINT: TEARDOWN, flush, fsync, exit 0.

Rows: mono_ns (CLOCK_MONOTONIC on receipt), device_time_ns (RTP timestamp through the last sender
report), then the payload's fields by its length (9, 17, 25, 65, 89, 105 bytes) as Python floats.
"""
import argparse
import asyncio
import csv
import os
import re
import signal
import socket
import struct
import sys
import time

NTP_UNIX_DELTA = 2208988800
GAZE_FIELDS = {
    9: ["x_px", "y_px", "worn"],
    17: ["left_x_px", "left_y_px", "worn", "right_x_px", "right_y_px"],
    25: ["x_px", "y_px", "worn", "left_x_px", "left_y_px", "right_x_px", "right_y_px"],
}
_EYE = ["pupil_diameter_{e}_mm", "eyeball_center_{e}_x_mm", "eyeball_center_{e}_y_mm", "eyeball_center_{e}_z_mm",
        "optical_axis_{e}_x", "optical_axis_{e}_y", "optical_axis_{e}_z"]
GAZE_FIELDS[65] = ["x_px", "y_px", "worn"] + [f.format(e="left") for f in _EYE] + [f.format(e="right") for f in _EYE]
GAZE_FIELDS[89] = GAZE_FIELDS[65] + ["eyelid_angle_top_left_rad", "eyelid_angle_bottom_left_rad",
                                     "eyelid_aperture_left_mm", "eyelid_angle_top_right_rad",
                                     "eyelid_angle_bottom_right_rad", "eyelid_aperture_right_mm"]
GAZE_FIELDS[105] = GAZE_FIELDS[89] + ["left_x_px", "left_y_px", "right_x_px", "right_y_px"]
GAZE_STRUCTS = {n: struct.Struct(">ffB" + "f" * (len(f) - 3)) if n != 17 else struct.Struct(">ffBff")
                for n, f in GAZE_FIELDS.items()}
COLUMNS = ["mono_ns", "device_time_ns", "x_px", "y_px", "worn", "left_x_px", "left_y_px", "right_x_px", "right_y_px"] + \
    [f.format(e="left") for f in _EYE] + [f.format(e="right") for f in _EYE] + GAZE_FIELDS[89][-6:]


class Rtsp:
    def __init__(self, reader, writer, url):
        self.reader, self.writer, self.url = reader, writer, url
        self.cseq = 0
        self.session = None

    async def request(self, method, url, headers=None):
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}", "User-Agent: python-baseline"]
        if self.session:
            lines.append(f"Session: {self.session}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()
        status = (await self.reader.readline()).decode().split()
        hdrs = {}
        while (line := (await self.reader.readline()).decode().rstrip("\r\n")):
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        body = await self.reader.readexactly(int(hdrs.get("content-length", 0)))
        if len(status) < 2 or status[1] != "200":
            raise RuntimeError(f"{method}: {' '.join(status)}")
        return hdrs, body.decode()


class Receiver(asyncio.DatagramProtocol):
    def __init__(self, client, rtcp):
        self.client, self.rtcp = client, rtcp

    def datagram_received(self, data, addr):
        (self.client.on_rtcp if self.rtcp else self.client.on_rtp)(data)


class GazeClient:
    def __init__(self, out_path):
        self.file = open(out_path, "w", newline="")
        self.csv = csv.writer(self.file)
        self.csv.writerow(COLUMNS)
        self.clock_rate = 90000
        self.sr = None          # (rtp_ts, unix_ns)
        self.early = []         # packets before the first sender report
        self.rows = 0
        self.index = {c: i for i, c in enumerate(COLUMNS)}

    def on_rtcp(self, data):
        pos = 0
        while pos + 4 <= len(data):
            pt = data[pos + 1]
            length = (struct.unpack_from("!H", data, pos + 2)[0] + 1) * 4
            if pt == 200 and pos + 20 <= len(data):
                sec, frac, ts = struct.unpack_from("!III", data, pos + 8)
                self.sr = (ts, (sec - NTP_UNIX_DELTA) * 1_000_000_000 + ((frac * 1_000_000_000) >> 32))
                early, self.early = self.early, []
                for packet, mono in early:
                    self.on_rtp(packet, mono)
            pos += length

    def on_rtp(self, data, mono=None):
        mono = mono if mono is not None else time.monotonic_ns()
        if len(data) < 12:
            return
        if self.sr is None:
            self.early.append((data, mono))
            return
        b0 = data[0]
        ts = struct.unpack_from("!I", data, 4)[0]
        pos = 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10:
            pos += 4 + 4 * struct.unpack_from("!H", data, pos + 2)[0]
        payload = data[pos:len(data) - (data[-1] if b0 & 0x20 else 0)]
        layout = GAZE_STRUCTS.get(len(payload))
        if layout is None:
            return
        diff = ((ts - self.sr[0] + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        device_ns = self.sr[1] + round(diff * 1_000_000_000 / self.clock_rate)
        row = [""] * len(COLUMNS)
        row[0], row[1] = mono, device_ns
        for name, value in zip(GAZE_FIELDS[len(payload)], layout.unpack(payload)):
            row[self.index[name]] = int(value == 255) if name == "worn" else value
        self.csv.writerow(row)
        self.rows += 1

    def sync(self):
        self.file.flush()
        os.fsync(self.file.fileno())


def udp_pair():
    while True:
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind(("127.0.0.1", 0))
        port = a.getsockname()[1]
        if port % 2 == 0:
            b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                b.bind(("127.0.0.1", port + 1))
                return a, b, port
            except OSError:
                b.close()
        a.close()


async def main(args):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    host, port = args.rtsp.rsplit(":", 1)
    url = f"rtsp://{host}:{port}/?camera=gaze"
    client = GazeClient(args.out)
    reader, writer = await asyncio.open_connection(host, int(port))
    rtsp = Rtsp(reader, writer, url)
    await rtsp.request("OPTIONS", url)
    hdrs, sdp = await rtsp.request("DESCRIBE", url, {"Accept": "application/sdp"})
    base = hdrs.get("content-base", url)
    m = re.search(r"a=rtpmap:\d+ [^/\s]+/(\d+)", sdp)
    if m:
        client.clock_rate = int(m.group(1))
    controls = re.findall(r"a=control:(\S+)", sdp)
    track = controls[-1] if controls else "*"
    track_url = track if track.startswith("rtsp://") else (base if base.endswith("/") else base + "/") + track
    rtp_sock, rtcp_sock, rtp_port = udp_pair()
    await loop.create_datagram_endpoint(lambda: Receiver(client, False), sock=rtp_sock)
    await loop.create_datagram_endpoint(lambda: Receiver(client, True), sock=rtcp_sock)
    hdrs, _ = await rtsp.request("SETUP", track_url,
                                 {"Transport": f"RTP/AVP;unicast;client_port={rtp_port}-{rtp_port + 1}"})
    session = hdrs["session"].split(";")
    rtsp.session = session[0]
    timeout = next((int(p.split("=")[1]) for p in session[1:] if p.strip().startswith("timeout=")), 60)
    await rtsp.request("PLAY", base)
    last_keepalive = time.monotonic()
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
        client.sync()  # once a second: flush the csv file's buffer and fsync it
        if time.monotonic() - last_keepalive > timeout / 2:
            await rtsp.request("GET_PARAMETER", base)
            last_keepalive = time.monotonic()
    try:
        await asyncio.wait_for(rtsp.request("TEARDOWN", base), 2.0)
    except Exception:
        pass
    client.sync()
    client.file.close()
    print(f"python-baseline: {client.rows} gaze rows", file=sys.stderr)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rtsp", required=True, help="HOST:PORT of the RTSP server")
    p.add_argument("--out", required=True, help="CSV file to write")
    asyncio.run(main(p.parse_args()))

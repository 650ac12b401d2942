#!/usr/bin/env python3
"""neon-sim: a Pupil Labs Neon (the phone's real-time API) on loopback.

Serves the same network protocols as the Neon Companion phone, so the
project's real C++ client is what gets tested. Python 3.11 standard library
only (asyncio); the scene video comes from an ffmpeg subprocess.

  HTTP/1.1   GET /api/status, POST /api/recording:start|stop_and_save|cancel,
             POST /api/event; keep-alive and close; Content-Length or chunked
             request bodies.
  WebSocket  GET /api/status with Upgrade (RFC 6455): every status component
             as its own text message on open, then each changed component
             (battery -1 % every --battery-drain-s, 60 s by default; recording
             start/stop; events).
  Time Echo  TCP: each 8-byte request (u64 BE t1) -> t1 + phone unix ms.
  RTSP 1.0   rtsp://host:port/?camera=world|gaze|imu|eye_events, one stream
             per URL: OPTIONS, DESCRIBE, SETUP (RTP/AVP unicast UDP only),
             PLAY, GET_PARAMETER, TEARDOWN. RTP to the client's port a, RTCP
             sender reports (+ SDES CNAME) to port b from server port c+1.

Phone clock: device_ns = time.time_ns() (host CLOCK_REALTIME) + --offset-s, plus
--skew-ppm of the time since the start (a phone crystal running fast or slow).
RTP clock: 90 kHz for every stream; ts = start + round((device_ns -
device_ns_at_PLAY) * 90000 / 1e9) mod 2^32, so the sender-report mapping is
exact (to the 11 us quantum of 90 kHz).

RTSP sessions: a session is refreshed by any request that names it in its
Session header and by any request on the TCP connection that created it. One
idle for --session-timeout-s is torn down (streaming stops, later requests
naming it get 454); closing the RTSP connection tears down its sessions.

Payloads (big-endian unless said otherwise). Field orders follow Pupil Labs'
public MIT-licensed Python client, pupil-labs/pl-realtime-api
src/pupil_labs/realtime_api/streaming/gaze.py and eye_events.py (commit
a9c36bd9), and the IMU proto from pupil-labs/pl-neon-recording
src/pupil_labs/neon_recording/timeseries/imu/imu_pb2.py (commit 0e2de478):
  gaze  9: x, y, worn(u8, 255 = worn)
       17: left_x, left_y, worn, right_x, right_y
       25: x, y, worn, mono_left_x, mono_left_y, mono_right_x, mono_right_y
       65: x, y, worn, pupil_diameter_left, eyeball_center_left_x/y/z,
           optical_axis_left_x/y/z, pupil_diameter_right,
           eyeball_center_right_x/y/z, optical_axis_right_x/y/z
           (the 65 layout extends the 9 layout, not the 25 one)
       89: the 65 fields, then eyelid_angle_top_left, eyelid_angle_bottom_left,
           eyelid_aperture_left, eyelid_angle_top_right,
           eyelid_angle_bottom_right, eyelid_aperture_right
      105: the 89 fields, then mono_left_x, mono_left_y, mono_right_x,
           mono_right_y
       (all float32 except worn; pixels of the 1600x1200 scene camera,
        whatever --scene-size is; mm, rad)
  eye events: i32 type first.
       0 saccade / 1 fixation (60 bytes): type, start_ns i64, end_ns i64,
           start_x, start_y, end_x, end_y, mean_x, mean_y, amplitude_px,
           amplitude_deg, mean_velocity, max_velocity (f32; velocities px/s)
       2 saccade onset / 3 fixation onset (12 bytes): type, start_ns i64
       4 blink (20 bytes): type, start_ns i64, end_ns i64
       5 keep-alive (4 bytes): type only; sent when no other event went out
           for 1 s
  IMU: protobuf ImuPacket {tsNs=1 uint64 varint; accelData=2 {x=1,y=2,z=3};
       gyroData=3 {x=1,y=2,z=3}; rotVecData=4 {w=1,x=2,y=3,z=4}}, nested
       floats fixed32 little-endian, zero-valued fields omitted. accel in g,
       gyro in deg/s.
  world: H.264 (RFC 6184, packetization-mode=1): single NAL units up to 1400
       bytes, FU-A beyond; marker bit on the last packet of an access unit.
       SPS/PPS only in the SDP's sprop-parameter-sets unless
       --inband-parameter-sets (then also before every IDR). x264's SEI is
       dropped.

Timing: gaze and IMU samples sit on an absolute grid (--gaze-hz, --imu-hz)
on CLOCK_MONOTONIC; each is stamped with its grid instant (its "capture"
time: RTP timestamp and IMU tsNs) and sent as soon as the event loop gets
there (normally < 1 ms later; a late loop catches up in a burst, a stall over
0.25 s skips samples). Scene frames are paced at --scene-fps and stamped when
sent; eye events are stamped (RTP) when sent and carry their own start/end.

--truth PATH, NDJSON, flushed every 0.5 s and at exit; mono_ns is
time.monotonic_ns() (CLOCK_MONOTONIC) of the same instant as device_ns:
  {"kind":"start","mono_ns","device_ns","offset_ns","seed","ports",...}
  {"kind":"gaze"|"imu","session","seq","device_ns","mono_ns","sent"}
  {"kind":"frame","session","seq"(first packet),"packets","bytes","index",
   "run","keyframe","device_ns","mono_ns","sent"(all packets sent)}
  {"kind":"eye_event","session","seq","type","start_ns","end_ns",
   "device_ns","mono_ns","sent"}
  {"kind":"sr","session","camera","rtp_ts","device_ns","mono_ns","sent"}
  {"kind":"rtsp","action":"play"|"teardown"|"timeout"|"closed","session",
   "camera","ssrc","seq"(first),"rtp_ts"(first),"device_ns","mono_ns"}
  {"kind":"api_event","name","timestamp","recording_id","device_ns","mono_ns"}
  {"kind":"recording","action":"start"|"stop_and_save"|"cancel","id",
   "device_ns","mono_ns"}
  {"kind":"disconnect"|"reconnect","mono_ns","reason"}
Per-packet lines are written once per playing session ("session" tells
them apart). "sent": false = dropped by --loss (or the send failed).

Disconnect (--disconnect-at-s, SIGUSR1): every TCP connection is aborted,
every RTP/RTCP stream stops (sessions are forgotten), ffmpeg is killed, the
listening sockets close and reopen on the same ports --down-for-s later.
SIGTERM/SIGINT: clean exit 0.
"""
import argparse
import asyncio
import base64
import bisect
import ctypes
import email.utils
import hashlib
import heapq
import json
import math
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid

NTP_UNIX_DELTA = 2208988800
RTP_CLOCK = 90000
MAX_RTP_PAYLOAD = 1400
SCENE_W, SCENE_H = 1600, 1200      # gaze coordinates: the real scene camera
SCENE_FX = 890.0                   # approximate focal length of it, px
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B65"
KINDS = ("world", "gaze", "imu", "eye_events")
PAYLOAD_TYPES = {"world": 96, "gaze": 99, "imu": 100, "eye_events": 101}
ENCODINGS = {"world": "H264", "gaze": "com.pupillabs.gaze1",
             "imu": "com.pupillabs.imu1", "eye_events": "com.pupillabs.eye_events1"}
GAZE_STRUCTS = {9: struct.Struct(">ffB"), 17: struct.Struct(">ffBff"),
                25: struct.Struct(">ffBffff"), 65: struct.Struct(">ffB" + "f" * 14),
                89: struct.Struct(">ffB" + "f" * 20), 105: struct.Struct(">ffB" + "f" * 24)}
EV_DETAIL = struct.Struct(">iqq10f")
EV_ONSET = struct.Struct(">iq")
EV_BLINK = struct.Struct(">iqq")
RTP_HDR = struct.Struct("!BBHII")
HTTP_REASONS = {101: "Switching Protocols", 200: "OK", 400: "Bad Request", 404: "Not Found",
                405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large",
                426: "Upgrade Required", 431: "Request Header Fields Too Large",
                500: "Internal Server Error", 501: "Not Implemented"}
RTSP_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 454: "Session Not Found",
                455: "Method Not Valid in This State", 461: "Unsupported Transport",
                500: "Internal Server Error", 501: "Not Implemented",
                503: "Service Unavailable"}
MAX_LINE = 8192
MAX_HEADERS = 100
MAX_BODY = 1 << 20


def log(msg):
    sys.stderr.write("neon-sim: %s\n" % msg)
    sys.stderr.flush()


# ---------------------------------------------------------------- clock, truth

class Clock:
    """Phone clock = host CLOCK_REALTIME + offset, running skew_ppm fast from the start."""

    def __init__(self, offset_ns, skew_ppm=0.0):
        self.offset_ns = offset_ns
        self.skew = skew_ppm * 1e-6
        self.start_rt = time.time_ns()

    def phone(self, rt):
        return rt + self.offset_ns + int((rt - self.start_rt) * self.skew)

    def now(self):
        """(device_ns, mono_ns) of one instant (mono read on both sides)."""
        m0 = time.monotonic_ns()
        rt = time.time_ns()
        m1 = time.monotonic_ns()
        return self.phone(rt), (m0 + m1) >> 1

    def device_ns(self):
        return self.phone(time.time_ns())


class Truth:
    def __init__(self, path):
        self.f = open(path, "w", encoding="utf-8") if path else None
        self.buf = []

    def obj(self, **kw):
        if self.f:
            self.buf.append(json.dumps(kw, separators=(",", ":")) + "\n")

    def line(self, text):
        if self.f:
            self.buf.append(text)

    def flush(self):
        if self.f and self.buf:
            self.f.write("".join(self.buf))
            self.buf.clear()
            self.f.flush()

    def close(self):
        if self.f:
            self.flush()
            self.f.close()
            self.f = None


def jbool(b):
    return "true" if b else "false"


# ---------------------------------------------------------------- eye model

def min_jerk(u):
    return u * u * u * (10.0 + u * (-15.0 + 6.0 * u))


def pixel_dir(x, y):
    dx, dy = (x - SCENE_W / 2) / SCENE_FX, (y - SCENE_H / 2) / SCENE_FX
    n = math.sqrt(dx * dx + dy * dy + 1.0)
    return dx / n, dy / n, 1.0 / n


def angle_deg(p, q):
    a, b = pixel_dir(*p), pixel_dir(*q)
    c = max(-1.0, min(1.0, a[0] * b[0] + a[1] * b[1] + a[2] * b[2]))
    return math.degrees(math.acos(c))


class EyeModel:
    """Scan path on CLOCK_MONOTONIC: fixations and minimum-jerk saccades,
    independent blinks. Gaze and eye-event streams read the same model."""

    def __init__(self, rng, mean_cycle_s, t0):
        self.rng = rng
        self.mean_cycle_ns = max(0.1, mean_cycle_s) * 1e9
        self.t0 = t0
        # Segments: [t_start, t_end, kind("fix"|"sac"), p_from, p_to]
        first = (SCENE_W / 2, SCENE_H / 2)
        self.segs = [[t0, t0 + int(self._fix_dur()), "fix", first, first]]
        self.seg_t = [t0]
        self.blinks = []
        self.blink_end = t0 + int(rng.uniform(1.0, 4.0) * 1e9)  # next blink start
        self.events = []  # heap of (t, n, type, fields)
        self.n_ev = 0

    def _fix_dur(self):
        r = self.rng
        if r.random() < 0.08:
            return r.uniform(1.2, 2.5) * 1e9       # long fixation: keep-alives
        mean = max(0.05e9, self.mean_cycle_ns - 0.04e9)
        return min(4 * mean, max(0.08e9, r.gammavariate(3.0, mean / 3.0)))

    def tremor(self, t):
        s = (t - self.t0) * 1e-9
        return (3.0 * math.sin(4.4 * s) + 1.5 * math.sin(19.0 * s + 1.0),
                2.5 * math.sin(3.1 * s + 2.0) + 1.2 * math.sin(23.0 * s))

    def _push(self, t, etype, fields):
        self.n_ev += 1
        heapq.heappush(self.events, (t, self.n_ev, etype, fields))

    def _extend_segs(self):
        r = self.rng
        fix = self.segs[-1]
        p0 = fix[3]
        while True:
            p1 = (min(SCENE_W - 80, max(80, r.gauss(SCENE_W / 2, 380))),
                  min(SCENE_H - 80, max(80, r.gauss(SCENE_H / 2, 260))))
            if math.hypot(p1[0] - p0[0], p1[1] - p0[1]) > 30:
                break
        amp_deg = angle_deg(p0, p1)
        sac_ns = int(min(150.0, 20.0 + 2.3 * amp_deg) * 1e6)
        ts0 = fix[1]
        ts1 = ts0 + sac_ns
        tf1 = ts1 + int(self._fix_dur())
        self.segs.append([ts0, ts1, "sac", p0, p1])
        self.segs.append([ts1, tf1, "fix", p1, p1])
        self.seg_t += [ts0, ts1]
        # Events at the boundaries (emitted when they happen).
        tr0, tr1 = self.tremor(ts0), self.tremor(ts1)
        trf = self.tremor(fix[0])
        f_start = (p0[0] + trf[0], p0[1] + trf[1])
        f_end = (p0[0] + tr0[0], p0[1] + tr0[1])
        f_amp = math.hypot(f_end[0] - f_start[0], f_end[1] - f_start[1])
        f_dur_s = max(1e-3, (ts0 - fix[0]) * 1e-9)
        self._push(ts0, 1, (fix[0], ts0, f_start, f_end, p0, f_amp,
                            angle_deg(f_start, f_end), f_amp / f_dur_s, 2.5 * f_amp / f_dur_s))
        self._push(ts0, 2, (ts0,))
        s_start = f_end
        s_end = (p1[0] + tr1[0], p1[1] + tr1[1])
        s_amp = math.hypot(s_end[0] - s_start[0], s_end[1] - s_start[1])
        s_mean = ((s_start[0] + s_end[0]) / 2, (s_start[1] + s_end[1]) / 2)
        s_dur_s = sac_ns * 1e-9
        self._push(ts1, 0, (ts0, ts1, s_start, s_end, s_mean, s_amp,
                            angle_deg(s_start, s_end), s_amp / s_dur_s, 1.875 * s_amp / s_dur_s))
        self._push(ts1, 3, (ts1,))

    def _extend_blinks(self):
        r = self.rng
        b0 = self.blink_end
        b1 = b0 + int(r.uniform(0.10, 0.25) * 1e9)
        self.blinks.append((b0, b1))
        self._push(b1, 4, (b0, b1))
        self.blink_end = b1 + int(r.uniform(2.5, 6.0) * 1e9)

    def ensure(self, t):
        horizon = t + 500_000_000
        while self.segs[-1][1] < horizon:
            self._extend_segs()
        while not self.blinks or self.blinks[-1][1] < horizon:
            self._extend_blinks()
        if len(self.segs) > 400:
            cut = bisect.bisect_right(self.seg_t, t - 5_000_000_000) - 1
            if cut > 0:
                del self.segs[:cut]
                del self.seg_t[:cut]
        if len(self.blinks) > 50:
            self.blinks = [b for b in self.blinks if b[1] > t - 5_000_000_000]
        stale = t - 2_000_000_000
        while self.events and self.events[0][0] < stale:
            heapq.heappop(self.events)

    def gaze(self, t):
        self.ensure(t)
        i = bisect.bisect_right(self.seg_t, t) - 1
        t0, t1, kind, p0, p1 = self.segs[max(0, i)]
        tr = self.tremor(t)
        if kind == "fix":
            return p0[0] + tr[0], p0[1] + tr[1]
        u = min(1.0, max(0.0, (t - t0) / (t1 - t0)))
        s = min_jerk(u)
        return (p0[0] + (p1[0] - p0[0]) * s + tr[0], p0[1] + (p1[1] - p0[1]) * s + tr[1])

    def closure(self, t):
        for b0, b1 in reversed(self.blinks):
            if b0 <= t < b1:
                return math.sin(math.pi * (t - b0) / (b1 - b0))
            if b1 <= t:
                break
        return 0.0

    def sample(self, t, layout):
        """One gaze payload of `layout` bytes for monotonic time t."""
        x, y = self.gaze(t)
        x = min(SCENE_W - 1.0, max(0.0, x))
        y = min(SCENE_H - 1.0, max(0.0, y))
        lx, ly, rx, ry = x - 9.0, y + 2.0, x + 9.0, y - 2.0
        if layout == 9:
            return GAZE_STRUCTS[9].pack(x, y, 255)
        if layout == 17:
            return GAZE_STRUCTS[17].pack(lx, ly, 255, rx, ry)
        if layout == 25:
            return GAZE_STRUCTS[25].pack(x, y, 255, lx, ly, rx, ry)
        s = (t - self.t0) * 1e-9
        pupil = 3.3 + 0.4 * math.sin(2 * math.pi * s / 7.0)
        d = pixel_dir(x, y)
        target = (d[0] * 1000.0, d[1] * 1000.0, d[2] * 1000.0)   # mm, 1 m away
        vals = [x, y, 255]
        for eye, ex in ((0, -31.5), (1, 31.5)):
            c = (ex, 11.0, -33.0)
            ax = (target[0] - c[0], target[1] - c[1], target[2] - c[2])
            n = math.sqrt(ax[0] * ax[0] + ax[1] * ax[1] + ax[2] * ax[2])
            vals += [pupil + 0.06 * eye, c[0], c[1], c[2], ax[0] / n, ax[1] / n, ax[2] / n]
        if layout >= 89:
            c = self.closure(t)
            open_ = 1.0 - c
            top = 0.55 * open_ - 0.05 * c + 0.03 * math.sin(2.1 * s)
            bottom = 0.35 * open_ + 0.02 * math.sin(1.7 * s)
            aperture = 10.5 * open_ + 0.3 * math.sin(1.3 * s) * open_
            vals += [top, bottom, aperture, top + 0.01, bottom - 0.01, aperture - 0.2 * open_]
        if layout == 105:
            vals += [lx, ly, rx, ry]
        return GAZE_STRUCTS[layout].pack(*vals)


def eye_event_payload(etype, fields, dev_minus_mono):
    if etype in (0, 1):
        t0, t1, a, b, m, amp, amp_deg, v_mean, v_max = fields
        return EV_DETAIL.pack(etype, t0 + dev_minus_mono, t1 + dev_minus_mono,
                              a[0], a[1], b[0], b[1], m[0], m[1], amp, amp_deg, v_mean, v_max)
    if etype in (2, 3):
        return EV_ONSET.pack(etype, fields[0] + dev_minus_mono)
    if etype == 4:
        return EV_BLINK.pack(etype, fields[0] + dev_minus_mono, fields[1] + dev_minus_mono)
    return struct.pack(">i", 5)


# ---------------------------------------------------------------- protobuf IMU

def pb_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_floats(values):
    """Nested message of fixed32 floats with field numbers 1..n; zeros omitted."""
    out = bytearray()
    for i, v in enumerate(values, 1):
        raw = struct.pack("<f", v)
        if raw != b"\x00\x00\x00\x00":
            out.append((i << 3) | 5)
            out += raw
    return bytes(out)


def imu_payload(ts_ns, accel, gyro, quat_wxyz):
    out = bytearray()
    if ts_ns:
        out.append(0x08)
        out += pb_varint(ts_ns)
    for field, vals in ((2, accel), (3, gyro), (4, quat_wxyz)):
        body = pb_floats(vals)
        out.append((field << 3) | 2)
        out += pb_varint(len(body))
        out += body
    return bytes(out)


class ImuModel:
    def __init__(self, rng, t0):
        self.rng = rng
        self.t0 = t0

    def sample(self, t):
        s = (t - self.t0) * 1e-9
        g = self.rng.gauss
        yaw = 0.30 * math.sin(2 * math.pi * 0.10 * s)
        pitch = 0.12 * math.sin(2 * math.pi * 0.17 * s + 0.5)
        roll = 0.05 * math.sin(2 * math.pi * 0.23 * s + 1.0)
        yaw_r = 0.30 * 2 * math.pi * 0.10 * math.cos(2 * math.pi * 0.10 * s)
        pitch_r = 0.12 * 2 * math.pi * 0.17 * math.cos(2 * math.pi * 0.17 * s + 0.5)
        roll_r = 0.05 * 2 * math.pi * 0.23 * math.cos(2 * math.pi * 0.23 * s + 1.0)
        gyro = (math.degrees(pitch_r) + g(0, 0.15), math.degrees(yaw_r) + g(0, 0.15),
                math.degrees(roll_r) + g(0, 0.15))
        accel = (math.sin(roll) + g(0, 0.004), -math.cos(pitch) * math.cos(roll) + g(0, 0.004),
                 math.sin(pitch) + g(0, 0.004))
        cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
        cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
        cr, sr = math.cos(roll / 2), math.sin(roll / 2)
        quat = (cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy,
                cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy)
        return accel, gyro, quat


# ---------------------------------------------------------------- H.264

class AnnexBSplitter:
    """Annex B byte stream -> access units (lists of NAL units)."""

    def __init__(self):
        self.buf = bytearray()
        self.search = 0
        self.nal_start = None
        self.au = []
        self.au_vcl = False

    def feed(self, data, out):
        buf = self.buf
        buf += data
        while True:
            i = buf.find(b"\x00\x00\x01", self.search)
            if i < 0:
                self.search = max(self.search, len(buf) - 2)
                break
            if self.nal_start is not None:
                end = i
                while end > self.nal_start and buf[end - 1] == 0:
                    end -= 1
                if end > self.nal_start:
                    self._nal(bytes(buf[self.nal_start:end]), out)
            self.nal_start = i + 3
            self.search = i + 3
        cut = self.nal_start if self.nal_start is not None else max(0, len(buf) - 2)
        if cut > 0:
            del buf[:cut]
            self.search -= cut
            if self.nal_start is not None:
                self.nal_start = 0

    def _nal(self, nal, out):
        t = nal[0] & 0x1F
        vcl = t in (1, 5)
        if self.au_vcl and ((vcl and len(nal) > 1 and nal[1] & 0x80)
                            or t in (6, 7, 8, 9) or 14 <= t <= 18):
            out.append(self.au)
            self.au = []
            self.au_vcl = False
        self.au.append(nal)
        if vcl:
            self.au_vcl = True

    def finish(self, out):
        if self.nal_start is not None and self.nal_start < len(self.buf):
            self._nal(bytes(self.buf[self.nal_start:]).rstrip(b"\x00") or b"\x00", out)
        if self.au:
            out.append(self.au)
        self.au = []


def h264_payloads(nals):
    """RTP payloads (single NAL or FU-A) for one access unit."""
    out = []
    for nal in nals:
        if len(nal) <= MAX_RTP_PAYLOAD:
            out.append(nal)
            continue
        ind = (nal[0] & 0xE0) | 28
        typ = nal[0] & 0x1F
        chunk = MAX_RTP_PAYLOAD - 2
        pos, n = 1, len(nal)
        while pos < n:
            part = nal[pos:pos + chunk]
            hdr = typ | (0x80 if pos == 1 else 0) | (0x40 if pos + chunk >= n else 0)
            out.append(bytes((ind, hdr)) + part)
            pos += chunk
    return out


def set_pdeathsig():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class SceneSource:
    def __init__(self, args):
        self.w, self.h = args.scene_w, args.scene_h
        self.fps = args.scene_fps
        self.gop = max(1, int(round(args.scene_fps * args.keyframe_interval_s)))
        self.bitrate = args.scene_bitrate
        self.inband = args.inband_parameter_sets
        self.drawtext = True
        self.sps = self.pps = None
        self.error = None

    def cmd(self, frames=None):
        src = "testsrc2=size=%dx%d:rate=%s" % (self.w, self.h, self.fps)
        if self.drawtext:
            src += (",drawtext=text='%%{frame_num}':x=8:y=8:fontsize=%d:fontcolor=white"
                    ":box=1:boxcolor=black" % max(12, self.h // 12))
        c = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
             "-f", "lavfi", "-i", src]
        if frames:
            c += ["-frames:v", str(frames)]
        c += ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0",
              "-g", str(self.gop), "-keyint_min", str(self.gop), "-sc_threshold", "0",
              "-pix_fmt", "yuv420p"]
        if self.bitrate and self.bitrate != "0":
            c += ["-b:v", self.bitrate, "-maxrate", self.bitrate, "-bufsize", self.bitrate]
        return c + ["-f", "h264", "-"]

    def probe(self):
        """Throwaway one-frame encode with identical settings: SPS/PPS."""
        for drawtext in (True, False):
            self.drawtext = drawtext
            try:
                r = subprocess.run(self.cmd(frames=1), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                                   preexec_fn=set_pdeathsig)
            except (OSError, subprocess.TimeoutExpired) as e:
                self.error = "ffmpeg: %s" % e
                break
            if r.returncode != 0:
                self.error = "ffmpeg exit %d: %s" % (r.returncode,
                                                     r.stderr.decode(errors="replace")[-300:])
                continue
            aus = []
            sp = AnnexBSplitter()
            sp.feed(r.stdout, aus)
            sp.finish(aus)
            for au in aus:
                for nal in au:
                    if nal[0] & 0x1F == 7 and self.sps is None:
                        self.sps = nal
                    elif nal[0] & 0x1F == 8 and self.pps is None:
                        self.pps = nal
            if self.sps and self.pps:
                self.error = None
                return True
            self.error = "no SPS/PPS in ffmpeg output"
        log("scene video unavailable (%s)" % self.error)
        return False

    def fmtp(self):
        b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
        return "packetization-mode=1;profile-level-id=%s;sprop-parameter-sets=%s,%s" % (
            self.sps[1:4].hex().upper(), b64(self.sps), b64(self.pps))


# ---------------------------------------------------------------- RTP sessions

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


# ---------------------------------------------------------------- message I/O

class ProtocolError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


async def read_message(reader, allow_chunked, writer=None):
    """Start line, lower-cased headers, body; None at EOF before a message.
    With a writer (HTTP), "Expect: 100-continue" is answered before the body."""
    line = b""
    while not line.strip():
        try:
            line = await reader.readline()
        except ValueError:
            raise ProtocolError(400, "line too long")
        if not line:
            return None
    if len(line) > MAX_LINE:
        raise ProtocolError(400, "line too long")
    start = line.decode("latin-1").strip()
    headers = {}
    while True:
        try:
            h = await reader.readline()
        except ValueError:
            raise ProtocolError(431, "header too long")
        if not h:
            raise asyncio.IncompleteReadError(h, None)
        h = h.decode("latin-1").rstrip("\r\n")
        if not h:
            break
        if len(headers) >= MAX_HEADERS:
            raise ProtocolError(431, "too many headers")
        if ":" not in h:
            raise ProtocolError(400, "malformed header")
        k, v = h.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = b""
    if writer is not None and headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if allow_chunked and "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        total = 0
        while True:
            size_line = await reader.readline()
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise ProtocolError(400, "bad chunk size")
            if size == 0:
                while (await reader.readline()).strip():
                    pass
                break
            total += size
            if total > MAX_BODY:
                raise ProtocolError(413, "body too large")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    elif "content-length" in headers:
        try:
            n = int(headers["content-length"])
        except ValueError:
            raise ProtocolError(400, "bad Content-Length")
        if n < 0 or n > MAX_BODY:
            raise ProtocolError(413, "body too large")
        body = await reader.readexactly(n)
    return start, headers, body


def ws_frame(opcode, payload):
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 126)) + struct.pack("!H", n)
    else:
        head = bytes((0x80 | opcode, 127)) + struct.pack("!Q", n)
    return head + payload


def ws_unmask(mask, data):
    n = len(data)
    if not n:
        return data
    m = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")


# ---------------------------------------------------------------- simulator

class Sim:
    def __init__(self, args):
        self.args = args
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
        self.seed = seed
        self.rng = random.Random(seed)
        self.clock = Clock(int(round(args.offset_s * 1e9)), args.skew_ppm)
        self.truth = Truth(args.truth)
        self.loss = args.loss
        self.reorder = args.reorder
        self.device_id = "%016x" % self.rng.getrandbits(64)
        self.module_serial = "%06d" % self.rng.randrange(10**6)
        self.cname = ("neon-sim-%s@%s" % (self.device_id[:8], args.host)).encode()[:255]
        self.battery = max(0, min(100, args.battery))
        self.recording = None       # (id, start_mono_ns)
        self.ports = {"http": args.http_port, "rtsp": args.rtsp_port,
                      "time_echo": args.time_echo_port}
        self.servers = []
        self.conns = set()          # StreamWriters of every open TCP connection
        self.ws_clients = set()
        self.sessions = {}
        self.playing = {k: [] for k in KINDS}
        self.producers = {}
        self.ffmpeg = set()
        self.down = False
        self.send_errors = 0
        self.scene = SceneSource(args)
        self.scene_ready = None
        self.stop_event = None
        t0 = time.monotonic_ns()
        self.eye = EyeModel(random.Random(seed ^ 0x5EED), args.eye_event_interval_s, t0)
        self.imu = ImuModel(random.Random(seed ^ 0x1D), t0)
        self.encoder_runs = 0
        self.bg_tasks = set()
        self.reapers = set()
        self.reaping = set()

    # ---- lifecycle ------------------------------------------------------

    async def run(self):
        loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        # SPS/PPS for the SDP: a one-frame encode in a thread; only world
        # DESCRIBE/SETUP wait for it.
        self.scene_ready = loop.create_task(asyncio.to_thread(self.scene.probe))
        await self.open_listeners(first=True)
        self.write_port_file()
        self.announce()
        dev, mono = self.clock.now()
        self.truth.obj(kind="start", mono_ns=mono, device_ns=dev, offset_ns=self.clock.offset_ns,
                       seed=self.seed, ports=self.ports, pid=os.getpid(),
                       gaze_layout=self.args.gaze_layout, scene=[self.scene.w, self.scene.h],
                       scene_fps=self.args.scene_fps)
        self.scene_ready.add_done_callback(lambda _: self.truth.obj(
            kind="scene", sps=self.scene.sps.hex() if self.scene.sps else None,
            pps=self.scene.pps.hex() if self.scene.pps else None,
            drawtext=self.scene.drawtext, error=self.scene.error))
        self.truth.flush()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        loop.add_signal_handler(signal.SIGUSR1, lambda: self.spawn(self.disconnect("SIGUSR1")))
        self.spawn(self.flush_loop())
        self.spawn(self.watchdog_loop())
        self.spawn(self.battery_loop())
        if self.args.disconnect_at_s is not None:
            loop.call_later(self.args.disconnect_at_s,
                            lambda: self.spawn(self.disconnect("disconnect-at")))
        log("listening on %s: http %d rtsp %d time_echo %d (pid %d)" % (
            self.args.host, self.ports["http"], self.ports["rtsp"], self.ports["time_echo"],
            os.getpid()))
        await self.stop_event.wait()
        await self.shutdown()

    def spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self.bg_tasks.add(task)
        task.add_done_callback(self.bg_tasks.discard)
        return task

    async def shutdown(self):
        self.close_listeners()
        self.drop_everything()
        tasks = list(self.producers.values()) + list(self.bg_tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.reap_ffmpeg()
        self.truth.close()

    def reap(self, proc):
        """Kill ffmpeg and collect it (reading its stdout to EOF closes the pipe)."""
        if proc in self.reaping:
            return
        self.reaping.add(proc)
        try:
            proc.kill()
        except ProcessLookupError:
            pass

        async def collect():
            try:
                await asyncio.wait_for(proc.communicate(), 3.0)
            except Exception:
                pass
            self.ffmpeg.discard(proc)
            self.reaping.discard(proc)
        task = asyncio.get_running_loop().create_task(collect())
        self.reapers.add(task)
        task.add_done_callback(self.reapers.discard)

    async def reap_ffmpeg(self):
        for p in list(self.ffmpeg):
            self.reap(p)
        if self.reapers:
            await asyncio.gather(*list(self.reapers), return_exceptions=True)

    async def open_listeners(self, first=False):
        handlers = {"http": self.handle_http, "rtsp": self.handle_rtsp,
                    "time_echo": self.handle_time_echo}
        self.servers = []
        for name in ("http", "rtsp", "time_echo"):
            deadline = time.monotonic() + (0 if first else 10)
            while True:
                try:
                    srv = await asyncio.start_server(handlers[name], self.args.host,
                                                     self.ports[name], reuse_address=True,
                                                     limit=MAX_LINE + 2)
                    break
                except OSError as e:
                    if first or time.monotonic() > deadline:
                        raise
                    log("reopen %s port %d: %s; retrying" % (name, self.ports[name], e))
                    await asyncio.sleep(0.2)
            self.ports[name] = srv.sockets[0].getsockname()[1]
            self.servers.append(srv)

    def close_listeners(self):
        for srv in self.servers:
            srv.close()
        self.servers = []

    def write_port_file(self):
        if not self.args.port_file:
            return
        path = self.args.port_file
        tmp = "%s.tmp.%d" % (path, os.getpid())
        with open(tmp, "w") as f:
            json.dump(dict(self.ports, pid=os.getpid()), f)
            f.write("\n")
        os.replace(tmp, path)

    def announce(self):
        """--announce: the module runtime's simulator hook reads this one line on stdout as the
        settings the eye tracker module gets (where to connect)."""
        if not self.args.announce:
            return
        sys.stdout.write(json.dumps({"address": self.args.host, "port": self.ports["http"]}) + "\n")
        sys.stdout.flush()

    def drop_everything(self):
        for w in list(self.conns):
            try:
                w.transport.abort()
            except Exception:
                pass
        self.conns.clear()
        self.ws_clients.clear()
        for s in list(self.sessions.values()):
            self.end_session(s, "closed")

    async def disconnect(self, reason):
        if self.down or self.stop_event.is_set():
            log("disconnect (%s) ignored: already down" % reason)
            return
        self.down = True
        self.truth.obj(kind="disconnect", mono_ns=time.monotonic_ns(), reason=reason)
        log("disconnect (%s) for %.3f s" % (reason, self.args.down_for_s))
        self.close_listeners()
        self.drop_everything()
        await asyncio.sleep(0)
        await self.reap_ffmpeg()
        await asyncio.sleep(self.args.down_for_s)
        if self.stop_event.is_set():
            return
        await self.open_listeners()
        self.down = False
        self.truth.obj(kind="reconnect", mono_ns=time.monotonic_ns(), reason=reason)
        self.write_port_file()
        log("reconnected")

    async def flush_loop(self):
        while True:
            await asyncio.sleep(0.5)
            self.truth.flush()

    async def watchdog_loop(self):
        timeout = int(self.args.session_timeout_s * 1e9)
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic_ns()
            for s in list(self.sessions.values()):
                if now - s.last_activity > timeout:
                    log("session %s (%s) timed out" % (s.id, s.kind))
                    self.end_session(s, "timeout")

    async def battery_loop(self):
        while True:
            await asyncio.sleep(self.args.battery_drain_s)
            if self.battery > 0:
                self.battery -= 1
                self.ws_push(self.phone_component())

    # ---- status ---------------------------------------------------------

    def phone_component(self):
        b = self.battery
        mem = int(self.args.memory_gb * 1e9)
        return {"model": "Phone", "data": {
            "ip": self.args.host, "port": self.ports["http"], "device_id": self.device_id,
            "device_name": self.args.device_name, "battery_level": b,
            "battery_state": "OK" if b >= 15 else ("LOW" if b >= 5 else "CRITICAL"),
            "memory": mem, "memory_state": "OK" if mem >= 2e9 else (
                "LOW" if mem >= 0.5e9 else "CRITICAL"),
            "time_echo_port": self.ports["time_echo"]}}

    def recording_component(self, action, rec_id, duration_ns):
        return {"model": "Recording", "data": {"id": rec_id, "action": action, "message": "",
                                               "rec_duration_ns": duration_ns}}

    def status_components(self):
        host = self.args.host
        comps = [self.phone_component(),
                 {"model": "Hardware", "data": {
                     "version": "2.0", "glasses_serial": "-1", "world_camera_serial": "-1",
                     "module_serial": self.module_serial}}]
        for sensor in ("gaze", "world"):   # the real phone lists these too; not served here
            comps.append({"model": "Sensor", "data": {
                "sensor": sensor, "conn_type": "WEBSOCKET", "connected": True, "ip": host,
                "port": 8686, "protocol": "websocket", "params": "camera=" + sensor,
                "stream_error": False}})
        for sensor in KINDS:
            ok = sensor != "world" or self.scene.error is None
            comps.append({"model": "Sensor", "data": {
                "sensor": sensor, "conn_type": "DIRECT", "connected": ok, "ip": host,
                "port": self.ports["rtsp"], "protocol": "rtsp", "params": "camera=" + sensor,
                "stream_error": not ok}})
        if self.recording:
            rec_id, start = self.recording
            comps.append(self.recording_component("START", rec_id,
                                                  time.monotonic_ns() - start))
        return comps

    def ws_push(self, comp):
        frame = ws_frame(1, json.dumps(comp, separators=(",", ":")).encode())
        for w in list(self.ws_clients):
            try:
                w.write(frame)
            except Exception:
                self.ws_clients.discard(w)

    # ---- HTTP -----------------------------------------------------------

    def http_response(self, status, obj, keep_alive, extra=""):
        body = json.dumps(obj, separators=(",", ":")).encode() if obj is not None else b""
        head = ("HTTP/1.1 %d %s\r\nServer: neon-sim\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\nConnection: %s\r\n%s\r\n" % (
                    status, HTTP_REASONS.get(status, "Error"), len(body),
                    "keep-alive" if keep_alive else "close", extra))
        return head.encode() + body

    async def handle_http(self, reader, writer):
        self.conns.add(writer)
        try:
            while True:
                try:
                    msg = await read_message(reader, allow_chunked=True, writer=writer)
                except ProtocolError as e:
                    writer.write(self.http_response(e.status, {"message": str(e)}, False))
                    break
                if msg is None:
                    break
                start, headers, body = msg
                parts = start.split()
                if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                    writer.write(self.http_response(400, {"message": "bad request line"}, False))
                    break
                method, target, version = parts
                conn_hdr = headers.get("connection", "").lower()
                keep = ("close" not in conn_hdr) if version == "HTTP/1.1" else (
                    "keep-alive" in conn_hdr)
                path = target.split("?", 1)[0]
                if path.startswith("http://"):
                    path = "/" + path.split("/", 3)[-1]
                if (path == "/api/status" and method == "GET"
                        and "websocket" in headers.get("upgrade", "").lower()):
                    await self.websocket(reader, writer, headers)
                    return
                status, obj = self.route(method, path, body)
                writer.write(self.http_response(status, obj, keep))
                await writer.drain()
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            await self.close_writer(writer)

    async def close_writer(self, writer):
        self.conns.discard(writer)
        self.ws_clients.discard(writer)
        try:
            writer.close()
            await writer.wait_closed()
        except Exception:
            pass

    def route(self, method, path, body):
        if path in ("/api/status", "/api/status/"):
            if method != "GET":
                return 405, {"message": "Method not allowed"}
            return 200, {"message": "Success", "result": self.status_components()}
        posts = {"/api/recording:start": self.rec_start,
                 "/api/recording:stop_and_save": self.rec_stop,
                 "/api/recording:cancel": self.rec_cancel,
                 "/api/event": self.post_event}
        if path in posts:
            if method != "POST":
                return 405, {"message": "Method not allowed"}
            return posts[path](body)
        return 404, {"message": "Not found: %s" % path}

    def rec_start(self, _body):
        if self.recording:
            return 500, {"message": "already recording"}
        rec_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        dev, mono = self.clock.now()
        self.recording = (rec_id, mono)
        self.truth.obj(kind="recording", action="start", id=rec_id, device_ns=dev, mono_ns=mono)
        self.ws_push(self.recording_component("START", rec_id, 0))
        return 200, {"message": "Recording started", "result": {"id": rec_id}}

    def _rec_end(self, action, pushes, message):
        if not self.recording:
            return 500, {"message": "not recording"}
        rec_id, start = self.recording
        dev, mono = self.clock.now()
        self.recording = None
        dur = mono - start
        self.truth.obj(kind="recording", action=action, id=rec_id, device_ns=dev, mono_ns=mono)
        for a in pushes:
            self.ws_push(self.recording_component(a, rec_id, dur))
        result = {"id": rec_id}
        if action == "stop_and_save":
            result["rec_duration_ns"] = dur
        return 200, {"message": message, "result": result}

    def rec_stop(self, _body):
        return self._rec_end("stop_and_save", ("STOP", "SAVE"), "Recording stopped and saved")

    def rec_cancel(self, _body):
        return self._rec_end("cancel", ("DISCARD",), "Recording cancelled")

    def post_event(self, body):
        try:
            req = json.loads(body.decode("utf-8")) if body else None
        except (ValueError, UnicodeDecodeError):
            return 400, {"message": "body is not JSON"}
        if not isinstance(req, dict) or not isinstance(req.get("name"), str):
            return 400, {"message": "expected {\"name\": str, \"timestamp\": int}"}
        dev, mono = self.clock.now()
        ts = req.get("timestamp")
        if ts is None:
            ts = dev
        elif isinstance(ts, bool) or not isinstance(ts, (int, float)):
            return 400, {"message": "timestamp must be an integer (unix ns)"}
        ts = int(ts)
        rec_id = self.recording[0] if self.recording else None
        self.truth.obj(kind="api_event", name=req["name"], timestamp=ts, recording_id=rec_id,
                       device_ns=dev, mono_ns=mono)
        result = {"name": req["name"], "recording_id": rec_id, "timestamp": ts}
        self.ws_push({"model": "Event", "data": result})
        return 200, {"message": "Event sent.", "result": result}

    # ---- WebSocket ------------------------------------------------------

    async def websocket(self, reader, writer, headers):
        key = headers.get("sec-websocket-key")
        if headers.get("sec-websocket-version") != "13" or not key:
            writer.write(self.http_response(426 if key else 400,
                                            {"message": "WebSocket version 13 required"},
                                            False, "Sec-WebSocket-Version: 13\r\n"))
            return
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept).encode())
        for comp in self.status_components():
            writer.write(ws_frame(1, json.dumps(comp, separators=(",", ":")).encode()))
        self.ws_clients.add(writer)
        await writer.drain()
        while True:
            b0, b1 = await reader.readexactly(2)
            opcode = b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", await reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await reader.readexactly(8))[0]
            if not b1 & 0x80:
                writer.write(ws_frame(8, struct.pack("!H", 1002) + b"unmasked frame"))
                return
            if n > MAX_BODY:
                writer.write(ws_frame(8, struct.pack("!H", 1009)))
                return
            mask = await reader.readexactly(4)
            payload = ws_unmask(mask, await reader.readexactly(n))
            if opcode == 8:
                writer.write(ws_frame(8, payload[:2]))
                await writer.drain()
                return
            if opcode == 9:
                writer.write(ws_frame(10, payload[:125]))
                await writer.drain()

    # ---- Time Echo --------------------------------------------------------

    async def handle_time_echo(self, reader, writer):
        self.conns.add(writer)
        try:
            while True:
                t1 = await reader.readexactly(8)
                writer.write(t1 + struct.pack(">Q", self.clock.device_ns() // 1_000_000))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            await self.close_writer(writer)

    # ---- RTSP -----------------------------------------------------------

    async def handle_rtsp(self, reader, writer):
        self.conns.add(writer)
        peer = writer.get_extra_info("peername")
        conn = {"peer_ip": peer[0] if peer else self.args.host, "camera": None, "sessions": set()}
        try:
            while True:
                try:
                    msg = await read_message(reader, allow_chunked=False)
                except ProtocolError as e:
                    writer.write(self.rtsp_response(e.status, None, {}))
                    break
                if msg is None:
                    break
                start, headers, body = msg
                status, hdrs, rbody, after = await self.rtsp_request(conn, start, headers)
                writer.write(self.rtsp_response(status, headers.get("cseq"), hdrs, rbody))
                await writer.drain()
                if after:
                    after()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            for sid in list(conn["sessions"]):
                s = self.sessions.get(sid)
                if s is not None:
                    self.end_session(s, "closed")
            await self.close_writer(writer)

    def rtsp_response(self, status, cseq, hdrs, body=b""):
        lines = ["RTSP/1.0 %d %s" % (status, RTSP_REASONS.get(status, "Error"))]
        if cseq is not None:
            lines.append("CSeq: %s" % cseq)
        lines.append("Date: %s" % email.utils.formatdate(usegmt=True))
        lines.append("Server: neon-sim")
        for k, v in hdrs.items():
            lines.append("%s: %s" % (k, v))
        if body or status == 200:
            lines.append("Content-Length: %d" % len(body))
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def camera_of(self, url, conn):
        m = re.search(r"[?&]camera=([A-Za-z_]+)", url)
        if m:
            return m.group(1)
        return conn["camera"]

    def sdp(self, camera):
        host = self.args.host
        ipv = "IP6" if ":" in host else "IP4"
        pt = PAYLOAD_TYPES[camera]
        media = "video" if camera == "world" else "application"
        lines = ["v=0", "o=- %d 1 IN %s %s" % (self.rng.getrandbits(31), ipv, host),
                 "s=Neon Sim %s" % camera, "c=IN %s %s" % (ipv, host), "t=0 0",
                 "a=control:*", "a=range:npt=0-",
                 "m=%s 0 RTP/AVP %d" % (media, pt),
                 "a=rtpmap:%d %s/%d" % (pt, ENCODINGS[camera], RTP_CLOCK)]
        if camera == "world":
            lines.append("a=fmtp:%d %s" % (pt, self.scene.fmtp()))
            lines.append("a=framerate:%s" % self.args.scene_fps)
            lines.append("a=x-dimensions:%d,%d" % (self.scene.w, self.scene.h))
        lines.append("a=control:trackID=0")
        return ("\r\n".join(lines) + "\r\n").encode()

    async def rtsp_request(self, conn, start, headers):
        """-> (status, headers, body, callable run after the reply is written)."""
        parts = start.split()
        if len(parts) != 3 or not parts[2].startswith("RTSP/"):
            return 400, {}, b"", None
        method, url, _ = parts
        if headers.get("cseq") is None:
            return 400, {}, b"", None
        for sid in conn["sessions"]:
            if sid in self.sessions:
                self.sessions[sid].touch()
        sess = None
        if "session" in headers:
            sid = headers["session"].split(";")[0].strip()
            sess = self.sessions.get(sid)
            if sess is None:
                return 454, {}, b"", None
            sess.touch()
        sess_hdr = {"Session": sess.id} if sess else {}
        if method == "OPTIONS":
            return 200, dict(sess_hdr, Public="OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, "
                                              "TEARDOWN"), b"", None
        if method == "GET_PARAMETER":
            return 200, sess_hdr, b"", None
        if method == "DESCRIBE":
            camera = self.camera_of(url, {"camera": None})
            if camera not in KINDS:
                return 404, {}, b"", None
            if camera == "world":
                await asyncio.shield(self.scene_ready)
                if self.scene.sps is None:
                    return 503, {}, b"", None
            conn["camera"] = camera
            base = url if url.endswith("/") else url + "/"
            return 200, {"Content-Base": base, "Content-Type": "application/sdp"}, \
                self.sdp(camera), None
        if method == "SETUP":
            camera = self.camera_of(url, conn)
            if camera not in KINDS:
                return 404, {}, b"", None
            if camera == "world":
                await asyncio.shield(self.scene_ready)
                if self.scene.sps is None:
                    return 503, {}, b"", None
            cports = self.parse_transport(headers.get("transport", ""))
            if cports is None:
                return 461, {}, b"", None
            if sess is not None:
                if sess.kind != camera or sess.playing:
                    return 455, sess_hdr, b"", None
                self.end_session(sess, None)
            try:
                s = RtpSession(self, conn, camera, conn["peer_ip"], cports, url)
            except OSError as e:
                log("SETUP: %s" % e)
                return 500, {}, b"", None
            self.sessions[s.id] = s
            conn["sessions"].add(s.id)
            timeout = max(1, int(round(self.args.session_timeout_s)))
            return 200, {
                "Transport": "RTP/AVP;unicast;destination=%s;source=%s;client_port=%d-%d;"
                             "server_port=%d-%d;ssrc=%08X" % (
                                 conn["peer_ip"], self.args.host, cports[0], cports[1],
                                 s.server_ports[0], s.server_ports[1], s.ssrc),
                "Session": "%s;timeout=%d" % (s.id, timeout)}, b"", None
        if method == "PLAY":
            if sess is None:
                return 454, {}, b"", None
            hdrs = dict(sess_hdr)
            hdrs["Range"] = "npt=0.000-"
            if sess.playing:
                dev = self.clock.device_ns()
                hdrs["RTP-Info"] = "url=%s;seq=%d;rtptime=%d" % (sess.url, sess.seq,
                                                                 sess.rtp_ts(dev))
                return 200, hdrs, b"", None
            hdrs["RTP-Info"] = "url=%s;seq=%d;rtptime=%d" % (sess.url, sess.seq, sess.ts_start)

            def start_playing(s=sess):
                if not s.closed:
                    s.play()
                    self.playing[s.kind].append(s)
                    self.update_producers()
            return 200, hdrs, b"", start_playing
        if method == "TEARDOWN":
            if sess is None:
                return 454, {}, b"", None
            self.end_session(sess, "teardown")
            return 200, {}, b"", None
        return 501, sess_hdr, b"", None

    @staticmethod
    def parse_transport(value):
        for alt in value.split(","):
            params = [p.strip() for p in alt.split(";")]
            if not params or params[0].upper() not in ("RTP/AVP", "RTP/AVP/UDP"):
                continue
            if any(p.lower() == "multicast" for p in params):
                continue
            for p in params:
                m = re.fullmatch(r"client_port=(\d+)(?:-(\d+))?", p)
                if m:
                    a = int(m.group(1))
                    b = int(m.group(2)) if m.group(2) else a + 1
                    if 0 < a < 65536 and 0 < b < 65536:
                        return a, b
        return None

    def end_session(self, s, action):
        s.close(action)
        self.sessions.pop(s.id, None)
        s.conn["sessions"].discard(s.id)
        if s in self.playing[s.kind]:
            self.playing[s.kind].remove(s)
        self.update_producers()

    # ---- producers --------------------------------------------------------

    def update_producers(self):
        for kind in KINDS:
            task = self.producers.get(kind)
            if self.playing[kind] and (task is None or task.done()):
                coro = {"gaze": self.gaze_producer, "imu": self.imu_producer,
                        "eye_events": self.eye_event_producer,
                        "world": self.world_producer}[kind]()
                self.producers[kind] = asyncio.get_running_loop().create_task(coro)
            elif not self.playing[kind] and task is not None:
                task.cancel()
                del self.producers[kind]

    async def periodic(self, hz, step):
        """Call step(device_ns, mono_ns) for every tick of an absolute hz grid on
        CLOCK_MONOTONIC. A sample is stamped with its tick (like a sensor's
        capture time) and sent when the loop gets there: late ticks are caught
        up, unless the loop stalled for over 0.25 s (then the source skips)."""
        period = max(1, int(round(1e9 / hz)))
        stall = max(250_000_000, 5 * period)
        t = time.monotonic_ns()
        while True:
            dev, mono = self.clock.now()
            if mono - t > stall:
                t += ((mono - t) // period) * period
            off = dev - mono
            while t <= mono:
                step(t + off, t)
                t += period
            await sleep_until(t)

    async def gaze_producer(self):
        layout = self.args.gaze_layout
        truth = self.truth
        sessions = self.playing["gaze"]

        def step(dev, mono):
            payload = self.eye.sample(mono, layout)
            for s in sessions:
                seq, sent = s.send(payload, dev)
                truth.line('{"kind":"gaze","session":"%s","seq":%d,"device_ns":%d,'
                           '"mono_ns":%d,"sent":%s}\n' % (s.id, seq, dev, mono, jbool(sent)))
        await self.periodic(self.args.gaze_hz, step)

    async def imu_producer(self):
        truth = self.truth
        sessions = self.playing["imu"]

        def step(dev, mono):
            accel, gyro, quat = self.imu.sample(mono)
            payload = imu_payload(dev, accel, gyro, quat)
            for s in sessions:
                seq, sent = s.send(payload, dev)
                truth.line('{"kind":"imu","session":"%s","seq":%d,"device_ns":%d,'
                           '"mono_ns":%d,"sent":%s}\n' % (s.id, seq, dev, mono, jbool(sent)))
        await self.periodic(self.args.imu_hz, step)

    async def eye_event_producer(self):
        sessions = self.playing["eye_events"]
        eye = self.eye
        keepalive = 1_000_000_000
        now = time.monotonic_ns()
        eye.ensure(now)
        while eye.events and eye.events[0][0] < now:
            heapq.heappop(eye.events)
        last_sent = now

        def emit(etype, fields):
            dev, mono = self.clock.now()
            payload = eye_event_payload(etype, fields, dev - mono)
            start_ns = end_ns = None
            if etype in (0, 1, 4):
                start_ns, end_ns = fields[0] + dev - mono, fields[1] + dev - mono
            elif etype in (2, 3):
                start_ns = fields[0] + dev - mono
            for s in sessions:
                seq, sent = s.send(payload, dev)
                self.truth.obj(kind="eye_event", session=s.id, seq=seq, type=etype,
                               start_ns=start_ns, end_ns=end_ns, device_ns=dev, mono_ns=mono,
                               sent=sent)
            return mono

        while True:
            now = time.monotonic_ns()
            eye.ensure(now)
            while eye.events and eye.events[0][0] <= now:
                _, _, etype, fields = heapq.heappop(eye.events)
                last_sent = emit(etype, fields)
            if now - last_sent >= keepalive:
                last_sent = emit(5, ())
            nxt = last_sent + keepalive
            if eye.events:
                nxt = min(nxt, eye.events[0][0])
            await sleep_until(nxt)

    async def world_producer(self):
        while True:
            try:
                await self.run_encoder()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log("scene encoder: %r" % (e,))
            await asyncio.sleep(1.0)   # ffmpeg died: restart while anyone watches

    async def run_encoder(self):
        sessions = self.playing["world"]
        self.encoder_runs += 1
        run = self.encoder_runs
        proc = await asyncio.create_subprocess_exec(
            *self.scene.cmd(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            preexec_fn=set_pdeathsig, limit=1 << 18)
        self.ffmpeg.add(proc)
        period = 1e9 / self.args.scene_fps
        splitter = AnnexBSplitter()
        pending = []
        index = 0
        next_t = None
        keep = {1, 5} | ({7, 8} if self.scene.inband else set())
        checked_sps = False
        try:
            while True:
                while not pending:
                    chunk = await proc.stdout.read(1 << 16)
                    if not chunk:
                        raise RuntimeError("ffmpeg ended (exit %s)" % (await proc.wait()))
                    splitter.feed(chunk, pending)
                au = pending.pop(0)
                if not checked_sps:
                    sps = [n for n in au if n[0] & 0x1F == 7]
                    if sps and sps[0] != self.scene.sps:
                        log("warning: encoder SPS differs from the SDP's")
                    checked_sps = True
                nals = [n for n in au if n[0] & 0x1F in keep]
                if not nals:
                    continue
                now = time.monotonic_ns()
                if next_t is None or now > next_t + period:
                    next_t = now            # first frame, or the encoder fell behind
                else:
                    await sleep_until(int(next_t))
                payloads = h264_payloads(nals)
                key = any(n[0] & 0x1F == 5 for n in nals)
                nbytes = sum(len(p) for p in payloads)
                dev, mono = self.clock.now()
                last = len(payloads) - 1
                for s in sessions:
                    first_seq = s.seq
                    all_sent = True
                    for i, p in enumerate(payloads):
                        all_sent &= s.send(p, dev, marker=(i == last))[1]
                    self.truth.line(
                        '{"kind":"frame","session":"%s","seq":%d,"packets":%d,"bytes":%d,'
                        '"index":%d,"run":%d,"keyframe":%s,"device_ns":%d,"mono_ns":%d,'
                        '"sent":%s}\n' % (s.id, first_seq, len(payloads), nbytes, index, run,
                                          jbool(key), dev, mono, jbool(all_sent)))
                index += 1
                next_t += period
        finally:
            self.reap(proc)


# ---------------------------------------------------------------- command line

def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="neon-sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, help="0 = pick a free port (default 8080; with --announce 0)")
    p.add_argument("--rtsp-port", type=int, help="0 = pick a free port (default 8086; with --announce 0)")
    p.add_argument("--time-echo-port", type=int, help="0 = pick a free port (default 12321; with --announce 0)")
    p.add_argument("--announce", action="store_true",
                   help='print {"address","port"} on stdout once listening (how pilogger-eyetracker starts '
                        "it for address: simulator)")
    p.add_argument("--port-file", help='written atomically once listening: '
                                       '{"http","rtsp","time_echo","pid"}')
    p.add_argument("--offset-s", type=float, default=0.0,
                   help="phone clock = host CLOCK_REALTIME + this")
    p.add_argument("--skew-ppm", type=float, default=0.0,
                   help="the phone clock runs this many parts per million fast (negative: slow)")
    p.add_argument("--device-name", default="Neon Sim")
    p.add_argument("--battery", type=int, default=87, help="battery level, %%")
    p.add_argument("--battery-drain-s", type=float, default=60,
                   help="the battery loses 1 %% this often, pushed over the WebSocket")
    p.add_argument("--memory-gb", type=float, default=100.0, help="free storage, GB")
    p.add_argument("--gaze-layout", type=int, default=89, choices=sorted(GAZE_STRUCTS),
                   help="gaze payload length in bytes")
    p.add_argument("--gaze-hz", type=float, default=200.0)
    p.add_argument("--imu-hz", type=float, default=110.0)
    p.add_argument("--eye-event-interval-s", type=float, default=0.5,
                   help="mean fixation+saccade cycle of the simulated scan path")
    p.add_argument("--scene-size", default="1600x1200", help="WxH of the scene video")
    p.add_argument("--scene-fps", type=float, default=30.0)
    p.add_argument("--scene-bitrate", default="4M",
                   help="x264 bitrate (-b:v/-maxrate/-bufsize); 0 = x264's default CRF")
    p.add_argument("--keyframe-interval-s", type=float, default=1.0)
    p.add_argument("--inband-parameter-sets", action="store_true",
                   help="also send SPS/PPS before every IDR (default: SDP only)")
    p.add_argument("--loss", type=float, default=0.0,
                   help="probability that an RTP packet is not sent")
    p.add_argument("--reorder", type=float, default=0.0,
                   help="probability that an RTP packet is sent after the next one")
    p.add_argument("--seed", type=int)
    p.add_argument("--rtp-ts-start", type=int,
                   help="initial RTP timestamp of every stream (default random)")
    p.add_argument("--first-sr-delay-s", type=float, default=0.0)
    p.add_argument("--sr-interval-s", type=float, default=1.0)
    p.add_argument("--session-timeout-s", type=float, default=60.0)
    p.add_argument("--disconnect-at-s", type=float,
                   help="disappear this many seconds after start (SIGUSR1 does it any time)")
    p.add_argument("--down-for-s", type=float, default=5.0)
    p.add_argument("--truth", help="NDJSON ground-truth log")
    args = p.parse_args(argv)
    # Announced, it is one of many on the machine: free ports unless told otherwise.
    for name, usual in (("http_port", 8080), ("rtsp_port", 8086), ("time_echo_port", 12321)):
        if getattr(args, name) is None:
            setattr(args, name, 0 if args.announce else usual)
    m = re.fullmatch(r"(\d+)x(\d+)", args.scene_size)
    if not m or int(m.group(1)) % 2 or int(m.group(2)) % 2:
        p.error("--scene-size must be WxH with even numbers")
    args.scene_w, args.scene_h = int(m.group(1)), int(m.group(2))
    for name in ("gaze_hz", "imu_hz", "scene_fps", "sr_interval_s", "session_timeout_s",
                 "keyframe_interval_s"):
        if getattr(args, name) <= 0:
            p.error("--%s must be > 0" % name.replace("_", "-"))
    if not 0.0 <= args.loss <= 1.0 or not 0.0 <= args.reorder <= 1.0:
        p.error("--loss and --reorder are probabilities in [0, 1]")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        asyncio.run(Sim(args).run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The simulated wearer (gaze, eye events, IMU) and their RTP payloads."""
import bisect
import heapq
import math
import struct

SCENE_W, SCENE_H = 1600, 1200      # gaze coordinates: the real scene camera
SCENE_FX = 890.0                   # approximate focal length of it, px
GAZE_STRUCTS = {9: struct.Struct(">ffB"), 17: struct.Struct(">ffBff"),
                25: struct.Struct(">ffBffff"), 65: struct.Struct(">ffB" + "f" * 14),
                89: struct.Struct(">ffB" + "f" * 20), 105: struct.Struct(">ffB" + "f" * 24)}
EV_DETAIL = struct.Struct(">iqq10f")
EV_ONSET = struct.Struct(">iq")
EV_BLINK = struct.Struct(">iqq")


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

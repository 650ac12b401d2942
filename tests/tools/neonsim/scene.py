"""The scene video: ffmpeg's H.264 split into access units and RTP payloads."""
import base64
import ctypes
import signal
import subprocess

from .clock import log

MAX_RTP_PAYLOAD = 1400


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

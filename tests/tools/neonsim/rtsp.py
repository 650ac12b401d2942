"""The RTSP server: one stream per URL, RTP/AVP unicast UDP."""
import asyncio
import email.utils
import re

from .clock import log
from .messages import ProtocolError, read_message
from .rtp import KINDS, PAYLOAD_TYPES, RTP_CLOCK, RtpSession

ENCODINGS = {"world": "H264", "gaze": "com.pupillabs.gaze1",
             "imu": "com.pupillabs.imu1", "eye_events": "com.pupillabs.eye_events1"}
RTSP_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 454: "Session Not Found",
                455: "Method Not Valid in This State", 461: "Unsupported Transport",
                500: "Internal Server Error", 501: "Not Implemented",
                503: "Service Unavailable"}


class RtspServer:
    """Sim's RTSP server and its sessions."""

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

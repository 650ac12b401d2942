"""End-to-end tests of tests/tools/neon_sim.py's RTSP streams over loopback (gaze, IMU, eye
events, the world camera's H.264, loss and reorder, sessions, disconnects).

Run from the repository root:
    python3 -m unittest discover -s tests/tools -v
"""
import base64
import http.client
import re
import signal
import socket
import struct
import time
import unittest

import neon_sim_support as sim


class RtspStreams(sim.SimTest):
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
            msg = sim.decode_pb(p["payload"])
            self.assertLess(abs(msg[1] - now), 3 * 10**9)
            accel = sim.decode_pb(msg[2])
            self.assertAlmostEqual(accel[2], -1.0, delta=0.1)   # about -1 g on y
            self.assertEqual(set(sim.decode_pb(msg[4])), {1, 2, 3, 4})
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
        idle = sim.Rtsp(self.ports["rtsp"], "imu")
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

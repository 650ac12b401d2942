"""The eye-tracker module end to end against neon-sim (the simulated Neon on loopback): the real
supervisor, the real C++ client (REST, WebSocket, Time Echo, RTSP with RTP/RTCP over UDP) and the
real ffmpeg subprocess. Device time is checked against the simulator's truth log."""
import bisect
import json
import os
import signal
import subprocess
import sys
import time
import unittest

from harness import BIN, PILOGGER, Rig, mp4_whole_frames, pid_alive, read_csv, wait_for

SIM = os.path.join(BIN, "neon-sim")
OFFSET_S = 3.7


def ps_children(pid):
    r = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(pid)], capture_output=True, text=True)
    out = []
    for line in r.stdout.splitlines():
        child, name = line.split(None, 1)
        out.append((int(child), name.strip()))
    return out


def whole_rows(path):
    """The CSV rows; a last row torn by kill -9 (fewer fields than the header) is left out."""
    rows = read_csv(path)
    return [r for r in rows if None not in r.values() and None not in r]


def ffprobe_frames(path):
    """(pts_us of every packet, frames ffprobe decodes)."""
    r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                        "stream=time_base:packet=pts", "-of", "json", path],
                       capture_output=True, text=True, timeout=60)
    info = json.loads(r.stdout or "{}")
    if not info.get("streams"):
        # A part killed before ffmpeg saw its first frame: ffmpeg closes a file without a stream.
        return [], 0
    num, den = map(int, info["streams"][0]["time_base"].split("/"))
    pts = [round(int(p["pts"]) * num * 1_000_000 / den) for p in info.get("packets", [])]
    c = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                        "stream=nb_read_frames", "-of", "csv=p=0", path], capture_output=True, text=True, timeout=120)
    # A part killed before its first fragment: the MP4 has its stream (written in process, the
    # header comes first) and no packet, which ffprobe counts as N/A frames.
    count = c.stdout.strip().split(",")[0]
    return pts, int(count) if count.isdigit() else 0


class Sim:
    """neon-sim on free ports, with its truth log."""

    def __init__(self, tmp, *args):
        self.port_file = os.path.join(tmp, "sim-ports.json")
        self.truth_path = os.path.join(tmp, "truth.ndjson")
        self.log = open(os.path.join(tmp, "sim.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, SIM, "--http-port", "0", "--rtsp-port", "0", "--time-echo-port", "0",
             "--port-file", self.port_file, "--truth", self.truth_path, "--offset-s", str(OFFSET_S),
             "--scene-size", "800x600", *args], stderr=self.log)
        wait_for(lambda: os.path.exists(self.port_file), 20, what="neon-sim's ports")
        with open(self.port_file) as f:
            self.ports = json.load(f)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if not self.log.closed:
            self.log.close()

    def truth(self, kind=None):
        """The truth log, read once the simulator has exited: it flushes the log only twice a
        second while it runs, so the last samples would be missing."""
        self.stop()
        return self.truth_so_far(kind)

    def truth_so_far(self, kind=None):
        """What the running simulator has flushed of its truth log (all but the last 0.5 s)."""
        out = []
        with open(self.truth_path) as f:
            for line in f:
                try:
                    o = json.loads(line)
                except ValueError:
                    continue
                if kind is None or o.get("kind") == kind:
                    out.append(o)
        return out


class EyetrackerCase(unittest.TestCase):
    sim_args = ()
    module_settings = {}

    def setUp(self):
        self.rig = Rig()
        self.addCleanup(self.rig.cleanup)
        self.sim = Sim(self.rig.tmp, *self.sim_args)
        self.addCleanup(self.sim.stop)
        settings = {"type": "eyetracker", "address": f"127.0.0.1:{self.sim.ports['http']}", "preview": "false"}
        settings.update(self.module_settings)
        from harness import yaml_config
        with open(self.rig.config, "w") as f:
            f.write(yaml_config(self.rig.data, {"notes": {}, "eyetracker": settings},
                                {"restart_backoff_initial_ms": 200, "heartbeat_timeout_ms": 3000}))

    def folder(self):
        return os.path.join(self.rig.session_dir(), "eyetracker")

    def trial_window(self):
        events = self.rig.events()
        start = next(int(e["mono_ns"]) for e in events if e["event"] == "trial_start")
        stop = next((int(e["mono_ns"]) for e in events if e["event"] == "trial_stop"), None)
        return start, stop

    def check_mapping(self, rows, kind="gaze", limit_ms=2.0):
        """Each row's mono_ns against the simulator's truth for the sample of that device time."""
        truth = sorted((o["device_ns"], o["mono_ns"]) for o in self.sim.truth(kind))
        keys = [t[0] for t in truth]
        errors = []
        for r in rows:
            d = int(r["device_time_ns"])
            i = bisect.bisect_left(keys, d)
            j = min((k for k in (i - 1, i) if 0 <= k < len(keys)), key=lambda k: abs(keys[k] - d))
            self.assertLess(abs(keys[j] - d), 100_000, "a row whose device time matches no simulated sample")
            errors.append(abs(int(r["mono_ns"]) - truth[j][1]) / 1e6)
        errors.sort()
        self.assertLess(errors[-1], limit_ms, f"{kind}: p50 {errors[len(errors) // 2]:.3f} ms max {errors[-1]:.3f} ms")
        return errors


class TwentySeconds(EyetrackerCase):
    sim_args = ("--loss", "0.005", "--seed", "7")
    module_settings = {"neon_recording": "true"}

    def test_full_rate_csvs_scene_video_and_trial_events(self):
        rig = self.rig
        r = rig.cli("run", "--config", rig.config, "--record", "--duration", "20", timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        start, stop = self.trial_window()
        folder = self.folder()

        gaze = whole_rows(os.path.join(folder, "trial_001_gaze.csv"))
        sent = [o for o in self.sim.truth("gaze") if o["sent"] and start <= o["mono_ns"] < stop]
        generated = [o for o in self.sim.truth("gaze") if start <= o["mono_ns"] < stop]
        # 200 Hz for 20 s, minus what the simulator dropped on purpose (0.5 %).
        self.assertAlmostEqual(len(generated), 4000, delta=40)
        self.assertAlmostEqual(len(gaze), len(sent), delta=len(sent) * 0.01)
        mono = [int(x["mono_ns"]) for x in gaze]
        self.assertTrue(all(b > a for a, b in zip(mono, mono[1:])), "gaze rows in time order")
        self.assertGreaterEqual(mono[0], start)
        self.assertLess(mono[-1], stop)
        self.assertTrue(all(x["worn"] in ("0", "1") for x in gaze))
        self.assertTrue(all(x["eyelid_aperture_left_mm"] != "" for x in gaze[:10]), "the 89-byte layout's fields")
        self.assertEqual(gaze[0]["left_x_px"], "", "the 89-byte layout has no monocular points")
        errors = self.check_mapping(gaze)
        print(f"\ngaze: {len(gaze)} rows of {len(sent)} sent ({len(generated)} generated); "
              f"mono_ns vs truth p50 {errors[len(errors) // 2]:.3f} ms, max {errors[-1]:.3f} ms", file=sys.stderr)

        imu = whole_rows(os.path.join(folder, "trial_001_imu.csv"))
        self.assertGreater(len(imu), 110 * 20 * 0.95)
        self.check_mapping(imu, "imu")
        events = whole_rows(os.path.join(folder, "trial_001_events.csv"))
        types = {e["type"] for e in events}
        self.assertTrue({"fixation", "saccade"} <= types, types)
        echo = whole_rows(os.path.join(folder, "trial_001_time_echo.csv"))
        self.assertGreaterEqual(len(echo), 20)

        frames = whole_rows(os.path.join(folder, "trial_001_scene_frames.csv"))
        pts, decoded = ffprobe_frames(os.path.join(folder, "trial_001_scene.mp4"))
        self.assertEqual(decoded, len(frames))
        self.assertEqual(pts, [int(x["pts_us"]) for x in frames])
        self.assertEqual([int(x["frame_index"]) for x in frames], list(range(len(frames))))
        # 30 fps for 20 s with 0.5 % of packets lost: a frame that lost packets is kept as far as
        # it came (the decoder conceals the rest) and marked not intact, as is every frame after it
        # up to the next whole keyframe. Only a frame of which no slice data came is missing.
        truth = {o["device_ns"]: o for o in self.sim.truth("frame")}
        window = [o for o in truth.values() if start <= o["mono_ns"] < stop]
        # About 600; the simulator's encoder skips frames when a loaded machine starves it.
        self.assertGreater(len(window), 450)
        rows_by_device = {}
        for x in frames:
            d = int(x["device_time_ns"])
            nearest = min(truth, key=lambda k: abs(k - d)) if d not in truth else d
            self.assertLess(abs(nearest - d), 100_000, "a frame row that matches no sent frame")
            rows_by_device[nearest] = x
        whole = [o for o in window if o["sent"]]
        self.assertEqual([o["device_ns"] for o in whole if o["device_ns"] not in rows_by_device], [],
                         "every frame that arrived whole is in the video")
        damaged = [o for o in window if not o["sent"]]
        self.assertGreater(len(damaged), 0, "0.5 % loss damaged some frames")
        for o in damaged:
            if o["device_ns"] in rows_by_device:
                self.assertEqual(rows_by_device[o["device_ns"]]["intact"], "0")
        intact = sum(x["intact"] == "1" for x in frames)
        self.assertTrue(all(x["intact"] in ("0", "1") for x in frames))
        print(f"scene: {len(frames)} frames in the MP4 and its CSV for {len(window)} sent in the trial "
              f"({len(damaged)} lost packets; {intact} rows intact)", file=sys.stderr)
        self.check_mapping(frames, "frame")

        # The Neon received the trial's start and stop at their instants on its own clock.
        api = {o["name"]: o for o in self.sim.truth("api_event")}
        self.assertIn("trial_001.start", api)
        self.assertIn("trial_001.stop", api)
        shift = self.sim.truth("gaze")[0]["device_ns"] - self.sim.truth("gaze")[0]["mono_ns"]
        self.assertLess(abs(api["trial_001.start"]["timestamp"] - (start + shift)), 2_000_000)
        self.assertLess(abs(api["trial_001.stop"]["timestamp"] - (stop + shift)), 2_000_000)
        # neon_recording: the Neon's own recording ran for the trial and was saved.
        actions = [o["action"] for o in self.sim.truth("recording")]
        self.assertEqual(actions, ["start", "stop_and_save"])


class HostileNetwork(EyetrackerCase):
    """RTP timestamps wrapping 3 s into the stream, 5 % of packets reordered, the first sender
    report 2 s late, the dual-monocular 17-byte gaze layout, and an RTSP session that times out
    after 4 s without a keep-alive."""
    sim_args = ("--rtp-ts-start", str(2**32 - 3 * 90000), "--reorder", "0.05", "--first-sr-delay-s", "2",
                "--gaze-layout", "17", "--seed", "3", "--session-timeout-s", "4")

    def test_rows_stay_ordered_and_timed(self):
        rig = self.rig
        r = rig.cli("run", "--config", rig.config, "--record", "--duration", "10", timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        gaze = whole_rows(os.path.join(self.folder(), "trial_001_gaze.csv"))
        mono = [int(x["mono_ns"]) for x in gaze]
        self.assertTrue(all(b > a for a, b in zip(mono, mono[1:])), "the reorder buffer put rows back in order")
        # Samples before the stream's first sender report cannot be timed; every one after it is here.
        start, stop = self.trial_window()
        first_sr = min(o["mono_ns"] for o in self.sim.truth("sr") if o.get("camera") == "gaze" and o["sent"])
        timeable = [o for o in self.sim.truth("gaze") if o["sent"] and max(start, first_sr) <= o["mono_ns"] < stop]
        self.assertAlmostEqual(len(gaze), len(timeable), delta=len(timeable) * 0.01)
        self.assertGreater(len(gaze), 200 * 7)
        self.assertEqual(gaze[0]["x_px"], "", "17 bytes: no binocular point")
        self.assertNotEqual(gaze[0]["left_x_px"], "")
        self.check_mapping(gaze)
        stats = json.loads(open(os.path.join(rig.session_dir(), "session.json")).read())
        self.assertIn("eyetracker", json.dumps(stats))


class ClockDrift(EyetrackerCase):
    """A phone clock 150 ppm fast: the mapping follows the drift fitted through the Time Echo
    bursts, so it stays as close between bursts as at them (the latest burst alone would be up to
    0.75 ms off 5 s later)."""
    sim_args = ("--skew-ppm", "150")
    module_settings = {"time_echo_interval_s": "5"}

    def test_mapping_follows_the_drift_between_bursts(self):
        rig = self.rig
        rig.start()
        # The drift is used once the bursts span three intervals (15 s here).
        stats = wait_for(lambda: (lambda s: s if s.get("clock_drift_ppm") else None)(rig.module("eyetracker")["stats"]),
                         40, what="a drift fitted from four Time Echo bursts")
        rig.cli("trial", "start")
        # 12 s of the trial on the disk (200 Hz gaze), so its rows span bursts and the time between them.
        gaze_path = os.path.join(self.folder(), "trial_001_gaze.csv")
        wait_for(lambda: os.path.exists(gaze_path) and len(whole_rows(gaze_path)) >= 200 * 12, 60, interval=0.2,
                 what="12 s of gaze rows in the trial")
        rig.cli("trial", "stop")
        stats = rig.module("eyetracker")["stats"]
        code, _, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        self.assertAlmostEqual(stats["clock_drift_ppm"], 150, delta=30)
        self.assertEqual(stats["clock_steps"], 0)
        gaze = whole_rows(os.path.join(self.folder(), "trial_001_gaze.csv"))
        self.assertGreater(len(gaze), 200 * 10)
        errors = self.check_mapping(gaze, limit_ms=0.6)
        print(f"\ndrift {stats['clock_drift_ppm']} ppm (150 simulated): gaze mono_ns vs truth "
              f"p50 {errors[len(errors) // 2]:.3f} ms, max {errors[-1]:.3f} ms", file=sys.stderr)


class Disconnect(EyetrackerCase):
    sim_args = ("--down-for-s", "3", "--battery-drain-s", "0.5")

    def test_session_survives_and_the_trial_continues_in_a_part_file(self):
        rig = self.rig
        rig.start("--record")
        rig.wait_module("eyetracker", "recording", timeout=20)
        folder = self.folder()
        wait_for(lambda: len(whole_rows(os.path.join(folder, "trial_001_gaze.csv"))) > 400, 20, what="gaze rows")
        # The battery drains by a percent every 0.5 s, each change pushed over the status WebSocket.
        pushed = wait_for(lambda: (lambda s: s if s.get("status_pushes", 0) >= 3 else None)(
            rig.module("eyetracker")["stats"]), 10, what="status pushed over the WebSocket")
        self.assertLess(pushed["battery_percent"], 87)
        self.sim.proc.send_signal(signal.SIGUSR1)
        part2 = os.path.join(folder, "trial_001_p2_gaze.csv")
        wait_for(lambda: os.path.exists(part2) and len(whole_rows(part2)) > 200, 30, what="gaze in the part file")
        status = rig.status()
        self.assertIsNotNone(status["trial"], "the trial goes on")
        self.assertIn("disconnects", rig.module("eyetracker")["stats"])
        rig.cli("note", "after the reconnect")
        code, _, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        warnings = [e for e in rig.events() if e["event"] == "module_warning" and "disconnected" in e["detail"]]
        self.assertTrue(warnings, "the disconnect is in events.csv")
        down = next(o["mono_ns"] for o in self.sim.truth("disconnect"))
        p1 = whole_rows(os.path.join(folder, "trial_001_gaze.csv"))
        p2 = whole_rows(part2)
        self.assertLess(int(p1[-1]["mono_ns"]), down)
        self.assertGreater(int(p2[0]["mono_ns"]), down + 2_500_000_000)
        self.check_mapping(p1 + p2)
        for name in ("imu", "events", "time_echo", "scene_frames"):
            self.assertTrue(os.path.exists(os.path.join(folder, f"trial_001_p2_{name}.csv")), name)
        pts, decoded = ffprobe_frames(os.path.join(folder, "trial_001_p2_scene.mp4"))
        self.assertEqual(decoded, len(whole_rows(os.path.join(folder, "trial_001_p2_scene_frames.csv"))))
        self.assertEqual(rig.notes()[-1]["text"], "after the reconnect")


class Kills(EyetrackerCase):
    def test_kill_9_of_the_module_leaves_readable_files(self):
        # Formerly test_kill_ffmpeg_then_the_module_leaves_readable_files: it SIGKILLed the
        # module's ffmpeg child first. The scene MP4 is now written in process (no child), so the
        # module's own SIGKILL below is what loses the scene's last fragment.
        rig = self.rig
        rig.start("--record")
        module = rig.wait_module("eyetracker", "recording", timeout=20)
        folder = self.folder()
        frames_path = os.path.join(folder, "trial_001_scene_frames.csv")
        wait_for(lambda: len(whole_rows(frames_path)) > 120, 30, what="4 s of scene frames")
        self.assertEqual([name for _, name in ps_children(module["pid"]) if name == "ffmpeg"], [],
                         "no ffmpeg child: the scene is written in process")

        # Still recording 2 s later: 60 more frames (30 fps) on the disk.
        frames_before = len(whole_rows(frames_path))
        wait_for(lambda: len(whole_rows(frames_path)) >= frames_before + 60, 30, what="2 s more of scene frames")
        killed_at = time.monotonic_ns()
        os.kill(module["pid"], signal.SIGKILL)
        rig.wait_module("eyetracker", "recording", timeout=30, other_than_pid=module["pid"])
        gaze = whole_rows(os.path.join(folder, "trial_001_gaze.csv"))
        self.assertGreater(int(gaze[-1]["mono_ns"]), killed_at - 1_500_000_000, "data up to the last second")
        for name in ("imu", "events", "time_echo"):
            whole_rows(os.path.join(folder, f"trial_001_{name}.csv"))
        wait_for(lambda: len(whole_rows(os.path.join(folder, "trial_001_p2_gaze.csv"))) > 100
                 if os.path.exists(os.path.join(folder, "trial_001_p2_gaze.csv")) else False, 30,
                 what="the restarted module's part file")
        code, _, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        # The killed module lost its last fragment; the restarted module moved the rows of those
        # frames beside the CSV, so row k is frame k again.
        frames, _ = mp4_whole_frames(os.path.join(folder, "trial_001_scene.mp4"))
        pts, decoded = ffprobe_frames(os.path.join(folder, "trial_001_scene.mp4"))
        rows = read_csv(os.path.join(folder, "trial_001_scene_frames.csv"))
        moved = read_csv(os.path.join(folder, "trial_001_scene_frames_unwritten.csv"))
        self.assertEqual(len(rows), frames)
        self.assertEqual(decoded, frames)
        self.assertGreater(len(moved), 0)
        self.assertEqual([int(r["frame_index"]) for r in rows + moved], list(range(len(rows) + len(moved))))
        print(f"\nmodule killed: {frames} frames in trial_001_scene.mp4 = {len(rows)} rows; "
              f"{len(moved)} rows moved to trial_001_scene_frames_unwritten.csv")
        self.assertTrue([e for e in rig.events() if e["event"] == "module_warning"
                         and "trial_001_scene_frames_unwritten.csv" in e["detail"]])


class RowPerFrame(EyetrackerCase):
    def test_kill_9_three_times_every_part_has_one_row_per_scene_frame(self):
        """The scene frames CSV against the scene MP4 after kill -9 of the module at three points
        of one trial: the video never has a frame without its row, and once the restarted module
        has reconciled the part (its orphaned ffmpeg finishes the MP4 first), row k is frame k."""
        rig = self.rig
        rig.start("--record")
        module = rig.wait_module("eyetracker", "recording", timeout=20)
        folder = self.folder()
        report = []
        # Frames into each part before the kill: about 2.5 s, 1.2 s and 0.4 s of video.
        for part, frames_before_kill in enumerate((75, 36, 12), start=1):
            stem = "trial_001" if part == 1 else f"trial_001_p{part}"
            csv_path = os.path.join(folder, stem + "_scene_frames.csv")
            wait_for(lambda: os.path.exists(csv_path) and len(whole_rows(csv_path)) >= frames_before_kill, 40,
                     interval=0.02, what=f"{frames_before_kill} scene frames in part {part}")
            ffmpeg = [pid for pid, name in ps_children(module["pid"]) if name == "ffmpeg"]
            os.kill(module["pid"], signal.SIGKILL)
            wait_for(lambda: not pid_alive(module["pid"]), 10, what="the killed module gone")
            rows_at_kill = len(read_csv(csv_path))
            # The orphaned ffmpeg reads the end of its input and finishes the file.
            for pid in ffmpeg:
                wait_for(lambda: not pid_alive(pid), 15, what="the orphaned ffmpeg to finish")
            frames, torn = mp4_whole_frames(os.path.join(folder, stem + "_scene.mp4"))
            self.assertGreaterEqual(rows_at_kill, frames, f"part {part}: a frame in the video without its row")
            report.append(f"part {part}: killed with {rows_at_kill} rows on the disk; ffmpeg finished the MP4 "
                          f"with {frames} frames")
            module = rig.wait_module("eyetracker", "recording", timeout=30, other_than_pid=module["pid"])
        wait_for(lambda: len(whole_rows(os.path.join(folder, "trial_001_p4_scene_frames.csv"))) >= 30
                 if os.path.exists(os.path.join(folder, "trial_001_p4_scene_frames.csv")) else False, 40,
                 what="scene frames in part 4")
        code, _, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        print("\n" + "\n".join(report))
        for part in range(1, 5):
            stem = "trial_001" if part == 1 else f"trial_001_p{part}"
            with self.subTest(part=part):
                csv_path = os.path.join(folder, stem + "_scene_frames.csv")
                video = os.path.join(folder, stem + "_scene.mp4")
                rows = read_csv(csv_path)
                self.assertEqual(len(whole_rows(csv_path)), len(rows), "no torn row")
                frames, torn = mp4_whole_frames(video)
                self.assertFalse(torn)
                pts, decoded = ffprobe_frames(video)
                self.assertEqual(len(rows), frames)
                self.assertEqual(len(pts), frames)
                self.assertEqual(decoded, frames)
                self.assertEqual([int(r["pts_us"]) for r in rows], [p - pts[0] for p in pts])
                self.assertEqual([int(r["frame_index"]) for r in rows], list(range(len(rows))))
                sidecar = os.path.join(folder, stem + "_scene_frames_unwritten.csv")
                moved = read_csv(sidecar) if os.path.exists(sidecar) else []
                if moved:
                    self.assertEqual([int(r["frame_index"]) for r in moved],
                                     list(range(len(rows), len(rows) + len(moved))))
                print(f"{stem}_scene_frames.csv: {len(rows)} rows = {frames} frames in the MP4 (ffprobe decodes "
                      f"{decoded}); {len(moved)} rows moved to the _unwritten sidecar")
        # The same check by hand, for a part nobody continued: every part matches already.
        r = subprocess.run([os.path.join(BIN, "pilogger-eyetracker"), "--reconcile", folder], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.count(" rows = the "), 4, r.stdout)


def mdns_available():
    try:
        r = subprocess.run(["avahi-browse", "--terminate", "--parsable", "_http._tcp"], capture_output=True,
                           timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


MDNS_NEEDED = "needs avahi-browse and a running avahi-daemon (scripts/mdns-up.sh)"


@unittest.skipUnless(mdns_available(), MDNS_NEEDED)
class Discovery(unittest.TestCase):
    """address: auto finds the Neon by its mDNS announcement, as the Companion app makes it."""

    def test_auto_finds_the_announced_neon_by_name(self):
        from harness import yaml_config
        rig = Rig()
        self.addCleanup(rig.cleanup)
        # Listen on every interface: mDNS answers with the host's LAN address, as for a phone.
        sim = Sim(rig.tmp, "--host", "0.0.0.0", "--device-name", "Lab Phone")
        self.addCleanup(sim.stop)
        name = f"PI monitor:Lab Phone:{os.getpid()}"
        publisher = subprocess.Popen(["avahi-publish", "-s", name, "_http._tcp", str(sim.ports["http"])],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (publisher.kill(), publisher.wait()))
        decoy = subprocess.Popen(["avahi-publish", "-s", f"PI monitor:Other Phone:{os.getpid()}", "_http._tcp", "9"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (decoy.kill(), decoy.wait()))
        # `pilogger devices` lists both phones, once each, with the port they announce.
        def listed():
            r = subprocess.run([PILOGGER, "devices", "--json"], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            found = {n["phone_name"]: n for n in json.loads(r.stdout)["neons"] if n["name"].endswith(str(os.getpid()))}
            return found if len(found) == 2 else None
        neons = wait_for(listed, 20, what="both phones in pilogger devices")
        self.assertEqual(neons["Lab Phone"]["port"], sim.ports["http"])
        self.assertEqual(neons["Other Phone"]["port"], 9)
        self.assertIn(neons["Lab Phone"]["address"], neons["Lab Phone"]["addresses"])
        human = subprocess.run([PILOGGER, "devices"], capture_output=True, text=True, timeout=60).stdout
        self.assertRegex(human, r"Neon eye trackers \(mDNS\):\n(  .*\n)*  \d+: Lab Phone  \S+:%d" % sim.ports["http"])

        with open(rig.config, "w") as f:
            f.write(yaml_config(rig.data, {"notes": {}, "eyetracker": {
                "type": "eyetracker", "address": "auto", "device_name": "'Lab Phone'", "scene": "false",
                "preview": "false"}}))
        rig.start()
        stats = wait_for(lambda: rig.module("eyetracker")["stats"].get("connected") and rig.module("eyetracker")["stats"],
                         30, what="the Neon found by mDNS")
        self.assertEqual(stats["device_name"], "Lab Phone")
        code, _, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        log = open(os.path.join(rig.session_dir(), "logs", "eyetracker.log")).read()
        self.assertIn("found PI monitor:Lab Phone", log)


@unittest.skipUnless(mdns_available(), MDNS_NEEDED)
class Rediscovery(unittest.TestCase):
    """A phone found by mDNS that comes back at another address (a new Wi-Fi lease) is found again."""

    def test_the_neon_back_at_another_address_is_found_again(self):
        from harness import yaml_config
        rig = Rig()
        self.addCleanup(rig.cleanup)
        name = f"PI monitor:Lab Phone:{os.getpid()}"

        def announce(sim_tmp, device_name):
            os.makedirs(sim_tmp, exist_ok=True)
            sim = Sim(sim_tmp, "--host", "0.0.0.0", "--device-name", device_name)
            self.addCleanup(sim.stop)
            publisher = subprocess.Popen(["avahi-publish", "-s", name, "_http._tcp", str(sim.ports["http"])],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.addCleanup(lambda: (publisher.kill(), publisher.wait()))
            return sim, publisher

        first, first_publisher = announce(os.path.join(rig.tmp, "first"), "Lab Phone")
        with open(rig.config, "w") as f:
            f.write(yaml_config(rig.data, {"notes": {}, "eyetracker": {
                "type": "eyetracker", "address": "auto", "device_name": "'Lab Phone'", "scene": "false",
                "preview": "false"}}))
        rig.start()
        wait_for(lambda: rig.module("eyetracker")["stats"].get("device_name") == "Lab Phone", 30,
                 what="the Neon found by mDNS")
        # The phone goes away and comes back on other ports, under the same mDNS name.
        first_publisher.kill()
        first_publisher.wait()
        first.stop()
        announce(os.path.join(rig.tmp, "second"), "Lab Phone again")
        stats = wait_for(lambda: (lambda s: s if s.get("connected") and s.get("device_name") == "Lab Phone again"
                                  else None)(rig.module("eyetracker")["stats"]), 45,
                         what="the Neon found again at its new address")
        self.assertEqual(stats["device_name"], "Lab Phone again")
        code, _, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        log = open(os.path.join(rig.session_dir(), "logs", "eyetracker.log")).read()
        self.assertIn("looking for it again by mDNS", log)


class MissingDevice(unittest.TestCase):
    def test_no_neon_the_session_runs_and_status_says_so(self):
        from harness import yaml_config
        rig = Rig()
        self.addCleanup(rig.cleanup)
        with open(rig.config, "w") as f:
            f.write(yaml_config(rig.data, {"notes": {}, "eyetracker": {"type": "eyetracker", "address": "127.0.0.1:9"}}))
        rig.start("--record")
        rig.wait_module("eyetracker", "recording", timeout=20)
        rig.cli("note", "no eye tracker today")
        wait_for(lambda: "Neon not connected" in rig.cli("status").stdout, 10, what="the status line")
        code, _, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        self.assertEqual(rig.notes()[-1]["text"], "no eye tracker today")
        self.assertTrue(any("not connected" in e["detail"] for e in rig.events() if e["event"] == "module_warning"))


if __name__ == "__main__":
    unittest.main()

"""The camera module end to end: test-pattern cameras through the real supervisor, crash safety
of the fragmented MP4 (kill -9, SIGTERM), snapshots and the preview, and the libcamera backend
on a machine without a camera."""
import glob
import json
import mmap
import os
import signal
import struct
import subprocess
import tempfile
import time
import unittest

from harness import BIN, PILOGGER, SOURCE, Rig, mp4_samples, mp4_whole_frames, pid_alive, read_csv, wait_for

CAMERA = os.path.join(BIN, "pilogger-camera")
FRAME_COLUMNS = ["frame_index", "sensor_ns", "mono_ns", "wall_time_utc", "pts_us", "dropped_before",
                 "exposure_us", "queue_depth"]
PERIOD_US = 1e6 / 30


def ffprobe_packets(path):
    """(pts_us, is_key) of every video packet, as ffprobe reads the file (time base 1/1000000)."""
    r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                        "stream=time_base:packet=pts,flags", "-of", "json", path],
                       capture_output=True, text=True, timeout=60)
    info = json.loads(r.stdout or "{}")
    streams = info.get("streams", [])
    if streams:
        assert streams[0]["time_base"] == "1/1000000", streams
    return [(int(p["pts"]), "K" in p["flags"]) for p in info.get("packets", [])]


def ffprobe_counted_frames(path):
    """Frames ffprobe decodes (not just the packets the index lists)."""
    r = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                        "stream=nb_read_frames", "-of", "csv=p=0", path],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    count = r.stdout.strip().split(",")[0]
    return 0 if count == "N/A" else int(count)  # N/A: a file with its header only (killed before a fragment)


def ffprobe_duration(path):
    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return float(r.stdout.strip())


def frame_rows(path):
    """The frames CSV; a last row torn by kill -9 (fewer fields) is left out."""
    with open(path, newline="", encoding="utf-8") as f:
        assert f.readline().strip() == ",".join(FRAME_COLUMNS)
    return [r for r in read_csv(path) if r.get("queue_depth") not in (None, "")]


def camera_modules(**settings):
    base = {"type": "camera", "backend": "test_pattern", "width": 1456, "height": 1088, "fps": 30}
    base.update(settings)
    return base


class DemoCameras(unittest.TestCase):
    """The shipped demo: two test-pattern cameras at 1456x1088, 30 fps, for 10 s."""

    def setUp(self):
        self.rig = Rig()
        self.addCleanup(self.rig.cleanup)

    def test_two_cameras_ten_seconds_every_frame_in_video_and_csv(self):
        rig = self.rig
        r = rig.cli("run", "--config", os.path.join(SOURCE, "config", "demo.yaml"), "--data-dir", rig.data,
                    "--record", "--duration", "10", timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        session = rig.session_dir()
        trial_start = next(int(e["mono_ns"]) for e in rig.events() if e["event"] == "trial_start")
        trial_stop = next(int(e["mono_ns"]) for e in rig.events() if e["event"] == "trial_stop")
        for cam in ("cam0", "cam1"):
            with self.subTest(camera=cam):
                folder = os.path.join(session, "camera", cam)
                video = os.path.join(folder, "trial_001.mp4")
                rows = frame_rows(os.path.join(folder, "trial_001_frames.csv"))
                self.assertTrue(298 <= len(rows) <= 302, len(rows))
                self.assertEqual(ffprobe_counted_frames(video), len(rows))
                self.assertEqual(sum(int(x["dropped_before"]) for x in rows), 0)
                self.assertEqual([int(x["frame_index"]) for x in rows], list(range(len(rows))))

                packets = ffprobe_packets(video)
                pts = [p for p, _ in packets]
                self.assertEqual(pts, [int(x["pts_us"]) for x in rows])
                self.assertTrue(all(b > a for a, b in zip(pts, pts[1:])), "pts must increase strictly")
                mean_ms = (pts[-1] - pts[0]) / (len(pts) - 1) / 1000
                self.assertAlmostEqual(mean_ms, 33.333, delta=0.3)
                keys = [p for p, key in packets if key]
                self.assertEqual(keys[0], pts[0])
                self.assertTrue(all(b - a <= 1_000_000 for a, b in zip(keys, keys[1:])), "a keyframe every second")

                # The trial window: first frame at or after the start, none at or after the stop,
                # and pts is the frame's own time since the start.
                sensor = [int(x["sensor_ns"]) for x in rows]
                self.assertGreaterEqual(sensor[0], trial_start)
                self.assertLess(sensor[0], trial_start + 34_000_000)
                self.assertLess(sensor[-1], trial_stop)
                self.assertGreaterEqual(sensor[-1], trial_stop - 34_000_000)
                self.assertEqual(pts, [(s - trial_start) // 1000 for s in sensor])
                # The test pattern's frame instant is already on CLOCK_MONOTONIC: mono_ns is that
                # instant (as for libcamera's mapped sensor time), not when the thread got round to it.
                self.assertEqual([int(x["mono_ns"]) for x in rows], sensor)
                self.assertTrue(all(int(x["queue_depth"]) >= 1 for x in rows))
                for x in rows[:3]:
                    self.assertRegex(x["wall_time_utc"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
                self.assertEqual(rows[0]["exposure_us"], "")
        self.assertIn("cam0 (camera): exited", r.stdout)


class CrashSafety(unittest.TestCase):
    def setUp(self):
        self.rig = Rig(modules={"cam0": camera_modules()},
                       supervisor={"restart_backoff_initial_ms": 200, "heartbeat_timeout_ms": 3000})
        self.addCleanup(self.rig.cleanup)
        self.folder = None

    def start_trial(self, seconds):
        rig = self.rig
        rig.start("--record")
        rig.wait_module("cam0", "recording", timeout=20)
        wait_for(lambda: (rig.status().get("trial") or {}).get("elapsed_s", 0) >= seconds, seconds + 20,
                 what=f"{seconds} s into the trial")
        self.folder = os.path.join(rig.session_dir(), "camera", "cam0")
        return rig.module("cam0")

    def wait_for_part_two(self, old_pid):
        rig = self.rig
        rig.wait_module("cam0", "recording", timeout=30, other_than_pid=old_pid)
        part2 = os.path.join(self.folder, "trial_001_p2.mp4")
        wait_for(lambda: len(frame_rows(os.path.join(self.folder, "trial_001_p2_frames.csv"))) >= 45
                 if os.path.exists(part2) else False, 20, what="frames in the part file")
        return part2

    def check_complete(self, video, csv_path):
        rows = frame_rows(csv_path)
        packets = ffprobe_packets(video)
        self.assertEqual(len(packets), len(rows))
        self.assertEqual([p for p, _ in packets], [int(x["pts_us"]) for x in rows])
        # Duration: from 0 (the part's start instant) to the end of the last frame.
        expected = (int(rows[-1]["pts_us"]) + PERIOD_US) / 1e6
        self.assertAlmostEqual(ffprobe_duration(video), expected, delta=0.002)
        with open(video, "rb") as f:
            f.seek(-16, os.SEEK_END)
            self.assertEqual(f.read(8)[4:], b"mfro", "the trailer (mfra) is written")
        return rows

    def test_kill_9_keeps_what_was_written_and_continues_in_a_part_file(self):
        rig = self.rig
        module = self.start_trial(6.0)
        status = module["stats"]
        for key in ("captured", "encoded", "dropped", "queue_depth", "fps", "bytes_written"):
            self.assertIn(key, status)
        self.assertAlmostEqual(status["fps"], 30, delta=2)
        os.kill(module["pid"], signal.SIGKILL)

        video = os.path.join(self.folder, "trial_001.mp4")
        packets = ffprobe_packets(video)
        self.assertGreaterEqual(len(packets), 150, "at least 5 s of frames survive kill -9")
        rows = frame_rows(os.path.join(self.folder, "trial_001_frames.csv"))
        self.assertGreaterEqual(len(rows), len(packets))
        self.assertEqual([p for p, _ in packets], [int(x["pts_us"]) for x in rows[:len(packets)]])
        self.assertEqual(ffprobe_counted_frames(video), len(packets))

        part2 = self.wait_for_part_two(module["pid"])
        code, _, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        rows2 = self.check_complete(part2, os.path.join(self.folder, "trial_001_p2_frames.csv"))
        self.assertGreaterEqual(len(rows2), 45)
        self.assertEqual(int(rows2[0]["dropped_before"]), 0)
        self.assertGreater(int(rows2[0]["sensor_ns"]), int(rows[-1]["sensor_ns"]))
        parts = [e for e in rig.events() if e["event"] == "module_part"]
        self.assertEqual(len(parts), 1)
        self.assertIn("part 2", parts[0]["detail"])

    def test_row_k_is_frame_k_in_every_part_after_kills_and_a_cut_fragment(self):
        """kill -9 at several points of a trial (and once a fragment cut in half, as a power cut
        leaves it): in every part, the frames CSV has one row per frame the MP4 holds whole."""
        rig = self.rig
        # A second between the kill and the restart: time to cut the dead process's file as a
        # power cut would before the next process looks at it.
        with open(rig.config) as f:
            text = f.read()
        with open(rig.config, "w") as f:
            f.write(text.replace("restart_backoff_initial_ms: 200", "restart_backoff_initial_ms: 1000"))
        module = self.start_trial(2.3)
        # Killed 2.3 s into part 1, then at 1.0 s, 1.6 s and 0.5 s into the parts after it: before,
        # at and after the second keyframe, so the muxer holds a fragment of different lengths.
        into_next = [1.0, 1.6, 0.5]
        cut_part = 2
        report = []
        # Rows of a fragment are synced just before the fragment: a kill between the two leaves
        # that one fragment's rows (at most a second of frames) ahead of the video, for the next
        # process to move out. Per part, how many.
        ahead = {}
        for part in range(1, len(into_next) + 2):
            stem = "trial_001" if part == 1 else f"trial_001_p{part}"
            video = os.path.join(self.folder, stem + ".mp4")
            if part > 1:
                seconds = into_next[part - 2]
                encoded = module["stats"]["encoded"]
                wait_for(lambda: rig.module("cam0")["stats"].get("encoded", 0) - encoded >= seconds * 30, 20,
                         interval=0.01, what=f"{seconds} s into part {part}")
                module = rig.module("cam0")
            os.kill(module["pid"], signal.SIGKILL)
            wait_for(lambda: not pid_alive(module["pid"]), 10, what="the killed camera gone")
            whole, torn = mp4_whole_frames(video)
            rows = len(read_csv(os.path.join(self.folder, stem + "_frames.csv")))
            report.append(f"part {part}: killed (last heartbeat: {module['stats']['encoded']} frames encoded); "
                          f"{whole} frames in the MP4, {rows} rows")
            self.assertGreaterEqual(rows, whole, report[-1])  # a frame never reaches the MP4 before its row
            self.assertLessEqual(rows - whole, 31, report[-1])  # ahead by one fragment at most
            ahead[stem] = rows - whole
            if part == cut_part:
                # Cut the last fragment a few bytes into one of its frames, as a power cut can.
                samples = mp4_samples(video)
                offset, size = samples[len(samples) - 7]
                with open(video, "r+b") as f:
                    f.truncate(offset + min(16, size - 1))
                report.append(f"part {part}: cut to {mp4_whole_frames(video)[0]} whole frames")
            next_pid = module["pid"]
            module = rig.wait_module("cam0", "recording", timeout=30, other_than_pid=next_pid)
            wait_for(lambda: rig.module("cam0")["stats"].get("encoded", 0) > 0, 20, what="frames in the next part")
            module = rig.module("cam0")
        code, _, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        # The last part as a power cut would leave it (its last fragment cut), with no camera to
        # continue the trial: pilogger-camera --reconcile does what a restarted camera does.
        last = os.path.join(self.folder, f"trial_001_p{len(into_next) + 2}.mp4")
        samples = mp4_samples(last)
        offset, size = samples[len(samples) - 7]
        with open(last, "r+b") as f:
            f.truncate(offset + min(16, size - 1))
        r = subprocess.run([CAMERA, "--reconcile", self.folder], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("rows beyond it moved to trial_001_p5_frames_unwritten.csv", r.stdout)
        report.append("pilogger-camera --reconcile:\n" + r.stdout.strip())
        print("\n" + "\n".join(report))

        parts = sorted(p for p in glob.glob(os.path.join(self.folder, "trial_001*_frames.csv")))
        moved_by_modules = 0
        self.assertEqual(len(parts), len(into_next) + 2, parts)
        for csv_path in parts:
            with self.subTest(csv=os.path.basename(csv_path)):
                video = csv_path[:-len("_frames.csv")] + ".mp4"
                rows = frame_rows(csv_path)
                self.assertEqual(len(rows), len(read_csv(csv_path)), "no torn row")
                whole, torn = mp4_whole_frames(video)
                packets = ffprobe_packets(video)
                self.assertEqual(len(rows), whole)
                # ffprobe lists a frame cut short too (its bytes as far as they go); it decodes the rest.
                self.assertEqual(len(packets), whole + (1 if torn else 0))
                self.assertEqual(ffprobe_counted_frames(video), len(rows))
                self.assertEqual([p for p, _ in packets[:whole]], [int(x["pts_us"]) for x in rows])
                self.assertEqual([int(x["frame_index"]) for x in rows], list(range(len(rows))))
                sidecar = csv_path[:-len(".csv")] + "_unwritten.csv"
                stem = os.path.basename(csv_path)[:-len("_frames.csv")]
                # The cut takes 6 whole frames and the torn one; a kill may have left rows ahead.
                expected_moved = (6 + 1 if torn else 0) + ahead.get(stem, 0)
                if expected_moved:
                    # The rows of the frames the video lacks are kept beside it, continuing the index.
                    moved = read_csv(sidecar)
                    self.assertEqual(int(moved[0]["frame_index"]), len(rows))
                    self.assertEqual(len(moved), expected_moved)
                    if stem in ahead:
                        moved_by_modules += 1  # the restarted module did it (the last part: --reconcile)
                    self.assertEqual([int(x["frame_index"]) for x in moved],
                                     list(range(len(rows), len(rows) + len(moved))))
                    print(f"{os.path.basename(csv_path)}: {len(rows)} rows = {whole} frames; "
                          f"{len(moved)} rows moved to {os.path.basename(sidecar)}")
                else:
                    self.assertFalse(os.path.exists(sidecar), sidecar)
                    print(f"{os.path.basename(csv_path)}: {len(rows)} rows = {whole} frames")
        moved_events = [e for e in rig.events() if e["event"] == "module_warning" and "_unwritten.csv" in e["detail"]]
        self.assertEqual(len(moved_events), moved_by_modules, moved_events)
        self.assertGreaterEqual(moved_by_modules, 1)  # at least the cut part

    def test_sigterm_mid_trial_leaves_a_complete_file(self):
        rig = self.rig
        module = self.start_trial(3.0)
        os.kill(module["pid"], signal.SIGTERM)
        part2 = self.wait_for_part_two(module["pid"])
        rows = self.check_complete(os.path.join(self.folder, "trial_001.mp4"),
                                   os.path.join(self.folder, "trial_001_frames.csv"))
        self.assertGreaterEqual(len(rows), 85)
        self.assertEqual(sum(int(x["dropped_before"]) for x in rows), 0)
        code, _, err = rig.shutdown()
        self.assertEqual(code, 0, err)
        self.check_complete(part2, os.path.join(self.folder, "trial_001_p2_frames.csv"))


class Snapshots(unittest.TestCase):
    def test_pilogger_snapshot_saves_a_full_size_still_from_every_camera(self):
        rig = Rig(modules={"cam0": camera_modules(width=640, height=480), "cam1": camera_modules(width=320, height=240)})
        self.addCleanup(rig.cleanup)
        rig.start()
        rig.wait_module("cam0", "ready", timeout=20)
        rig.wait_module("cam1", "ready", timeout=20)
        r = rig.cli("snapshot", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        saved = json.loads(r.stdout)
        self.assertEqual(sorted(saved), ["cam0", "cam1"])
        for cam, size in (("cam0", "640,480"), ("cam1", "320,240")):
            path = saved[cam]["path"]
            self.assertEqual(os.path.dirname(path), os.path.join(rig.session_dir(), "camera", cam))
            probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
                                    "-of", "csv=p=0", path], capture_output=True, text=True, timeout=30)
            self.assertEqual(probe.stdout.strip(), "png," + size)
        r = rig.cli("snapshot", "cam1", "nocam", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stdout, r"^cam1: /.*snapshot_.*\.png\n$")
        self.assertIn("nocam: no module named 'nocam'", r.stderr)
        code, _, err = rig.shutdown()
        self.assertEqual(code, 0, err)


class Standalone(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="pilogger-cam-")
        self.addCleanup(self.tmp.cleanup)
        self.config = os.path.join(self.tmp.name, "cameras.yaml")
        self.output = os.path.join(self.tmp.name, "out")
        name = f"snap{os.getpid()}"[-20:]
        self.name = name
        with open(self.config, "w") as f:
            f.write(f"data_dir: {self.tmp.name}\nmodules:\n"
                    f"  {name}:\n    type: camera\n    backend: test_pattern\n    width: 640\n    height: 480\n"
                    f"    fps: 30\n    preview_width: 160\n    preview_height: 120\n    preview_fps: 10\n"
                    f"  nocam:\n    type: camera\n    backend: libcamera\n    camera: {{camera}}\n")

    def write_config(self, camera):
        with open(self.config) as f:
            text = f.read()
        with open(self.config, "w") as f:
            f.write(text.replace("{camera}", camera))

    def test_snapshot_preview_and_clean_exit_on_stdin_eof(self):
        self.write_config("0")
        proc = subprocess.Popen([CAMERA, "--config", self.config, "--camera", self.name, "--output", self.output],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        folder = os.path.join(self.output, "camera", self.name)
        video = os.path.join(folder, "trial_001.mp4")
        wait_for(lambda: os.path.exists(video), 15, what="the video file")

        # The preview: a seqlocked header and 160x120 RGB in /dev/shm, refreshed at 10 fps.
        shm = f"/dev/shm/pilogger-{os.getuid()}-{self.name}-preview"
        wait_for(lambda: os.path.exists(shm), 10, what="the preview shared memory")
        first = wait_for(lambda: read_preview(shm), 10, what="a preview frame")
        self.assertEqual(first["magic"], b"PILOGPV\0")
        self.assertEqual((first["version"], first["width"], first["height"]), (1, 160, 120))
        self.assertEqual((first["stride"], first["format"]), (480, 1))
        self.assertEqual(first["sequence"] % 2, 0)
        self.assertGreater(max(first["pixels"]), 100)
        time.sleep(1.0)
        later = read_preview(shm)
        self.assertGreaterEqual((later["sequence"] - first["sequence"]) // 2, 7)
        self.assertGreater(later["frame_mono_ns"], first["frame_mono_ns"])

        proc.stdin.write("snapshot\n")
        proc.stdin.flush()
        snaps = wait_for(lambda: glob.glob(os.path.join(folder, "snapshot_*_*.png")), 10, what="the snapshot")
        self.assertRegex(os.path.basename(snaps[0]), r"^snapshot_\d{8}T\d{6}Z_\d+\.png$")
        with open(snaps[0], "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

        proc.stdin.close()  # EOF: finish, close the files, exit 0
        proc.stdin = None
        out, err = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 0, err)
        self.assertFalse(os.path.exists(shm), "the preview is removed on exit")
        rows = frame_rows(os.path.join(folder, "trial_001_frames.csv"))
        self.assertEqual([p for p, _ in ffprobe_packets(video)], [int(x["pts_us"]) for x in rows])
        self.assertGreaterEqual(len(rows), 30)
        hello = json.loads(out.splitlines()[0])
        self.assertEqual(hello["event"], "hello")
        self.assertIn("snapshot", hello["capabilities"])

    def test_libcamera_without_a_camera_says_so_and_exits_non_zero(self):
        listing = subprocess.run([PILOGGER, "devices", "--json"], capture_output=True, text=True, timeout=60)
        self.assertEqual(listing.returncode, 0, listing.stderr)
        cameras = json.loads(listing.stdout)["cameras"]
        wanted = "0" if not cameras else "no-such-camera"
        self.write_config(wanted)
        r = subprocess.run([CAMERA, "--config", self.config, "--camera", "nocam", "--output", self.output,
                            "--duration", "2"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)  # an exit status, not a signal
        self.assertIn(f"camera '{wanted}' not found", r.stderr)
        self.assertRegex(r.stderr, r"libcamera v?\S+ (found no cameras|sees)")
        self.assertFalse(glob.glob(os.path.join(self.output, "camera", "nocam", "*.mp4")))
        if not cameras:
            human = subprocess.run([PILOGGER, "devices"], capture_output=True, text=True, timeout=60)
            self.assertEqual(human.returncode, 0)
            self.assertIn("No cameras", human.stdout)


HEADER = struct.Struct("<8sIIIIIIQqQII")


def read_preview(path):
    """Reads the preview like the GUI will: retry while the sequence is odd or moved."""
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    try:
        for _ in range(100):
            before = struct.unpack_from("<Q", m, 32)[0]
            if before % 2:
                continue
            fields = HEADER.unpack_from(m, 0)
            pixels = m[64:64 + fields[11]]
            if struct.unpack_from("<Q", m, 32)[0] == before:
                keys = ["magic", "version", "header_bytes", "width", "height", "stride", "format", "sequence",
                        "frame_mono_ns", "frame_index", "writer_pid", "frame_bytes"]
                out = dict(zip(keys, fields))
                out["pixels"] = pixels
                return out if out["frame_mono_ns"] else None
        return None
    finally:
        m.close()


if __name__ == "__main__":
    unittest.main()

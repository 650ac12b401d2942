"""A disk that fills during a trial: the supervisor stops the trial above the reserve, every file
is closed valid (each CSV parses, each MP4 opens with as many frames as its CSV has rows, no
temporary files), and no new trial starts. Runs on a small tmpfs of its own (mounted as root, or
in a user namespace with `unshare`), so the real disk is never filled."""
import glob
import json
import os
import shutil
import subprocess
import unittest

from harness import PILOGGER, Rig, read_csv, wait_for

TMPFS_MB = 48
RESERVE_MB = 8
# Free space left above the reserve when the trial starts: a few seconds of recording.
HEADROOM_MB = 14


def can_mount_tmpfs():
    return os.geteuid() == 0 and shutil.which("mount") is not None


def ffprobe_frames(path):
    r = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                        "stream=nb_read_frames", "-of", "csv=p=0", path], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout.strip().split(",")[0], r.stderr


@unittest.skipUnless(can_mount_tmpfs(), "needs root to mount a small tmpfs")
class DiskFills(unittest.TestCase):
    def setUp(self):
        self.rig = Rig()
        self.addCleanup(self.rig.cleanup)
        self.mount = os.path.join(self.rig.tmp, "small")
        os.mkdir(self.mount)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs", self.mount], check=True)
        self.addCleanup(lambda: subprocess.run(["umount", "-l", self.mount]))
        self.data = self.rig.data = os.path.join(self.mount, "data")
        with open(self.rig.config, "w") as f:
            f.write(f"""data_dir: {self.data}
log_level: debug
disk_reserve_mb: {RESERVE_MB}
pico:
  device: emulator
modules:
  notes: {{}}
  cam0:
    type: camera
    backend: test_pattern
    width: 640
    height: 480
    fps: 30
  eyetracker:
    type: eyetracker
    address: simulator
    preview: false
""")

    def free_mb(self):
        st = os.statvfs(self.mount)
        return st.f_bavail * st.f_frsize / (1024 * 1024)

    def test_the_trial_stops_above_the_reserve_and_every_file_is_valid(self):
        r = self.rig.cli("config", "check", self.rig.config)
        # Leave a few seconds of recording above the reserve.
        filler = os.path.join(self.mount, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * int((self.free_mb() - RESERVE_MB - HEADROOM_MB) * 1024 * 1024))
        self.rig.start()
        self.rig.wait_all("ready", timeout=30)
        self.rig.cli("trial", "start")
        self.rig.wait_all("recording", timeout=30)
        lowest = [self.free_mb()]

        def stopped():
            lowest[0] = min(lowest[0], self.free_mb())
            s = self.rig.status()
            return s["trial"] is None and s
        wait_for(stopped, 120, interval=0.05, what="the trial to stop for lack of space")
        events = self.rig.events()
        low = [e for e in events if e["event"] == "disk_low"]
        self.assertEqual(len(low), 1, events)
        print(f"\n  stopped: {low[0]['detail']}")
        # Files close, then nothing more is written: free space settles above the reserve.
        self.rig.wait_all("ready", timeout=30)
        refused = self.rig.cli("trial", "start", check=False)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("MiB free", refused.stderr + refused.stdout)
        self.rig.shutdown()
        lowest[0] = min(lowest[0], self.free_mb())
        print(f"  lowest free space seen: {lowest[0]:.1f} MiB (reserve {RESERVE_MB} MiB)")
        self.assertGreater(lowest[0], RESERVE_MB)

        session = self.rig.session_dir()
        self.assertEqual(glob.glob(os.path.join(session, "**", "*.tmp"), recursive=True), [])
        with open(os.path.join(session, "session.json")) as f:
            self.assertEqual(json.load(f)["status"], "closed")
        csvs = glob.glob(os.path.join(session, "**", "*.csv"), recursive=True)
        self.assertGreater(len(csvs), 8, csvs)
        for path in csvs:
            rows = read_csv(path)  # parses, every row has the header's fields
            with open(path, "rb") as f:
                data = f.read()
            self.assertTrue(data.endswith(b"\n"), f"{path} ends in a torn row")
        videos = glob.glob(os.path.join(session, "**", "*.mp4"), recursive=True)
        self.assertEqual(len(videos), 2, videos)
        for video in videos:
            rc, frames, err = ffprobe_frames(video)
            self.assertEqual(rc, 0, f"{video}: {err}")
            frames_csv = video[:-4] + "_frames.csv"
            rows = read_csv(frames_csv)
            print(f"  {os.path.relpath(video, session)}: {frames} frames, {len(rows)} rows")
            self.assertGreater(int(frames), 30)
            self.assertEqual(int(frames), len(rows), video)


class ReserveChecks(unittest.TestCase):
    def test_a_reserve_below_one_check_interval_of_writing_is_a_config_error(self):
        rig = Rig(config_text="data_dir: /tmp/x\ndisk_reserve_mb: 0\nmodules:\n  notes: {}\n")
        self.addCleanup(rig.cleanup)
        r = rig.cli("config", "check", rig.config, check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn(":2:18: disk_reserve_mb: 0 MiB is less than", r.stderr)
        cams = "".join(f"  cam{i}:\n    type: camera\n    backend: test_pattern\n" for i in range(4))
        rig2 = Rig(config_text=f"data_dir: /tmp/x\ndisk_reserve_mb: 20\nmodules:\n{cams}")
        self.addCleanup(rig2.cleanup)
        r = rig2.cli("config", "check", rig2.config, check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("set at least", r.stderr)


if __name__ == "__main__":
    unittest.main()

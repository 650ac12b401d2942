"""No process outlives the supervisor: after a kill -9 of `pilogger run`, every process it started
(modules, the Pico W emulator, neon-sim, ffmpeg, helpers) is gone within 2 s, for every config in
config/ and the kinds of config the tests use. Also a kill -9 of the eye tracker takes its own
children (neon-sim, ffmpeg) with it. Processes are found by a tag in their environment, which
every descendant inherits."""
import glob
import os
import signal
import subprocess
import time
import unittest
import uuid

from harness import PILOGGER, SOURCE, Rig, pid_alive, wait_for, yaml_config


def tagged(tag):
    """{pid: command name} of every live process whose environment carries the tag."""
    found = {}
    needle = f"PILOGGER_ORPHAN_TAG={tag}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if pid_alive(int(entry)):
            found[int(entry)] = " ".join(os.path.basename(a) for a in argv[:2])
    return found


class NoOrphans(unittest.TestCase):
    def run_and_kill(self, config_text=None, config_path=None, expect=(), record=True):
        rig = Rig(config_text=config_text or "data_dir: /tmp\nmodules: {notes: {}}\n")
        self.addCleanup(rig.cleanup)
        tag = uuid.uuid4().hex
        rig.env["PILOGGER_ORPHAN_TAG"] = tag
        self.addCleanup(lambda: [os.kill(p, signal.SIGKILL) for p in tagged(tag) if pid_alive(p)])
        args = ["--data-dir", rig.data] + (["--record"] if record else [])
        rig.config = config_path or rig.config
        rig.start(*args)

        def children_up():
            names = " ".join(tagged(tag).values())
            return all(e in names for e in expect) and names
        wait_for(children_up, 60, interval=0.1, what=f"{expect} to be running")
        before = tagged(tag)
        rig.proc.kill()
        rig.proc.wait()
        killed_at = time.monotonic()
        try:
            wait_for(lambda: not tagged(tag), 2.0, interval=0.02, what="every child to be gone")
        except AssertionError:
            self.fail(f"left behind 2 s after kill -9 of the supervisor: {tagged(tag)} (were: {before})")
        return before, time.monotonic() - killed_at

    def test_every_shipped_config(self):
        for path in sorted(glob.glob(os.path.join(SOURCE, "config", "*.yaml"))):
            with self.subTest(config=os.path.basename(path)):
                expect = ("pilogger-notes",)
                if path.endswith("demo.yaml"):
                    expect = ("pilogger-camera", "pilogger-eyetracker", "neon-sim", "pilogger-pico-emulator", "ffmpeg")
                before, took = self.run_and_kill(config_path=path, expect=expect)
                print(f"\n  {os.path.basename(path)}: {len(before)} processes gone {took * 1000:.0f} ms after kill -9: {sorted(before.values())}")

    def test_test_configs(self):
        cases = {
            "camera+test modules": ({"cam": {"type": "camera", "backend": "test_pattern", "width": 320, "height": 240},
                                     "t1": {"type": "test"}, "notes": {}}, ("pilogger-camera", "pilogger-test")),
            "eye tracker with overlay": ({"et": {"type": "eyetracker", "address": "simulator", "overlay": "true",
                                                 "preview": "false"}}, ("neon-sim", "ffmpeg")),
        }
        for name, (modules, expect) in cases.items():
            with self.subTest(config=name):
                rig_data = "/tmp"
                text = yaml_config(rig_data, modules)
                before, took = self.run_and_kill(config_text=text, expect=expect)
                print(f"\n  {name}: {len(before)} processes gone {took * 1000:.0f} ms after kill -9")
        text = yaml_config("/tmp", {"notes": {}}) + "pico:\n  device: emulator\n"
        before, took = self.run_and_kill(config_text=text, expect=("pilogger-pico-emulator",))
        print(f"\n  pico emulator: {len(before)} processes gone {took * 1000:.0f} ms after kill -9")

    def test_kill_9_of_the_eye_tracker_takes_its_children(self):
        rig = Rig(modules={"et": {"type": "eyetracker", "address": "simulator", "overlay": "true", "preview": "false"}},
                  supervisor={"restart_backoff_initial_ms": 60000})
        self.addCleanup(rig.cleanup)
        tag = uuid.uuid4().hex
        rig.env["PILOGGER_ORPHAN_TAG"] = tag
        self.addCleanup(lambda: [os.kill(p, signal.SIGKILL) for p in tagged(tag) if pid_alive(p)])
        rig.start("--record")
        wait_for(lambda: "ffmpeg" in " ".join(tagged(tag).values()) and "neon-sim" in " ".join(tagged(tag).values()),
                 60, interval=0.1, what="neon-sim and ffmpeg")
        module_pid = rig.module("et")["pid"]
        children = {p: n for p, n in tagged(tag).items() if p != module_pid and p != rig.proc.pid}
        os.kill(module_pid, signal.SIGKILL)
        try:
            wait_for(lambda: not any(pid_alive(p) for p in children), 2.0, interval=0.02, what="its children gone")
        except AssertionError:
            self.fail(f"left behind by the eye tracker: {[(p, n) for p, n in children.items() if pid_alive(p)]}")
        rig.shutdown()


if __name__ == "__main__":
    unittest.main()

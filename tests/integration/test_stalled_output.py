"""Nothing blocks a loop thread: a supervisor whose terminal is stopped (Ctrl-S: a pty nobody
reads, output suspended) and modules whose stderr pipe stays full record 30 s with every
heartbeat on time and 0 dropped frames. Before, the status line and each module's log were
plain blocking writes on the loop thread."""
import ctypes
import os
import pty
import signal
import subprocess
import threading
import time
import unittest

from harness import PILOGGER, Rig, dies_with_test, read_csv, wait_for

RECORD_S = 30


LIBC = ctypes.CDLL(None, use_errno=True)
SYS_PIDFD_OPEN, SYS_PIDFD_GETFD = 434, 438


def steal_fd(pid, fd):
    """A duplicate of another process's descriptor (pidfd_getfd; the supervisor's pipes to its
    modules are socket pairs, which /proc/PID/fd cannot open)."""
    pidfd = LIBC.syscall(SYS_PIDFD_OPEN, pid, 0)
    if pidfd < 0:
        raise OSError(ctypes.get_errno(), "pidfd_open")
    try:
        dup = LIBC.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if dup < 0:
            raise OSError(ctypes.get_errno(), "pidfd_getfd")
        return dup
    finally:
        os.close(pidfd)


class PipeFlooder(threading.Thread):
    """Keeps a process's stderr pipe full by writing into it from outside, so whatever the
    process itself logs finds the pipe full, as with a reader that stopped."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.fd = steal_fd(pid, 2)
        self.stop = threading.Event()
        self.written = 0

    def run(self):
        block = b"pilogger test: filling the pipe " + b"x" * 4000 + b"\n"
        while not self.stop.is_set():
            try:
                self.written += os.write(self.fd, block)
            except OSError:
                return

    def end(self):
        self.stop.set()
        os.close(self.fd)


class StalledOutput(unittest.TestCase):
    def test_stopped_terminal_and_full_stderr_pipes_block_nothing(self):
        rig = Rig(modules={"notes": {}, "cam": {"type": "camera", "backend": "test_pattern", "width": 640,
                                                  "height": 480, "fps": 30},
                           "probe": {"type": "test"}})
        self.addCleanup(rig.cleanup)
        master, slave = pty.openpty()
        self.addCleanup(os.close, master)
        # Ctrl-S typed on the terminal: it takes no more output, and a write to it blocks once
        # its buffer is full (nobody reads the master side either).
        os.write(master, b"\x13")
        rig.proc = subprocess.Popen(dies_with_test([PILOGGER, "run", "--config", rig.config]), env=rig.env,
                                    stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        wait_for(lambda: rig.try_status() is not None, 10, what="the control socket")
        rig.wait_all("ready", timeout=30)
        flooders = []
        for name in ("cam", "notes", "probe"):
            flooders.append(PipeFlooder(rig.module(name)["pid"]))
        for f in flooders:
            f.start()
        self.addCleanup(lambda: [f.end() for f in flooders if not f.stop.is_set()])

        rig.cli("trial", "start", "--label", "stalled output")
        started = time.monotonic()
        worst_status_s = 0.0
        notes = 0
        while time.monotonic() - started < RECORD_S:
            t = time.monotonic()
            status = rig.status()
            worst_status_s = max(worst_status_s, time.monotonic() - t)
            self.assertTrue(all(m["state"] == "recording" for m in status["modules"]), status["modules"])
            rig.cli("note", f"note {notes} while the terminal is stopped")
            notes += 1
            time.sleep(1)
        rig.cli("trial", "stop")
        status = rig.status()
        for f in flooders:
            f.end()
        dropped_output = status["supervisor"]["output_dropped_bytes"]
        # Let the terminal go again so the supervisor can print its summary and exit.
        held = []
        drainer = threading.Thread(target=self.drain, args=(master, held), daemon=True)
        drainer.start()
        os.write(master, b"\x11")  # Ctrl-Q
        rig.cli("shutdown")
        rig.proc.wait(timeout=30)
        drainer.join(timeout=5)
        # What the terminal held while it was stopped: the status line, redrawn twice a second
        # all along, by a writer that waited so the loop did not have to.
        redraws = b"".join(held).count(b"\r\x1b[K")

        events = rig.events()
        bad = [e for e in events if e["event"] in ("module_hung", "ack_timeout", "module_crash", "supervisor_stall")]
        self.assertEqual(bad, [])
        rows = read_csv(os.path.join(rig.session_dir(), "camera", "cam", "trial_001_frames.csv"))
        self.assertGreaterEqual(len(rows), RECORD_S * 30 - 15)
        self.assertEqual(sum(int(r["dropped_before"]) for r in rows), 0)
        self.assertEqual(len(rig.notes()), notes)
        print(f"\n  {RECORD_S} s: {len(rows)} camera frames, 0 dropped; {notes} notes; slowest status {worst_status_s * 1000:.0f} ms;"
              f" the stopped terminal held {redraws} status-line redraws ({dropped_output} bytes dropped);"
              f" stderr pipes kept full with {sum(f.written for f in flooders) >> 20} MiB")
        self.assertGreater(redraws, RECORD_S, "the status line was not written while the terminal was stopped")

    @staticmethod
    def drain(fd, into):
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return
                into.append(chunk)
        except OSError:
            pass


if __name__ == "__main__":
    unittest.main()

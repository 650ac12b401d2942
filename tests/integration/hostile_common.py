"""What the hostile-peer tests share (test_hostile_module, test_hostile_control, test_hostile_pico):
a recording with a real camera and the notes module to keep an eye on while a peer misbehaves,
and the invariants every one of them checks afterwards.

Limits the checks rely on (docs/protocol.md, "Limits"):
  - a module's protocol errors reach events.csv at 5 a second (burst 20), with one module_flood
    summary a second at most; its warning/error/log/state/device events at 20 a second (burst 100);
  - control-client problems reach events.csv at 2 a second (burst 10);
  - the Pico's bad lines, ERR and LOG lines and new segments reach the log and events.csv at
    5 a second (burst 20), with one pico_flood summary a second at most;
  - a module's stderr is read at 128 KiB per 100 ms and its log holds 64 MiB per session.
"""
import json
import os
import threading
import time

from harness import ControlClient, control_path, read_csv, rss_kb, wait_for
from test_camera import ffprobe_counted_frames, frame_rows

CAMERA = {"type": "camera", "backend": "test_pattern", "width": 320, "height": 240, "fps": 30,
          "preview_fps": 0}
FPS = 30
RSS_BOUND_KB = 20 * 1024
# Under ASan (./scripts/test.sh --sanitize) freed memory sits in its quarantine (256 MB) and RSS
# says nothing about the supervisor's own bounds: the growth is printed, not checked.
SANITIZED = "ASAN_OPTIONS" in os.environ
# Supervisor-only event names: a module or a device must never get one to a subscriber.
SUPERVISOR_EVENTS = ("session", "trial", "note", "module_state", "supervisor_event")
FORGED = "FORGED-BY-A-PEER"


class Watch:
    """Runs beside the recording: samples the supervisor's RSS, reads a subscription, sends a
    note now and then and times a status request each time."""

    def __init__(self, rig, note_every_s=1.0):
        self.rig = rig
        self.pid = rig.proc.pid
        self.baseline_kb = rss_kb(self.pid)
        self.rss = []
        self.events = []
        self.notes_sent = []
        self.note_answers = []
        self.status_ms = []
        self.note_every_s = note_every_s
        self.stop_flag = threading.Event()
        self.subscriber = ControlClient(control_path(rig))
        r = self.subscriber.request("subscribe")
        assert r["ok"], r
        self.threads = [threading.Thread(target=fn, daemon=True)
                        for fn in (self.sample_rss, self.read_events, self.send_notes)]
        for t in self.threads:
            t.start()

    def sample_rss(self):
        while not self.stop_flag.wait(0.25):
            try:
                self.rss.append(rss_kb(self.pid))
            except (OSError, AssertionError):
                return

    def read_events(self):
        while not self.stop_flag.is_set():
            try:
                line = self.subscriber.read_line(timeout=0.5)
            except OSError:
                return
            if line is not None:
                self.events.append(json.loads(line))
            elif self.subscriber.closed:
                return

    def send_notes(self):
        client = ControlClient(control_path(self.rig))
        n = 0
        while not self.stop_flag.wait(self.note_every_s):
            n += 1
            text = f"note {n} while a peer misbehaves, ünïcödé ✓"
            t0 = time.monotonic()
            try:
                s = client.request("status", timeout=20)
                self.status_ms.append((time.monotonic() - t0) * 1000)
                assert s["ok"], s
                r = client.request("note", {"text": text}, timeout=20)
            except (OSError, AssertionError) as e:
                self.note_answers.append(("failed", str(e)))
                continue
            self.note_answers.append(r)
            if r.get("ok"):
                self.notes_sent.append(text)
        client.close()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=25)
        self.subscriber.close()

    def peak_rss_growth_kb(self):
        return max(self.rss + [self.baseline_kb]) - self.baseline_kb


def end_recording(test, rig, control, watch):
    """Stops the trial, the watch and the supervisor, which must exit 0."""
    r = control.request("trial_stop", timeout=30)
    test.assertTrue(r["ok"], r)
    watch.stop()
    code, _, err = rig.shutdown(timeout=60)
    test.assertEqual(code, 0, err)


def check_rss_growth(test, watch):
    """The supervisor's peak RSS growth over the recording, in KiB: at most RSS_BOUND_KB."""
    growth = watch.peak_rss_growth_kb()
    if not SANITIZED:
        test.assertLessEqual(growth, RSS_BOUND_KB, f"RSS grew by {growth} KiB")
    return growth


def check_camera(test, session_dir, cam="cam0"):
    """Every frame of the trial is in the CSV and the MP4, none dropped: (rows, expected)."""
    events = read_csv(os.path.join(session_dir, "events.csv"))
    start = next(int(e["mono_ns"]) for e in events if e["event"] == "trial_start")
    stop = next(int(e["mono_ns"]) for e in events if e["event"] == "trial_stop")
    folder = os.path.join(session_dir, "camera", cam)
    rows = frame_rows(os.path.join(folder, "trial_001_frames.csv"))
    expected = (stop - start) / 1e9 * FPS
    test.assertLessEqual(abs(len(rows) - expected), 2, f"{len(rows)} frames in {(stop - start) / 1e9:.2f} s")
    test.assertEqual(sum(int(r["dropped_before"]) for r in rows), 0, "the camera dropped frames")
    test.assertEqual([int(r["frame_index"]) for r in rows], list(range(len(rows))))
    test.assertEqual(ffprobe_counted_frames(os.path.join(folder, "trial_001.mp4")), len(rows))
    return len(rows), expected


def check_subscription(test, watch, trials=(1,)):
    """The subscriber saw session/trial/... events only as the supervisor sends them."""
    forged = [e for e in watch.events if e.get("event") in SUPERVISOR_EVENTS and FORGED in json.dumps(e)]
    test.assertEqual(forged, [], "a peer's line reached a subscriber under a supervisor event name")
    for e in watch.events:
        if e.get("event") == "trial":
            test.assertIn(e.get("trial"), trials, e)
            test.assertNotIn("module", e, e)
        if e.get("event") == "session":
            test.assertNotIn("module", e, e)
    test.assertFalse(watch.subscriber.closed and not watch.stop_flag.is_set(), "the reading subscriber was dropped")


def check_notes(test, session_dir, watch):
    rows = read_csv(os.path.join(session_dir, "notes", "notes.csv"))
    texts = [r["text"] for r in rows]
    for text in watch.notes_sent:
        test.assertIn(text, texts)
    failed = [a for a in watch.note_answers if not (isinstance(a, dict) and a.get("ok"))]
    test.assertEqual(failed, [], "notes refused during the recording")
    test.assertGreater(len(watch.notes_sent), 3)
    return len(watch.notes_sent)


def check_recording_whole(test, session_dir, watch):
    """What every hostile test asserts after its recording: the camera lost no frame, every note
    is in notes.csv, the subscriber saw only real supervisor events, RSS stayed bounded.
    Returns (frames, expected frames, notes sent, RSS growth in KiB)."""
    frames, expected = check_camera(test, session_dir)
    notes = check_notes(test, session_dir, watch)
    check_subscription(test, watch)
    growth = check_rss_growth(test, watch)
    return frames, expected, notes, growth


def session_seconds(session_dir):
    events = read_csv(os.path.join(session_dir, "events.csv"))
    return (int(events[-1]["mono_ns"]) - int(events[0]["mono_ns"])) / 1e9


def print_table(title, rows, columns):
    """rows: list of tuples, one value per column."""
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) if rows else len(str(c))
              for i, c in enumerate(columns)]
    widths = [min(w, 90) for w in widths]
    out = [f"\n{title} ({len(rows)} cases)"]
    out.append("  ".join(str(c).ljust(w) for c, w in zip(columns, widths)))
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        out.append("  ".join(str(v)[:w].ljust(w) for v, w in zip(r, widths)))
    print("\n".join(out), flush=True)


def wait_events(rig, predicate, timeout, what):
    """Waits until events.csv has a row that predicate accepts; returns it."""
    def found():
        try:
            return next((e for e in rig.events() if predicate(e)), None)
        except FileNotFoundError:
            return None
    return wait_for(found, timeout, interval=0.05, what=what)

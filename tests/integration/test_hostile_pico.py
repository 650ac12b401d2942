"""A hostile Pico W during a recording: tests/integration/fake_pico.py plays the device on a
pseudo-terminal (pico: device: /dev/pts/N), answers the handshake and the clock-sync PINGs
correctly, and in between sends every kind of wrong line the serial link can carry: each field of
each PSYNC/1 line with a wrong type, huge or negative; repeated and out-of-order seq numbers;
replies to requests never made; invalid UTF-8 and NUL bytes; over-long lines up to 16 MiB with no
newline; garbage bursts and floods of 100,000 lines a second; silence mid-exchange; a crash to the
REPL mid-line; a HELLO storm of new boots.

Meanwhile a camera records and notes are taken: the supervisor must stay up and answer, the camera
must lose no frame, its RSS must stay within 20 MB of its start, every bad line must be counted
(status pico.lines_bad and friends) and reported at the documented rate (pico_bad_line rows in
events.csv, then pico_flood summaries), no garbage value may reach pico/led.csv or the clock fit,
and the link must work again as soon as the device speaks properly."""
import csv
import os
import random
import time
import unittest

import hostile_common as hc
from fake_pico import OFFSET_US, FakePico, pico_us
from harness import ControlClient, Rig, control_path, folder_bytes, read_csv, wait_for, yaml_config
from hostile_pico_cases import (BAD, FIT_TOLERANCE_US, HOUR_US, ORDER, UNKNOWN, UNMATCHED, Case, fit_tolerance_us,
                                garbage_lines, mask, pico_cases, raw)


class HostilePico(unittest.TestCase):
    def test_a_hostile_pico_during_a_recording(self):
        t_begin = time.monotonic()
        fake = FakePico(seed=7)
        self.addCleanup(fake.close)
        modules = {"cam0": hc.CAMERA, "notes": {}}
        rig = Rig(modules=modules)
        self.addCleanup(rig.cleanup)
        pico = (f"pico:\n  device: {fake.path}\n  led_pin: 15\n  ping_interval_ms: 500\n  ping_burst: 4\n"
                f"  ping_spacing_ms: 5\n")
        with open(rig.config, "w") as f:
            f.write(yaml_config(rig.data, modules, extra=pico))
        rig.start()
        self.rig, self.fake = rig, fake
        for name in modules:
            rig.wait_module(name, "ready", timeout=30)
        control = ControlClient(control_path(rig), timeout=30)
        self.addCleanup(control.close)
        self.control = control
        wait_for(lambda: (self.pico().get("fit") or {}).get("points", 0) >= 3, 20, what="a clock fit of 3 points")
        r = control.request("trial_start", {"label": "hostile pico"})
        self.assertTrue(r["ok"], r)
        for name in modules:
            rig.wait_module(name, "recording", timeout=10)
        watch = hc.Watch(rig)
        self.addCleanup(watch.stop)

        table, failures = [], []
        for case in pico_cases() + self.behaviour_cases():
            try:
                table.append(self.run_case(case))
            except (AssertionError, TimeoutError) as e:
                failures.append(f"{case.label}: {e}")
                print(f"FAILED {case.label}: {e}", flush=True)
                table.append((case.label, case.counter, "FAILED", str(e)[:200]))
                self.recover()
        self.assertGreaterEqual(len(table), 50)
        try:
            table += self.floods()
        finally:
            hc.print_table("hostile Pico lines", table, ("case", "counter", "+", "events.csv row"))
        self.assertEqual(failures, [])

        # Good lines again: the link works as if nothing had happened.
        self.assert_link_good()
        cam = rig.module("cam0")
        self.assertEqual((cam["state"], cam["restarts"]), ("recording", 0), cam)  # its drops: check_after
        final = self.pico()
        hc.end_recording(self, rig, control, watch)
        self.check_after(watch, final, sum(1 for row in table if not row[0].startswith("(")))  # not the summary row
        print(f"test duration {time.monotonic() - t_begin:.1f} s", flush=True)

    # ---- helpers ----
    def pico(self):
        r = self.control.request("status", timeout=20)
        self.assertTrue(r["ok"], r)
        return r["result"]["pico"]

    def sync(self, before, label):
        """Nothing to wait for: a good line (of a kind this host does not know) behind it shows it was read."""
        self.fake.numbered("FOO", "sync")
        wait_for(lambda: self.pico()[UNKNOWN] > before[UNKNOWN], 5, what=f"the line after {label}")

    def assert_alive(self, label):
        self.assertIsNone(self.rig.proc.poll(), f"the supervisor died at {label}")

    def assert_fit_true(self, p, label):
        fit = p.get("fit")
        if fit:
            self.assertLess(abs(fit["offset_us"] - OFFSET_US), fit_tolerance_us(fit["rtt_us"]),
                            f"{label}: the fit is off: {fit}")

    def assert_link_good(self, timeout=10):
        """Connected, healthy, a fit, and PINGs answered again."""
        pings = self.fake.pings
        p = wait_for(lambda: (lambda p: p if p["connected"] and p["healthy"] and p.get("fit") else None)(self.pico()),
                     timeout, what="the Pico link connected and healthy")
        exchanges = p["exchanges"]
        wait_for(lambda: self.fake.pings > pings and self.pico()["exchanges"] > exchanges, timeout,
                 what="clock exchanges again")
        self.assert_fit_true(self.pico(), "afterwards")

    def recover(self):
        """After a failed case: a clean reboot, so the next case starts from a good link."""
        self.fake.answering = True
        self.fake.hijack = None
        try:
            self.fake.reboot()
            self.assert_link_good(timeout=10)
        except (AssertionError, TimeoutError):
            pass

    last_report = 0.0

    def new_rows(self, rows_before, event, detail):
        rows = [e for e in self.rig.events()[rows_before:] if e["module"] == "pico" and e["event"] == event and
                (detail is None or detail in e["detail"])]
        return rows[0] if rows else None

    timeline = []  # (CLOCK_MONOTONIC ns, case label): which case ran when a frame was lost

    def run_case(self, case):
        self.timeline.append((time.monotonic_ns(), case.label))
        # Paced under the 5-a-second limit of the Pico's reports, so each case has a row to spare.
        wait = self.last_report + 0.21 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        before = self.pico()
        rows_before = len(self.rig.events())
        case.action(self.fake)
        delta = 0
        if case.counter and case.n:
            want = before.get(case.counter, 0) + case.n
            wait_for(lambda: self.pico().get(case.counter, 0) >= want, case.timeout,
                     what=f"{case.label} to be counted in {case.counter}")
        else:
            self.sync(before, case.label)
        after = self.pico()
        detail = ""
        if case.detail:
            row = wait_for(lambda: self.new_rows(rows_before, case.event, case.detail), case.timeout,
                           what=f"{case.label}'s {case.event} row with '{case.detail}'")
            detail = row["detail"]
        self.last_report = time.monotonic()
        self.assert_alive(case.label)
        if case.counter:
            delta = after.get(case.counter, 0) - before.get(case.counter, 0)
            if case.at_least:
                self.assertGreaterEqual(delta, case.n, case.label)
            else:
                self.assertEqual(delta, case.n, f"{case.label}: {case.counter} grew by {delta}")
        for other in (BAD, UNMATCHED, ORDER):
            if other == UNMATCHED and case.late_pongs:
                continue
            if other != case.counter and not case.loose:
                self.assertEqual(after.get(other, 0), before.get(other, 0), f"{case.label}: {other} grew")
        if case.segments == 0:
            self.assertEqual(after["segment"], before["segment"], f"{case.label}: a new clock segment")
            self.assertTrue(after["connected"], f"{case.label}: disconnected")
            self.assertGreaterEqual((after.get("fit") or {}).get("points", 0), 1, f"{case.label}: the fit was reset")
        self.assert_fit_true(after, case.label)
        return (case.label, case.counter or "-", delta, detail[:90])

    # ---- cases that need a conversation ----
    def behaviour_cases(self):
        cases = []
        # Each megabyte line is counted as soon as it passes the bound, long before its newline.
        for label, size in (("1 MiB with no newline", 1 << 20), ("16 MiB with no newline", 16 << 20)):
            cases.append(Case(label, lambda p, size=size: self.huge_line(p, size), detail="over 160 bytes",
                              timeout=15, late_pongs=True))
        rng = random.Random(11)
        for label, count in (("garbage burst, 400 random lines", 400), ("garbage burst, 3000 random lines", 3000)):
            data, n = garbage_lines(rng, count)
            cases.append(Case(label, raw(data), n=n, detail="printable ASCII"))
        binary = bytes(b for b in os.urandom(1 << 16) if b not in b"\n\r>")
        cases.append(Case("64 KiB of binary, one line", raw(binary + b"\n"), detail="over 160 bytes", late_pongs=True))
        cases.append(Case("HELLO again unasked, same boot, other fields", self.hello_again, counter=None))
        cases.append(Case("HB seq a million ahead", self.jump_ahead, counter=ORDER, at_least=True))
        cases.append(Case("a burst of PONGs an hour off, just after a reboot", self.liar_after_reboot, counter=None,
                          segments=1, loose=True, timeout=10))
        cases.append(Case("silent mid-burst for 4 s", self.silent_mid_burst, counter="pongs_missing", at_least=True,
                          event="pico_unhealthy", detail="no heartbeat", timeout=10, loose=True))
        cases.append(Case("crash to the REPL mid-line", self.crash_mid_line, n=5, at_least=True, event="pico_repl",
                          detail="soft reboot", segments=1, timeout=15, loose=True))
        cases.append(Case("2000 HELLOs, each a new boot", self.hello_storm, counter="segment", n=2000, at_least=True,
                          event="pico_flood", detail=None, segments=2001, timeout=20, loose=True))
        return cases

    def huge_line(self, p, size):
        with p.lock:
            before = self.pico()[BAD]
            p.write(b"X" * size, timeout=60)
            # Counted before the newline comes (and nothing of it buffered).
            wait_for(lambda: self.pico()[BAD] > before, 10, what="the over-long line counted before its newline")
            p.write(b"\n")

    def hello_again(self, p):
        """Its own boot id again, unasked, saying another firmware: nothing changes (one boot has one
        firmware; no new segment, the fit kept)."""
        before = self.pico()
        p.send("HELLO 0 {t} proto=1 fw=other board=other boot={boot} uid=2 extra=1", boot=p.boot)
        self.sync(before, "the HELLO")
        after = self.pico()
        self.assertEqual((after["firmware"], after["board"], after["uid"]),
                         (before["firmware"], before["board"], before["uid"]))

    def jump_ahead(self, p):
        """One line a million ahead: counted as lost lines at first; the Pico's own lines then go
        back, until HELLO? shows the same boot and three of them count up: the jump is undone."""
        lost = self.pico()["lines_lost"]
        p.send("HB {ahead} {t} up=1 led={mask} drop=0", ahead=p.seq + 1_000_000, mask=mask(p))
        wait_for(lambda: self.pico()["lines_lost"] >= lost + 999_999, 5, what="the jump counted as lines lost")
        wait_for(lambda: self.pico()["lines_lost"] < lost + 1000, 5, what="the jump undone")

    def liar_after_reboot(self, p):
        """A new boot whose fit has one exchange, then a burst of well-formed PONGs an hour off (a
        liar: its clock did not jump): they stay out of the fit, which stays true. (Fewer than three
        such bursts in a row: three would be taken as a clock that jumped.)"""
        segment = self.pico()["segment"]
        p.reboot()
        wait_for(lambda: (lambda s: s["segment"] > segment and (s.get("fit") or {}).get("points", 0) >= 1)(
            self.pico()), 5, what="the new boot's first exchange")
        left = [4]  # one burst (ping_burst: 4), or the ends of two

        def lie(fake, nonce, t_rx):
            with fake.lock:
                fake.write(f"PONG {fake.next_seq()} {nonce} {t_rx + HOUR_US} {pico_us() + HOUR_US}\n".encode())
            left[0] -= 1
            if left[0] > 0:
                fake.hijack = lie
        p.hijack = lie
        wait_for(lambda: left[0] == 0, 10, what="4 PINGs answered an hour off")
        exchanges = self.pico()["exchanges"]
        wait_for(lambda: self.pico()["exchanges"] >= exchanges + 4, 5, what="a true burst after them")

    def silent_mid_burst(self, p):
        rows_before = len(self.rig.events())
        went_silent = []

        def silence(fake, nonce, t_rx):
            fake.answering = False
            went_silent.append(time.monotonic())
        # The second PING of the next burst goes unanswered, and everything after it.
        p.hijack = lambda fake, nonce, t_rx: (fake.write(
            f"PONG {fake.next_seq()} {nonce} {t_rx} {pico_us()}\n".encode()), setattr(fake, "hijack", silence))
        wait_for(lambda: went_silent, 5, what="the fake to go silent")
        wait_for(lambda: self.new_rows(rows_before, "pico_unhealthy", None), 8, what="the link marked unhealthy")
        p.answering = True
        wait_for(lambda: self.new_rows(rows_before, "pico_healthy", None), 5, what="the heartbeats back")

    def crash_mid_line(self, p):
        rows_before = len(self.rig.events())
        p.crash(before=b"PONG 5 12")
        wait_for(lambda: self.new_rows(rows_before, "pico_segment", None), 10, what="the soft reboot's new segment")
        self.assert_link_good()

    def hello_storm(self, p):
        boots = "".join(f"HELLO 0 {pico_us()} proto=1 fw=storm board=x boot=5{i:07x} uid=1\n" for i in range(2000))
        p.write(boots.encode())
        wait_for(lambda: self.pico()["boot"] == "5%07x" % 1999, 20, what="the last HELLO of the storm")
        # Then the fake's own boot again, with its seq restarted: a clean new segment.
        p.reboot()
        self.assert_link_good()

    def floods(self):
        self.timeline.append((time.monotonic_ns(), "floods"))
        rows = []
        rows_before = len(self.rig.events())
        # 100,000 garbage lines a second for 2 s: every one counted, the reports rate-limited.
        before = self.pico()[BAD]
        sent, seconds = self.fake.flood(b"garbage, not PSYNC at all\n", 100_000, 2)
        wait_for(lambda: self.pico()[BAD] - before >= sent, 30, what="every flooded line counted")
        got = self.pico()[BAD] - before
        rows.append(("garbage flood 100k/s x 2 s", BAD, got, f"{sent} sent in {seconds:.1f} s"))
        self.assertEqual(got, sent)
        self.assert_alive("the garbage flood")
        # 100,000 repeated-seq heartbeats a second for 1 s: counted, never a restart.
        before = self.pico()
        segment = before["segment"]
        line = f"HB {max(1, self.fake.seq - 10)} {pico_us()} up=1 led={mask(self.fake)} drop=0\n".encode()
        sent, seconds = self.fake.flood(line, 100_000, 1)
        wait_for(lambda: self.pico().get(ORDER, 0) - before.get(ORDER, 0) >= sent - 100, 30, what="the repeated lines counted")
        after = self.pico()
        rows.append(("repeated-seq HB flood 100k/s x 1 s", ORDER, after.get(ORDER, 0) - before.get(ORDER, 0),
                     f"{sent} sent in {seconds:.1f} s"))
        self.assertEqual(after["segment"], segment)
        # 100,000 unasked PONGs a second for 1 s; seq numbers count on through it, so only the
        # nonce is wrong.
        before = self.pico()
        t = pico_us()
        t0 = time.monotonic()
        for k in range(100):
            with self.fake.lock:
                start = self.fake.seq + 1
                self.fake.seq += 1000
                chunk = "".join(f"PONG {start + i} 888888888 {t} {t}\n" for i in range(1000)).encode()
                self.fake.write(chunk, timeout=60)
            wait = t0 + (k + 1) / 100 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        wait_for(lambda: self.pico().get(UNMATCHED, 0) - before.get(UNMATCHED, 0) >= 100_000, 30, what="the unasked PONGs counted")
        after = self.pico()
        rows.append(("unasked PONG flood 100k/s x 1 s", UNMATCHED, after.get(UNMATCHED, 0) - before.get(UNMATCHED, 0),
                     f"100000 sent in {time.monotonic() - t0:.1f} s"))
        def summaries():
            return [e for e in self.rig.events()[rows_before:] if e["module"] == "pico" and e["event"] == "pico_flood"]
        wait_for(summaries, 10, what="pico_flood summaries")
        biggest = max(summaries(), key=lambda e: int(e["detail"].split()[0]))
        rows.append((f"(the floods' {len(summaries())} pico_flood rows; the biggest)", "-", "", biggest["detail"][:90]))
        self.assert_link_good()
        return rows

    # ---- afterwards ----
    def check_after(self, watch, final, cases):
        rig = self.rig
        session = rig.session_dir()
        self.print_camera_drops(session)
        frames, expected, notes, growth = hc.check_recording_whole(self, session, watch)

        # events.csv: the Pico's reports at 5 a second (burst 20), one summary a second at most.
        seconds = hc.session_seconds(session)
        events = rig.events()
        pico_rows = [e for e in events if e["module"] == "pico"]
        reports = [e for e in pico_rows if e["event"] in ("pico_bad_line", "pico_error", "pico_late", "pico_segment",
                                                          "pico_log")]
        floods = [e for e in pico_rows if e["event"] == "pico_flood"]
        self.assertLessEqual(len(reports), 20 + 5 * seconds + 5)
        self.assertLessEqual(len(floods), seconds + 2)
        size = os.path.getsize(os.path.join(session, "events.csv"))
        self.assertLess(size, 1 << 20, "events.csv stays small")
        logs = folder_bytes(os.path.join(session, "logs"))
        self.assertLess(os.path.getsize(os.path.join(session, "logs", "supervisor.log")), 4 << 20)

        # pico/led.csv and sync.csv: whole rows, and every mapped time true to the fake's clock.
        led = self.csv_rows(os.path.join(session, "pico", "led.csv"))
        sync = self.csv_rows(os.path.join(session, "pico", "sync.csv"))
        # Each segment's fit is as good as its exchanges: half the longest kept round trip.
        tolerance = {}
        for r in sync:
            if r["kept"] == "1":
                tolerance[r["segment"]] = max(tolerance.get(r["segment"], 0), fit_tolerance_us(float(r["rtt_us"])))
        led_errors = []
        for r in led:
            if r["mono_ns"]:
                error = (int(r["mono_ns"]) - (int(r["pico_us"]) - OFFSET_US) * 1000) / 1000
                led_errors.append(error)
                self.assertLess(abs(error), tolerance.get(r["segment"], FIT_TOLERANCE_US),
                                f"an LED row off the Pico's true clock: {r}")
        self.assertTrue(led_errors)
        self.assertIn('a,"b",c', [r["cmd_id"] for r in led])
        self.assertTrue(any(r["cmd_id"] == "t1code" for r in led), "the trial's code")
        for r in sync:
            if r["offset_us"]:
                self.assertLess(abs(float(r["offset_us"]) - OFFSET_US), tolerance.get(r["segment"], FIT_TOLERANCE_US),
                                f"the fit left the Pico's true clock: {r}")
        kept = [r for r in sync if r["kept"] == "1"]
        for r in sync:
            self.assertLess(int(r["pico_rx_us"]), 1 << 53)
            self.assertLessEqual(int(r["pico_rx_us"]), int(r["pico_tx_us"]))
        self.assertGreater(len(kept), 20)
        print(f"\nPico link: {cases} cases; camera {frames} frames (expected {expected:.1f}), 0 dropped; {notes} notes; "
              f"RSS baseline {watch.baseline_kb} KiB, peak growth {growth} KiB; "
              f"garbage lines counted {final[BAD]}, out of order {final.get(ORDER)}, unasked replies "
              f"{final.get(UNMATCHED)}, unknown {final[UNKNOWN]}, lost {final['lines_lost']}; "
              f"{final['segment']} clock segments; led.csv {len(led)} rows (max error "
              f"{max(abs(e) for e in led_errors):.0f} us), sync.csv {len(sync)} rows (max kept rtt "
              f"{max(float(r['rtt_us']) for r in kept):.0f} us); "
              f"events.csv {size} bytes, {len(events)} rows ({len(pico_rows)} pico) over {seconds:.1f} s; "
              f"logs {logs} bytes; status round trip max {max(watch.status_ms):.0f} ms", flush=True)

    def print_camera_drops(self, session):
        """Which case was running when the camera lost frames, if it did."""
        path = os.path.join(session, "camera", "cam0", "trial_001_frames.csv")
        for r in read_csv(path):
            if r.get("dropped_before") not in (None, "", "0"):
                at = int(r["mono_ns"])
                label = max((t for t in self.timeline if t[0] <= at), default=(0, "before the cases"))[1]
                print(f"camera: {r['dropped_before']} frames lost before frame {r['frame_index']}, during "
                      f"'{label}'", flush=True)

    def csv_rows(self, path):
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader)
            rows = list(reader)
        for r in rows:
            self.assertEqual(len(r), len(header), f"{path}: {r}")
        return [dict(zip(header, r)) for r in rows]


if __name__ == "__main__":
    unittest.main()

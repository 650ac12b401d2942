"""End-to-end tests of tests/tools/pico_emulator.py through a real pty.

Run from the repository root:
    python3 -m unittest discover -s tests/tools -v
"""
import errno
import os
import select
import subprocess
import sys
import tempfile
import time
import tty
import unittest

EMULATOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pico_emulator.py")


class Port:
    """Minimal host side: raw pty, line splitting, receive timestamps."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.buf = b""
        self.raw = b""
        self.eof = False

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        os.write(self.fd, data)

    def _read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not r:
            return
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self.eof = True
        self.raw += data
        self.buf += data

    def lines(self, timeout):
        """Lines (token lists, with host receive time in ns) until timeout."""
        end = time.monotonic() + timeout
        while not self.eof:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                line = line.replace(b"\r", b"")
                if line:
                    yield line.decode("ascii").split(" "), time.monotonic_ns()
            left = end - time.monotonic()
            if left <= 0:
                return
            self._read(left)

    def wait_for(self, kind, timeout=2.0, pred=None):
        """First line of this kind (and accepted by pred), with its t4."""
        for tokens, t4 in self.lines(timeout):
            if tokens[0] == kind and (pred is None or pred(tokens)):
                return tokens, t4
        raise AssertionError("no %s line within %.1f s (eof=%s, raw tail %r)" % (
            kind, timeout, self.eof, self.raw[-200:]))

    def ping(self, nonce):
        t1 = time.monotonic_ns()
        self.send("PING %s\n" % nonce)
        pong, t4 = self.wait_for("PONG", pred=lambda t: t[2] == str(nonce))
        return pong, t1 // 1000, t4 // 1000


def offset_and_rtt(pong, t1_us, t4_us):
    t_rx, t_tx = int(pong[3]), int(pong[4])
    rtt = (t4_us - t1_us) - (t_tx - t_rx)
    offset = ((t_rx - t1_us) + (t_tx - t4_us)) / 2
    return offset, rtt


def boot_of(hello):
    return dict(tok.split("=", 1) for tok in hello[3:])["boot"]


class EmulatorTest(unittest.TestCase):
    def start(self, *args):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        proc = subprocess.Popen([sys.executable, EMULATOR, "--duration", "20"] + list(args),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.addCleanup(self.stop, proc)
        first = proc.stdout.readline().decode().split()
        self.assertEqual(first[0], "PTY")
        self.assertTrue(first[1].startswith("/dev/pts/"), first)
        return proc, first[1]

    def stop(self, proc):
        if proc.poll() is None:
            proc.terminate()
        proc.wait(5)
        proc.stdout.close()

    def open(self, path):
        port = Port(path)
        self.addCleanup(port.close)
        return port

    def test_hello_ping_led_and_truth_log(self):
        truth = os.path.join(tempfile.gettempdir(), "pico_truth_%d.log" % os.getpid())
        self.addCleanup(lambda: os.path.exists(truth) and os.unlink(truth))
        link = os.path.join(tempfile.gettempdir(), "pico_link_%d" % os.getpid())
        proc, path = self.start("--seed", "1", "--log", truth, "--link", link)
        self.assertEqual(os.readlink(link), path)
        port = self.open(link)
        port.send("HELLO?\n")
        hello, _ = port.wait_for("HELLO")
        self.assertEqual(hello[1], "0")
        fields = dict(tok.split("=", 1) for tok in hello[3:])
        self.assertEqual(fields["proto"], "1")
        self.assertRegex(fields["boot"], r"^[0-9a-f]{8}$")
        self.assertIn("uid", fields)
        seqs = []
        for nonce in ("a1", "a2", "a3"):
            pong, t1, t4 = port.ping(nonce)
            self.assertLessEqual(int(pong[3]), int(pong[4]))
            self.assertGreaterEqual(offset_and_rtt(pong, t1, t4)[1], 0)
            seqs.append(int(pong[1]))
        self.assertEqual(seqs, sorted(set(seqs)))
        t_send = time.monotonic_ns()
        port.send("LED 1 0 1\n")
        ack, _ = port.wait_for("ACK")
        self.assertEqual(ack[3], "1")
        led, t_recv = port.wait_for("LED")
        self.assertEqual(led[3:], ["0", "1", "id=1"])
        # The truth log has the same change, at a host time inside the exchange.
        with open(truth) as f:
            rows = [l.split() for l in f if l.startswith("LED ")]
        self.assertEqual(len(rows), 1)
        _, mono_ns, pico_us, boot, ch, level = rows[0]
        self.assertEqual((boot, ch, level), (fields["boot"], "0", "1"))
        self.assertTrue(t_send <= int(mono_ns) <= t_recv)
        self.assertTrue(0 <= int(led[2]) - int(pico_us) < 2000)
        # SIGTERM: clean exit, link removed.
        proc.terminate()
        self.assertEqual(proc.wait(5), 0)
        self.assertFalse(os.path.lexists(link))

    def test_split_crlf_latency(self):
        proc, path = self.start("--seed", "2", "--split", "--crlf",
                                "--latency-us", "3000", "--jitter-us", "500",
                                "--jitter-dist", "uniform")
        port = self.open(path)
        port.send("HELLO?\n")
        port.wait_for("HELLO")
        for i in range(5):
            pong, t1, t4 = port.ping(i)
            self.assertEqual(len(pong), 5)
            # Both directions wait at least the latency, which the Pico's own
            # processing time (t_tx - t_rx) does not include.
            self.assertGreaterEqual(offset_and_rtt(pong, t1, t4)[1], 6000)
        self.assertIn(b"\r\n", port.raw)

    def test_skew_and_offset(self):
        proc, path = self.start("--skew-ppm", "5000", "--offset-us", "5000000000")
        port = self.open(path)

        def best_offset(tag):
            # Lowest-rtt exchange of a short burst, as the host does.
            results = [offset_and_rtt(*port.ping("%s%d" % (tag, i))) for i in range(4)]
            return min(results, key=lambda r: r[1])[0], time.monotonic_ns() // 1000

        off1, h1 = best_offset("x")
        time.sleep(1.5)
        off2, h2 = best_offset("y")
        self.assertGreater(off1 + h1, 5000000000)
        expected = 5000e-6 * (h2 - h1)
        self.assertAlmostEqual(off2 - off1, expected, delta=1000)

    def test_unplug_and_replug(self):
        link = os.path.join(tempfile.gettempdir(), "pico_link2_%d" % os.getpid())
        proc, path = self.start("--link", link, "--unplug-after", "0.6",
                                "--replug-after", "0.8")
        port = self.open(link)
        port.send("HELLO?\n")
        boot1 = boot_of(port.wait_for("HELLO")[0])
        for _ in port.lines(2.0):
            pass
        self.assertTrue(port.eof, "no EOF/EIO after unplug")
        self.assertFalse(os.path.lexists(link))
        port.close()
        deadline = time.monotonic() + 2.0
        while not os.path.lexists(link) and time.monotonic() < deadline:
            time.sleep(0.02)
        second = proc.stdout.readline().decode().split()
        self.assertEqual(second[0], "PTY")
        self.assertEqual(os.readlink(link), second[1])
        port2 = self.open(link)
        port2.send("HELLO?\n")
        boot2 = boot_of(port2.wait_for("HELLO")[0])
        self.assertNotEqual(boot1, boot2)
        proc.terminate()
        self.assertEqual(proc.wait(5), 0)
        self.assertFalse(os.path.lexists(link))

    def test_reboot_then_repl_recovery(self):
        proc, path = self.start("--reboot-after", "0.4", "--repl-after", "1.0")
        port = self.open(path)
        port.send("HELLO?\n")
        boot1 = boot_of(port.wait_for("HELLO")[0])
        boot2 = boot_of(port.wait_for("HELLO", timeout=1.0,
                                      pred=lambda t: boot_of(t) != boot1)[0])
        self.assertNotEqual(boot1, boot2)
        pong, _, _ = port.ping("after")
        self.assertEqual(pong[1], "1")  # seq restarted with the new boot
        deadline = time.monotonic() + 1.5
        while not port.raw.endswith(b">>> ") and time.monotonic() < deadline:
            port._read(0.05)
        self.assertTrue(port.raw.endswith(b">>> "))
        port.buf = b""
        port.send("PING ignored\n")
        self.assertEqual([t for t, _ in port.lines(0.3)], [])
        port.send(b"\x04")
        boot3 = boot_of(port.wait_for("HELLO")[0])
        self.assertNotIn(boot3, (boot1, boot2))
        self.assertIn(b"soft reboot", port.raw)

    def test_loss_leaves_seq_gaps(self):
        proc, path = self.start("--loss", "0.5", "--seed", "3")
        port = self.open(path)
        for i in range(30):
            port.send("PING %d\n" % i)
            time.sleep(0.002)
        seqs = [int(t[1]) for t, _ in port.lines(0.5) if t[0] == "PONG"]
        self.assertTrue(3 <= len(seqs) <= 27, seqs)
        self.assertEqual(seqs, sorted(seqs))
        self.assertGreater(seqs[-1] - seqs[0] + 1, len(seqs))


if __name__ == "__main__":
    unittest.main()

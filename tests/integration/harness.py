"""Runs the real pilogger executables for the integration tests (python3 standard library only).

Each Rig gets its own temporary folder with a private XDG_RUNTIME_DIR (so its control socket
never meets another test's) and a data folder for sessions.
"""
import csv
import glob
import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("PILOGGER_SOURCE", os.path.abspath(os.path.join(HERE, "..", "..")))
BIN = os.environ.get("PILOGGER_BIN", os.path.join(SOURCE, "build", "bin"))
PILOGGER = os.path.join(BIN, "pilogger")
SPAWN = os.path.join(BIN, "pilogger-spawn")


def dies_with_test(argv):
    """argv started through pilogger-spawn: SIGKILL when this test process dies, so a test killed
    half-way (a timeout, a closed pipe) leaves no supervisor recording on, nor its modules."""
    program = argv[0] if os.path.isabs(argv[0]) else shutil.which(argv[0])
    return [SPAWN, str(int(signal.SIGKILL)), str(os.getpid()), program, *argv]


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    """Polls until predicate() is truthy; returns its value or raises after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def pid_alive(pid):
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def mp4_boxes(data, start, end):
    """(offset, size, type) of the boxes in data[start:end]; a box cut short ends the list."""
    out = []
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[at + 8:at + 16])[0]
            header = 16
        if size < header:
            break
        out.append((at, size, kind.decode("latin-1")))
        at += size
    return out


def mp4_samples(path):
    """Every video sample a fragmented MP4's moof boxes declare: (offset, size), in order. A
    sample whose bytes run past the end of the file (a fragment cut short) is listed too."""
    with open(path, "rb") as f:
        data = f.read()
    samples = []
    for moof, size, kind in mp4_boxes(data, 0, len(data)):
        if kind != "moof" or moof + size > len(data):
            continue
        for traf, tsize, tkind in mp4_boxes(data, moof + 8, moof + size):
            if tkind != "traf":
                continue
            default_size = 0
            base = moof
            for box, bsize, bkind in mp4_boxes(data, traf + 8, traf + tsize):
                flags = struct.unpack(">I", data[box + 8:box + 12])[0] & 0xFFFFFF
                body = box + 12
                if bkind == "tfhd":
                    at = body + 4  # track_ID
                    if flags & 0x01:
                        base = struct.unpack(">Q", data[at:at + 8])[0]
                        at += 8
                    for bit in (0x02, 0x08):
                        at += 4 if flags & bit else 0
                    if flags & 0x10:
                        default_size = struct.unpack(">I", data[at:at + 4])[0]
                elif bkind == "trun":
                    count = struct.unpack(">I", data[body:body + 4])[0]
                    at = body + 4
                    offset = base
                    if flags & 0x01:
                        offset = base + struct.unpack(">i", data[at:at + 4])[0]
                        at += 4
                    if flags & 0x04:
                        at += 4
                    for _ in range(count):
                        sample_size = default_size
                        for bit in (0x100, 0x200, 0x400, 0x800):
                            if flags & bit:
                                if bit == 0x200:
                                    sample_size = struct.unpack(">I", data[at:at + 4])[0]
                                at += 4
                        samples.append((offset, sample_size))
                        offset += sample_size
    return samples


def mp4_whole_frames(path):
    """(frames whose bytes lie whole in the file, whether a frame is cut short at its end)."""
    end = os.path.getsize(path)
    whole = 0
    for offset, size in mp4_samples(path):
        if offset + size > end:
            return whole, True
        whole += 1
    return whole, False


def yaml_config(data_dir, modules, supervisor=None, extra=""):
    """modules: {name: {key: value}} written as YAML mappings (values already YAML-safe)."""
    lines = [f"data_dir: {data_dir}", "log_level: debug", "disk_reserve_mb: 64"]
    if supervisor:
        lines.append("supervisor:")
        lines += [f"  {k}: {v}" for k, v in supervisor.items()]
    lines.append("modules:")
    for name, settings in modules.items():
        lines.append(f"  {name}:")
        if not settings:
            lines[-1] += " {}"
        lines += [f"    {k}: {v}" for k, v in settings.items()]
    return "\n".join(lines) + "\n" + extra


class Rig:
    def __init__(self, modules=None, supervisor=None, config_text=None):
        self.tmp = tempfile.mkdtemp(prefix="pilogger-it-")
        self.runtime = os.path.join(self.tmp, "run")
        os.mkdir(self.runtime, 0o700)
        self.data = os.path.join(self.tmp, "data")
        self.config = os.path.join(self.tmp, "config.yaml")
        if config_text is None:
            config_text = yaml_config(self.data, modules or {"notes": {}}, supervisor)
        with open(self.config, "w") as f:
            f.write(config_text)
        self.env = dict(os.environ, XDG_RUNTIME_DIR=self.runtime)
        self.proc = None
        self.seen_pids = set()

    # ---- the supervisor ----
    def start(self, *args):
        self.proc = subprocess.Popen(dies_with_test([PILOGGER, "run", "--config", self.config, *args]), env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: self.try_status() is not None, 10, what="the control socket")
        return self.proc

    def wait_exit(self, timeout=30):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def shutdown(self, timeout=30):
        self.cli("shutdown")
        return self.wait_exit(timeout)

    def cleanup(self):
        if self.proc:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.communicate()
        for pid in self.seen_pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- the CLI ----
    def cli(self, *args, check=True, timeout=30):
        r = subprocess.run([PILOGGER, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"pilogger {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r

    def try_status(self):
        r = self.cli("status", "--json", check=False)
        if r.returncode != 0:
            return None
        status = json.loads(r.stdout)
        for m in status["modules"]:
            if m.get("pid"):
                self.seen_pids.add(m["pid"])
        return status

    def status(self):
        s = self.try_status()
        assert s is not None, "the supervisor does not answer"
        return s

    def module(self, name):
        return next(m for m in self.status()["modules"] if m["name"] == name)

    def wait_module(self, name, state, timeout=10, other_than_pid=None):
        def ok():
            m = self.module(name)
            if m["state"] != state or not m["pid"]:
                return None
            if other_than_pid is not None and m["pid"] == other_than_pid:
                return None
            return m
        return wait_for(ok, timeout, what=f"{name} to be {state}")

    def wait_all(self, state, timeout=10):
        return wait_for(lambda: all(m["state"] == state for m in self.status()["modules"] if m["enabled"]),
                        timeout, what=f"every module {state}")

    # ---- the session on disk ----
    def session_dirs(self):
        return sorted(glob.glob(os.path.join(self.data, "session_*")))

    def session_dir(self):
        dirs = self.session_dirs()
        assert dirs, f"no session folder in {self.data}"
        return dirs[-1]

    def events(self):
        """events.csv's rows; none before the session folder exists (just after start on a loaded host)."""
        if not self.session_dirs():
            return []
        return read_csv(os.path.join(self.session_dir(), "events.csv"))

    def notes(self):
        return read_csv(os.path.join(self.session_dir(), "notes", "notes.csv"))


# ---- the control socket, spoken directly (for tests that send what no real client would) ----

def control_path(rig):
    return os.path.join(rig.runtime, "pilogger", "control.sock")


class ControlClient:
    """NDJSON over the control socket with ids. Events that arrive between answers are kept in
    .events (a subscribed client gets them); lines that are neither are kept in .others."""

    def __init__(self, path, timeout=10):
        import socket
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buffer = b""
        self.next_id = 1
        self.events = []
        self.others = []
        self.closed = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def read_line(self, timeout=10):
        """The next line as bytes (without the newline), or None at EOF or timeout."""
        import socket
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                return None
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.closed = True
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def read_message(self, timeout=10):
        line = self.read_line(timeout)
        return None if line is None else json.loads(line)

    def answer(self, id_, timeout=10):
        """Reads until the answer with this id (None: any answer) comes; keeps events meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.read_message(max(0.0, deadline - time.monotonic()))
            if m is None:
                raise AssertionError(f"no answer to id {id_!r} within {timeout} s (closed: {self.closed})")
            if "event" in m and "ok" not in m:
                self.events.append(m)
            elif id_ is None or m.get("id") == id_:
                return m
            else:
                self.others.append(m)

    def request(self, cmd, args=None, timeout=10):
        id_ = self.next_id
        self.next_id += 1
        line = {"id": id_, "cmd": cmd}
        if args is not None:
            line["args"] = args
        self.send_raw(json.dumps(line) + "\n")
        return self.answer(id_, timeout)

    def module_command(self, name, cmd, args=None, timeout=10):
        return self.request("module_command", {"name": name, "cmd": cmd, "args": args or {}}, timeout)


def rss_kb(pid):
    """VmRSS of a process in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def folder_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except FileNotFoundError:
                pass
    return total

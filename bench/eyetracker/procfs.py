"""CPU, RSS and process trees from /proc, and the sampling CPU meter."""
import os
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """utime + stime in seconds, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return None


def proc_comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def proc_rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def load_average():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


class CpuMeter(threading.Thread):
    """Once a second: CPU and RSS of named groups of processes. A group is a function returning its
    pids now; each pid's CPU counts from the first time it is seen inside the window."""

    def __init__(self, groups):
        super().__init__(daemon=True)
        self.groups = groups
        self.base = {}       # (group, pid) -> cpu seconds at the previous sample
        self.total = {g: 0.0 for g in groups}
        self.series = {g: [] for g in groups}   # CPU % of one core per 1-s sample
        self.rss = {g: [] for g in groups}
        self.stop_event = threading.Event()
        self.t0 = self.t1 = None
        self.sample(first=True)

    def sample(self, first=False):
        now = time.monotonic()
        for g, pids_of in self.groups.items():
            used, rss = 0.0, 0.0
            for pid in pids_of():
                c = proc_cpu(pid)
                if c is None:
                    continue
                rss += proc_rss_mib(pid)
                prev = self.base.get((g, pid))
                self.base[(g, pid)] = c
                if prev is not None:
                    used += c - prev
            if not first:
                self.total[g] += used
                if now - self.last >= 0.5:  # the last, shorter piece counts in the total only
                    self.series[g].append(100 * used / (now - self.last))
                self.rss[g].append(rss)
        self.last = now
        if first:
            self.t0 = now
        self.t1 = now

    def run(self):
        next_t = self.t0 + 1.0
        while not self.stop_event.wait(max(0.0, next_t - time.monotonic())):
            self.sample()
            next_t += 1.0

    def finish(self):
        self.stop_event.set()
        self.join()
        self.sample()
        wall = self.t1 - self.t0
        return {g: {"cpu_pct": 100 * self.total[g] / wall, "cpu_s": self.total[g],
                    "max_1s_pct": max(self.series[g], default=0.0),
                    "rss_max_mib": max(self.rss[g], default=0.0)} for g in self.groups} | {"wall_s": wall}

#!/usr/bin/env python3
"""bench/fanout: round trip of a command fanned out to every module and back.

For N = 1, 4, 16 no-op modules (the test module), send 1000 commands through the control socket
one after another; each goes client -> supervisor -> every module -> every ACK -> client. The
same load runs against an asyncio Python supervisor (python_baseline.py), the alternative a user
would otherwise pick, and the ratio is printed.

  python3 bench/fanout/run.py [--commands 1000] [--modules 1,4,16]
Needs a build (./scripts/build.sh). Target: p99 under 2 ms for N = 4 on a Pi 5.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("PILOGGER_BIN", os.path.join(SOURCE, "build", "bin"))


def connect(path, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def measure(path, commands, request):
    sock = connect(path)
    reader = sock.makefile("rb")
    times = []
    for i in range(commands + 50):
        line = (json.dumps({"id": i + 1, "cmd": request[0], "args": request[1]}) + "\n").encode()
        t0 = time.perf_counter_ns()
        sock.sendall(line)
        reply = json.loads(reader.readline())
        t1 = time.perf_counter_ns()
        assert reply.get("ok"), reply
        if i >= 50:  # warm-up excluded
            times.append((t1 - t0) / 1e6)
    sock.close()
    times.sort()
    return {"p50": statistics.median(times), "p99": times[int(len(times) * 0.99) - 1], "max": times[-1]}


def run_pilogger(n, commands, tmp):
    runtime = os.path.join(tmp, "run")
    os.makedirs(runtime, mode=0o700, exist_ok=True)
    config = os.path.join(tmp, "fanout.yaml")
    with open(config, "w") as f:
        f.write(f"data_dir: {tmp}/data\nmodules:\n")
        for i in range(n):
            f.write(f"  m{i}:\n    type: test\n")
    env = dict(os.environ, XDG_RUNTIME_DIR=runtime)
    proc = subprocess.Popen([os.path.join(BIN, "pilogger"), "run", "--config", config], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        path = os.path.join(runtime, "pilogger", "control.sock")
        sock = connect(path)
        reader = sock.makefile("rb")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # every module up
            sock.sendall(b'{"id":1,"cmd":"status"}\n')
            status = json.loads(reader.readline())["result"]
            if all(m["state"] == "ready" for m in status["modules"]):
                break
            time.sleep(0.1)
        sock.close()
        return measure(path, commands, ("module_command", {"name": "*", "cmd": "status", "args": {}}))
    finally:
        subprocess.run([os.path.join(BIN, "pilogger"), "shutdown"], env=env, capture_output=True, timeout=60)
        proc.wait(timeout=60)


def run_python(n, commands, tmp):
    path = os.path.join(tmp, "baseline.sock")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "python_baseline.py"), "supervisor", path, str(n)])
    try:
        time.sleep(0.5 + 0.05 * n)
        return measure(path, commands, ("fan_out", {"cmd": "status"}))
    finally:
        proc.terminate()
        proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--modules", default="1,4,16")
    args = parser.parse_args()
    print(f"fan-out round trip, {args.commands} commands each, times in ms (host: {os.uname().machine}, "
          f"{os.cpu_count()} cores)")
    print(f"{'N':>3} {'pilogger p50':>13} {'p99':>7} {'max':>7} | {'python p50':>11} {'p99':>7} {'max':>7} | p99 ratio")
    for n in [int(x) for x in args.modules.split(",")]:
        tmp = tempfile.mkdtemp(prefix="pilogger-fanout-")
        try:
            ours = run_pilogger(n, args.commands, tmp)
            theirs = run_python(n, args.commands, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"{n:>3} {ours['p50']:>13.3f} {ours['p99']:>7.3f} {ours['max']:>7.3f} | "
              f"{theirs['p50']:>11.3f} {theirs['p99']:>7.3f} {theirs['max']:>7.3f} | "
              f"python/pilogger = {theirs['p99'] / ours['p99']:.1f}x")


if __name__ == "__main__":
    main()

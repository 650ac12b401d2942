#!/usr/bin/env python3
"""bench/eyetracker: what recording a Neon costs, and how late a gaze sample is safe on disk.

neon-sim serves the Neon's real sizes on loopback (1600x1200 H.264 scene at 30 fps and 4 Mb/s,
gaze at 200 Hz in the 89-byte layout, IMU at 110 Hz, eye events); pilogger-eyetracker records it
standalone (no supervisor), each run against a fresh simulator:

1. CPU per second of recording (utime + stime from /proc/<pid>/stat, sampled once a second) of
   pilogger-eyetracker (and, separately, of an ffmpeg child if the build has one: builds before
   the in-process scene writer piped the scene to ffmpeg), plus peak RSS, for gaze + IMU + eye
   events + scene with overlay off, with `overlay: true`, and with `scene: false` (so the scene's
   share can be told apart). neon-sim's own CPU (Python and its x264 encoder) is reported beside
   it and counted nowhere.
2. Latency from a gaze sample's device time (the simulator's truth log: the CLOCK_MONOTONIC
   instant the sample was produced) to its CSV row being durable: covered by a completed
   fdatasync/fsync of that file. The recorder runs under strace (-f -ttt -T -y, write and sync
   calls only); each row is mapped by its byte offset to the write(2) that carried it and to the
   first sync of the same file that started after that write returned. strace's CLOCK_REALTIME
   times are converted with a realtime/monotonic pair read at the start. Without strace, the
   file is tailed every 1 ms instead and the numbers are only "written, not yet durable". These
   runs are separate from the CPU runs (strace costs CPU).
3. The alternative a researcher would otherwise pick, in the same invocation: plain ffmpeg
   recording the RTSP scene stream (`ffmpeg -rtsp_transport udp -i rtsp://.../?camera=world -c copy
   -f mp4 -movflags frag_keyframe+empty_moov out.mp4`) and a Python asyncio gaze client
   (python_baseline.py: RTSP, RTP/UDP, sender-report timing, csv module, flush + fsync once a
   second). CPU, frames and rows kept, and the same latency numbers; ratios are printed.

  python3 bench/eyetracker/run.py [--build DIR] [--seconds 30] [--latency-seconds 20] [--quick]
Needs a build with pilogger-eyetracker and neon-sim (./scripts/build.sh, or ninja -C DIR
pilogger-eyetracker neon_sim), ffmpeg and ffprobe; strace for the durable latency.
Default run: about 3.5 minutes; --quick: 8 s runs, under a minute and a half.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from procfs import load_average
from report import report
from runs import run_baseline, run_pilogger

SOURCE = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.environ.get("PILOGGER_BUILD", os.path.join(SOURCE, "build")),
                        help="build folder with bin/pilogger-eyetracker and bin/neon-sim (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=30, help="measured seconds of each CPU run (default 30)")
    parser.add_argument("--latency-seconds", type=float, default=20,
                        help="measured seconds of each latency run (default 20)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds recorded before measuring (default 3)")
    parser.add_argument("--quick", action="store_true", help="8 s runs, 2 s warm-up")
    parser.add_argument("--preview", choices=("on", "off"), default="on",
                        help="the module's scene preview (its config default is on)")
    parser.add_argument("--loss", type=float, default=0.0, help="neon-sim --loss, packet loss probability")
    parser.add_argument("--no-strace", action="store_true", help="tail the CSV files instead (written, not durable)")
    parser.add_argument("--skip", default="", help="comma list of runs to skip: plain,overlay,noscene,baseline,latency")
    parser.add_argument("--json", help="result file (default: <build>/bench-eyetracker.json)")
    parser.add_argument("--keep", action="store_true", help="keep the recordings and logs")
    args = parser.parse_args()
    if args.quick:
        args.seconds = args.latency_seconds = 8
        args.warmup = 2
    bin_dir = os.path.join(os.path.abspath(args.build), "bin")
    for exe in ("pilogger-eyetracker", "neon-sim"):
        if not os.path.exists(os.path.join(bin_dir, exe)):
            sys.exit(f"bench/eyetracker: {bin_dir}/{exe} is missing; build it (ninja -C {args.build} "
                     f"pilogger-eyetracker neon_sim)")
    for tool in ("ffmpeg", "ffprobe"):
        if not shutil.which(tool):
            sys.exit(f"bench/eyetracker needs {tool} (apt-get install ffmpeg)")
    latency_mode = "strace" if shutil.which("strace") and not args.no_strace else "tail"
    skip = set(filter(None, args.skip.split(",")))
    sim_extra = ["--loss", str(args.loss)] if args.loss else []
    preview = "true" if args.preview == "on" else "false"

    load0 = load_average()
    started = time.monotonic()
    print(f"eye-tracker benchmark: neon-sim 1600x1200 H.264 at 30 fps and 4 Mb/s, gaze 200 Hz (89-byte layout), "
          f"IMU 110 Hz, eye events{f', packet loss {args.loss:g}' if args.loss else ''}")
    print(f"host: {os.uname().machine}, {os.cpu_count()} cores, load average {load0[0]:.2f} {load0[1]:.2f} "
          f"{load0[2]:.2f} at start; CPU runs {args.seconds:g} s, latency runs {args.latency_seconds:g} s "
          f"({'strace: durable' if latency_mode == 'strace' else 'no strace: written only, tailing every 1 ms'}), "
          f"preview {args.preview}")
    if latency_mode == "tail" and not args.no_strace:
        print("  strace is missing (apt-get install strace): latency is to the row being visible in the file "
              "(written, NOT yet durable)")

    runs = {}
    top = tempfile.mkdtemp(prefix="pilogger-bench-eyetracker-")
    plan = [("plain", lambda d: run_pilogger(bin_dir, d, {"preview": preview, "overlay": "false"}, args.seconds,
                                             args.warmup, sim_extra, None)),
            ("overlay", lambda d: run_pilogger(bin_dir, d, {"preview": preview, "overlay": "true"}, args.seconds,
                                               args.warmup, sim_extra, None)),
            ("noscene", lambda d: run_pilogger(bin_dir, d, {"preview": "false", "scene": "false"}, args.seconds,
                                               args.warmup, sim_extra, None)),
            ("baseline", lambda d: run_baseline(bin_dir, d, args.seconds, args.warmup, sim_extra, True, None)),
            ("latency", lambda d: run_pilogger(bin_dir, d, {"preview": preview, "overlay": "false"},
                                               args.latency_seconds, args.warmup, sim_extra, latency_mode)),
            ("baseline_latency", lambda d: run_baseline(bin_dir, d, args.latency_seconds, args.warmup, sim_extra,
                                                        False, latency_mode))]
    try:
        for name, fn in plan:
            if name in skip or (name == "baseline_latency" and "latency" in skip):
                continue
            d = os.path.join(top, name)
            os.makedirs(d)
            print(f"  running {name} ...", file=sys.stderr, flush=True)
            try:
                runs[name] = fn(d)
            except Exception as e:  # report and go on with the other runs
                runs[name] = {"error": str(e)}
                print(f"  {name}: FAILED: {e}", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)
    load1 = load_average()
    report(runs, args, latency_mode)
    print(f"\nload average {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} at the end; total {time.monotonic() - started:.0f} s"
          + (f"; recordings kept in {top}" if args.keep else ""))
    out = args.json or os.path.join(os.path.abspath(args.build), "bench-eyetracker.json")
    with open(out, "w") as f:
        json.dump({"host": {"machine": os.uname().machine, "cores": os.cpu_count(), "load_start": load0,
                            "load_end": load1},
                   "args": vars(args), "latency_mode": latency_mode, "runs": runs}, f, indent=1)
    print(f"JSON: {out}")


if __name__ == "__main__":
    main()

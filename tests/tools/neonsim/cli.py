"""The command line."""
import argparse
import asyncio
import re

from . import __doc__ as ABOUT
from .payloads import GAZE_STRUCTS
from .sim import Sim


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="neon-sim", description=ABOUT.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, help="0 = pick a free port (default 8080; with --announce 0)")
    p.add_argument("--rtsp-port", type=int, help="0 = pick a free port (default 8086; with --announce 0)")
    p.add_argument("--time-echo-port", type=int, help="0 = pick a free port (default 12321; with --announce 0)")
    p.add_argument("--announce", action="store_true",
                   help='print {"address","port"} on stdout once listening (how pilogger-eyetracker starts '
                        "it for address: simulator)")
    p.add_argument("--port-file", help='written atomically once listening: '
                                       '{"http","rtsp","time_echo","pid"}')
    p.add_argument("--offset-s", type=float, default=0.0,
                   help="phone clock = host CLOCK_REALTIME + this")
    p.add_argument("--skew-ppm", type=float, default=0.0,
                   help="the phone clock runs this many parts per million fast (negative: slow)")
    p.add_argument("--device-name", default="Neon Sim")
    p.add_argument("--battery", type=int, default=87, help="battery level, %%")
    p.add_argument("--battery-drain-s", type=float, default=60,
                   help="the battery loses 1 %% this often, pushed over the WebSocket")
    p.add_argument("--memory-gb", type=float, default=100.0, help="free storage, GB")
    p.add_argument("--gaze-layout", type=int, default=89, choices=sorted(GAZE_STRUCTS),
                   help="gaze payload length in bytes")
    p.add_argument("--gaze-hz", type=float, default=200.0)
    p.add_argument("--imu-hz", type=float, default=110.0)
    p.add_argument("--eye-event-interval-s", type=float, default=0.5,
                   help="mean fixation+saccade cycle of the simulated scan path")
    p.add_argument("--scene-size", default="1600x1200", help="WxH of the scene video")
    p.add_argument("--scene-fps", type=float, default=30.0)
    p.add_argument("--scene-bitrate", default="4M",
                   help="x264 bitrate (-b:v/-maxrate/-bufsize); 0 = x264's default CRF")
    p.add_argument("--keyframe-interval-s", type=float, default=1.0)
    p.add_argument("--inband-parameter-sets", action="store_true",
                   help="also send SPS/PPS before every IDR (default: SDP only)")
    p.add_argument("--loss", type=float, default=0.0,
                   help="probability that an RTP packet is not sent")
    p.add_argument("--reorder", type=float, default=0.0,
                   help="probability that an RTP packet is sent after the next one")
    p.add_argument("--seed", type=int)
    p.add_argument("--rtp-ts-start", type=int,
                   help="initial RTP timestamp of every stream (default random)")
    p.add_argument("--first-sr-delay-s", type=float, default=0.0)
    p.add_argument("--sr-interval-s", type=float, default=1.0)
    p.add_argument("--session-timeout-s", type=float, default=60.0)
    p.add_argument("--disconnect-at-s", type=float,
                   help="disappear this many seconds after start (SIGUSR1 does it any time)")
    p.add_argument("--down-for-s", type=float, default=5.0)
    p.add_argument("--truth", help="NDJSON ground-truth log")
    args = p.parse_args(argv)
    # Announced, it is one of many on the machine: free ports unless told otherwise.
    for name, usual in (("http_port", 8080), ("rtsp_port", 8086), ("time_echo_port", 12321)):
        if getattr(args, name) is None:
            setattr(args, name, 0 if args.announce else usual)
    m = re.fullmatch(r"(\d+)x(\d+)", args.scene_size)
    if not m or int(m.group(1)) % 2 or int(m.group(2)) % 2:
        p.error("--scene-size must be WxH with even numbers")
    args.scene_w, args.scene_h = int(m.group(1)), int(m.group(2))
    for name in ("gaze_hz", "imu_hz", "scene_fps", "sr_interval_s", "session_timeout_s",
                 "keyframe_interval_s"):
        if getattr(args, name) <= 0:
            p.error("--%s must be > 0" % name.replace("_", "-"))
    if not 0.0 <= args.loss <= 1.0 or not 0.0 <= args.reorder <= 1.0:
        p.error("--loss and --reorder are probabilities in [0, 1]")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        asyncio.run(Sim(args).run())
    except KeyboardInterrupt:
        pass
    return 0

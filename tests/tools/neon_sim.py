#!/usr/bin/env python3
"""neon-sim: a Pupil Labs Neon (the phone's real-time API) on loopback; the code is the package
neonsim next to this file (its docstring describes the simulator)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

from neonsim.cli import main  # noqa: E402
# The encoders tests/fuzz/make_seeds.py uses.
from neonsim.messages import ws_frame  # noqa: E402,F401
from neonsim.payloads import GAZE_STRUCTS, eye_event_payload, imu_payload  # noqa: E402,F401
from neonsim.scene import h264_payloads  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())

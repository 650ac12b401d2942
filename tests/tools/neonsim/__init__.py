"""neon-sim: a Pupil Labs Neon (the phone's real-time API) on loopback.

Serves the same network protocols as the Neon Companion phone, so the
project's real C++ client is what gets tested. Python 3.11 standard library
only (asyncio); the scene video comes from an ffmpeg subprocess.

  HTTP/1.1   GET /api/status, POST /api/recording:start|stop_and_save|cancel,
             POST /api/event; keep-alive and close; Content-Length or chunked
             request bodies.
  WebSocket  GET /api/status with Upgrade (RFC 6455): every status component
             as its own text message on open, then each changed component
             (battery -1 % every --battery-drain-s, 60 s by default; recording
             start/stop; events).
  Time Echo  TCP: each 8-byte request (u64 BE t1) -> t1 + phone unix ms.
  RTSP 1.0   rtsp://host:port/?camera=world|gaze|imu|eye_events, one stream
             per URL: OPTIONS, DESCRIBE, SETUP (RTP/AVP unicast UDP only),
             PLAY, GET_PARAMETER, TEARDOWN. RTP to the client's port a, RTCP
             sender reports (+ SDES CNAME) to port b from server port c+1.

Phone clock: device_ns = time.time_ns() (host CLOCK_REALTIME) + --offset-s, plus
--skew-ppm of the time since the start (a phone crystal running fast or slow).
RTP clock: 90 kHz for every stream; ts = start + round((device_ns -
device_ns_at_PLAY) * 90000 / 1e9) mod 2^32, so the sender-report mapping is
exact (to the 11 us quantum of 90 kHz).

RTSP sessions: a session is refreshed by any request that names it in its
Session header and by any request on the TCP connection that created it. One
idle for --session-timeout-s is torn down (streaming stops, later requests
naming it get 454); closing the RTSP connection tears down its sessions.

Payloads (big-endian unless said otherwise). Field orders follow Pupil Labs'
public MIT-licensed Python client, pupil-labs/pl-realtime-api
src/pupil_labs/realtime_api/streaming/gaze.py and eye_events.py (commit
a9c36bd9), and the IMU proto from pupil-labs/pl-neon-recording
src/pupil_labs/neon_recording/timeseries/imu/imu_pb2.py (commit 0e2de478):
  gaze  9: x, y, worn(u8, 255 = worn)
       17: left_x, left_y, worn, right_x, right_y
       25: x, y, worn, mono_left_x, mono_left_y, mono_right_x, mono_right_y
       65: x, y, worn, pupil_diameter_left, eyeball_center_left_x/y/z,
           optical_axis_left_x/y/z, pupil_diameter_right,
           eyeball_center_right_x/y/z, optical_axis_right_x/y/z
           (the 65 layout extends the 9 layout, not the 25 one)
       89: the 65 fields, then eyelid_angle_top_left, eyelid_angle_bottom_left,
           eyelid_aperture_left, eyelid_angle_top_right,
           eyelid_angle_bottom_right, eyelid_aperture_right
      105: the 89 fields, then mono_left_x, mono_left_y, mono_right_x,
           mono_right_y
       (all float32 except worn; pixels of the 1600x1200 scene camera,
        whatever --scene-size is; mm, rad)
  eye events: i32 type first.
       0 saccade / 1 fixation (60 bytes): type, start_ns i64, end_ns i64,
           start_x, start_y, end_x, end_y, mean_x, mean_y, amplitude_px,
           amplitude_deg, mean_velocity, max_velocity (f32; velocities px/s)
       2 saccade onset / 3 fixation onset (12 bytes): type, start_ns i64
       4 blink (20 bytes): type, start_ns i64, end_ns i64
       5 keep-alive (4 bytes): type only; sent when no other event went out
           for 1 s
  IMU: protobuf ImuPacket {tsNs=1 uint64 varint; accelData=2 {x=1,y=2,z=3};
       gyroData=3 {x=1,y=2,z=3}; rotVecData=4 {w=1,x=2,y=3,z=4}}, nested
       floats fixed32 little-endian, zero-valued fields omitted. accel in g,
       gyro in deg/s.
  world: H.264 (RFC 6184, packetization-mode=1): single NAL units up to 1400
       bytes, FU-A beyond; marker bit on the last packet of an access unit.
       SPS/PPS only in the SDP's sprop-parameter-sets unless
       --inband-parameter-sets (then also before every IDR). x264's SEI is
       dropped.

Timing: gaze and IMU samples sit on an absolute grid (--gaze-hz, --imu-hz)
on CLOCK_MONOTONIC; each is stamped with its grid instant (its "capture"
time: RTP timestamp and IMU tsNs) and sent as soon as the event loop gets
there (normally < 1 ms later; a late loop catches up in a burst, a stall over
0.25 s skips samples). Scene frames are paced at --scene-fps and stamped when
sent; eye events are stamped (RTP) when sent and carry their own start/end.

--truth PATH, NDJSON, flushed every 0.5 s and at exit; mono_ns is
time.monotonic_ns() (CLOCK_MONOTONIC) of the same instant as device_ns:
  {"kind":"start","mono_ns","device_ns","offset_ns","seed","ports",...}
  {"kind":"gaze"|"imu","session","seq","device_ns","mono_ns","sent"}
  {"kind":"frame","session","seq"(first packet),"packets","bytes","index",
   "run","keyframe","device_ns","mono_ns","sent"(all packets sent)}
  {"kind":"eye_event","session","seq","type","start_ns","end_ns",
   "device_ns","mono_ns","sent"}
  {"kind":"sr","session","camera","rtp_ts","device_ns","mono_ns","sent"}
  {"kind":"rtsp","action":"play"|"teardown"|"timeout"|"closed","session",
   "camera","ssrc","seq"(first),"rtp_ts"(first),"device_ns","mono_ns"}
  {"kind":"api_event","name","timestamp","recording_id","device_ns","mono_ns"}
  {"kind":"recording","action":"start"|"stop_and_save"|"cancel","id",
   "device_ns","mono_ns"}
  {"kind":"disconnect"|"reconnect","mono_ns","reason"}
Per-packet lines are written once per playing session ("session" tells
them apart). "sent": false = dropped by --loss (or the send failed).

Disconnect (--disconnect-at-s, SIGUSR1): every TCP connection is aborted,
every RTP/RTCP stream stops (sessions are forgotten), ffmpeg is killed, the
listening sockets close and reopen on the same ports --down-for-s later.
SIGTERM/SIGINT: clean exit 0.
"""

#!/usr/bin/env python3
"""Writes the hand-made seeds of the fuzz corpora (tests/fuzz/corpus/<target>/seed-*).

The seeds are valid traffic as the simulators and the firmware produce it (tests/tools/neon_sim.py,
firmware/pico_w/psync.py, config/*.yaml) plus a few malformed variants; each is in the input
format its target documents at the top of tests/fuzz/targets/<target>.cpp. The rest of a corpus
is what libFuzzer found and kept (bench/fuzz/run.sh merges it back). Run from anywhere:

    python3 tests/fuzz/make_seeds.py
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
import neon_sim  # noqa: E402  (the simulator's own encoders)


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data)


def record(body):
    return struct.pack(">H", len(body)) + body


# ---- ndjson_framing: chunk-plan byte, then the stream --------------------------------------
hello = {"event": "hello", "module": "camera", "protocol": 1, "version": "0.1.0",
         "capabilities": ["snapshot", "preview"]}
lines = [
    json.dumps(hello),
    '{"id":12,"cmd":"start_recording","args":{"trial":1,"start_at_mono_ns":123456789000}}',
    '{"id":12,"ok":true,"result":{"files":["trial_001.mp4"]}}',
    '{"id":13,"ok":false,"error":{"code":"bad_state","message":"not recording"}}',
    '{"event":"stats","frames":300,"drops":0,"queue_depth":2,"bytes_written":1048576,"last_mono_ns":99}',
    '{"event":"log","level":"info","message":"caf\\u00e9 \\ud83d\\ude00"}',
]
stream = "\n".join(lines) + "\n"
write("ndjson_framing", "protocol-whole", b"\x00" + stream.encode())
write("ndjson_framing", "protocol-bytewise-crlf", b"\x01" + stream.replace("\n", "\r\n").encode())
write("ndjson_framing", "protocol-chunks", b"\x07" + stream.encode())
write("ndjson_framing", "malformed", b"\x03" + b'not json\n[1,2,3]\n{"id":"x","cmd":"status"}\n'
      b'{"cmd":"status"}\n{"id":1,"cmd":7}\n{"id":1,"cmd":"s","args":[]}\n{"ok":1}\n{"event":5}\n'
      b'{"id":1.5,"ok":true}\n{"x":1}\n\n\r\n{"event":"\xff\xfe bad utf8"}\n')
write("ndjson_framing", "overlong-small-bound", b"\x85" + b'{"event":"' + b"x" * 200 + b'"}\n{"event":"ok"}\n')
write("ndjson_framing", "big-ids", b"\x00" + b'{"id":9223372036854775807,"cmd":"status"}\n'
      b'{"id":18446744073709551615,"ok":true}\n{"id":-9223372036854775808,"ok":false}\n')

# ---- psync: chunk-plan byte (top 3 bits the LED channel), then the serial stream -------------
pico = [
    "HELLO 0 7000000000 proto=1 fw=1.0.0 board=pico_w boot=0000beef uid=e66038b713a4",
    "HB 1 7000100000 up=7000 led=0 drop=0",
]
seq, t = 2, 7000200000
for burst in range(4):
    for i in range(4):
        pico.append("PONG %d %d %d %d" % (seq, 4 * burst + i + 1, t, t + 40))
        seq, t = seq + 1, t + 2000
    t += 1000000
pico += [
    "ACK %d %d idle1" % (seq, t),
    "LED %d %d 0 1 id=t1on" % (seq + 1, t + 10),
    "ERR %d %d t2code 4 range" % (seq + 2, t + 20),
    "LOG %d %d warn late id=t1code us=1200" % (seq + 3, t + 30),
    "LOG %d %d info  spaces  kept  " % (seq + 4, t + 40),
    "XYZZY %d %d future=1" % (seq + 5, t + 50),
    "HB %d %d up=7005 led=1 drop=3" % (seq + 6, t + 60),
]
serial = "\n".join(pico) + "\n"
write("psync", "session", b"\x00" + serial.encode())
write("psync", "session-crlf-bytewise", b"\x01" + serial.replace("\n", "\r\n").encode())
write("psync", "session-chunks-channel1", bytes([0x20 | 9]) + serial.encode())
write("psync", "reboot-and-wrap", b"\x00" + (
    "HELLO 0 5 proto=1 fw=1.0.0 board=pico_w boot=00000001 uid=1\n"
    "HB 4294967295 10 up=1 led=0 drop=0\nHB 1 20 up=1 led=0 drop=0\nHB 7 30\n"
    "HELLO 0 5 proto=1 fw=1.0.0 board=pico_w boot=00000002 uid=1\nHB 1 40\n").encode())
write("psync", "garbage-and-prompt", b"\x05" + b"\x00\xff garbage\nHELLO 0 x proto=1 boot=b\n"
      b"PONG 1 nonce-too-long-for-psync 1 2\nLED 1 2 256 1\nHB 1 2 up=-1\n" + b"A" * 200 +
      b"\nMicroPython v1.22\r\n>>> ")
write("psync", "huge-times", b"\x00" + (
    "HELLO 0 18446744073709551615 proto=1 fw=1 board=b boot=ff uid=1\n"
    "PONG 1 1 18446744073709551615 0\nPONG 2 2 9223372036854775807 9223372036854775807\n"
    "PONG 3 3 0 18446744073709551615\nPONG 4 4 1 1\nLED 5 18446744073709551615 0 1\n").encode())

# ---- config_yaml: the file ----------------------------------------------------------------
for name in ("demo.yaml", "pilogger.yaml"):
    with open(os.path.join(ROOT, "config", name), "rb") as f:
        write("config_yaml", name, f.read())
write("config_yaml", "minimal.yaml", "data_dir: /d\nmodules: {}\n")
write("config_yaml", "eyetracker.yaml",
      "data_dir: /d\nmodules:\n  et:\n    type: eyetracker\n    address: 192.168.1.20:8080\n"
      "    scene: false\n    time_echo_count: 5\n    simulator:\n      offset_s: 3.7\n      loss: 0.1\n")
write("config_yaml", "errors.yaml",
      "data_dir: /d\nmodules:\n  Bad Name:\n    type: camera\n  cam:\n    type: camera\n    width: 15\n"
      "    fps: .nan\n    unknown_key: 1\npico:\n  led_pin: 99\n  emulator: [1, 2]\n")
write("config_yaml", "anchors-and-flow.yaml",
      "base: &b {type: notes, enabled: yes}\ndata_dir: ~/x\nmodules: {n1: *b, n2: {<<: *b}}\n"
      "supervisor: {ack_timeout_ms: 9223372036854775807}\n")
write("config_yaml", "nested.yaml", "data_dir: " + "[" * 64 + "]" * 64 + "\nmodules: {}\n")

# ---- http: chunk-plan byte, options byte, then the server's bytes ---------------------------
phone = {"model": "Phone", "data": {"ip": "192.168.1.20", "port": 8080, "device_id": "abc",
                                    "device_name": "Neon Companion", "battery_level": 87,
                                    "battery_state": "OK", "memory": 12e9, "time_echo_port": 12321}}
hardware = {"model": "Hardware", "data": {"version": "2.0", "glasses_serial": "-1",
                                          "module_serial": "841684"}}
sensors = [{"model": "Sensor", "data": {"sensor": s, "conn_type": "DIRECT", "connected": True,
                                        "ip": "192.168.1.20", "port": 8086, "protocol": "rtsp",
                                        "params": "camera=" + s, "stream_error": False}}
           for s in ("world", "gaze", "imu", "eye_events")]
recording = {"model": "Recording", "data": {"id": "r1", "action": "START", "message": "",
                                            "rec_duration_ns": 5}}
status_body = json.dumps({"message": "Success", "result": [phone, hardware] + sensors + [recording]},
                         separators=(",", ":")).encode()


def http(status, reason, body, extra=b""):
    return (b"HTTP/1.1 %d %s\r\nServer: neon-sim\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n%s\r\n" % (status, reason, len(body), extra)) + body


write("http", "status", b"\x00\x00" + http(200, b"OK", status_body))
write("http", "status-bytewise", b"\x01\x00" + http(200, b"OK", status_body))
write("http", "error-message", b"\x05\x00" + http(400, b"Bad Request",
                                                  b'{"message":"recording already running"}'))
chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
           b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in (status_body[:40], status_body[40:])) +
           b"0\r\n\r\n")
write("http", "status-chunked", b"\x09\x00" + chunked)
write("http", "until-close-http10", b"\x00\x00HTTP/1.0 200 OK\r\n\r\n" + status_body)
write("http", "keepalive-two-answers-small-limit", b"\x03\x03" + http(204, b"No Content", b"") +
      b"HTTP/1.1 100 Continue\n\nHTTP/1.1 200 OK\nContent-Length: 2\n\n{}")
write("http", "bad-lengths", b"\x00\x02HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n"
      b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nx\r\n")
write("http", "odd-status", b"\x00\x02HTTP/1.1 99 Low\r\n\r\nSSH-2.0-OpenSSH\r\n\r\n")
write("http", "weird-status-types", b"\x00\x00" + http(200, b"OK", json.dumps({"result": [
    {"model": "Phone", "data": {"battery_level": "full", "time_echo_port": 1e300, "memory": -1}},
    {"model": "Sensor", "data": {"sensor": "gaze", "conn_type": "DIRECT", "port": 70000.5,
                                 "ip": "[fe80::1]", "params": "a b"}},
    {"model": "Recording", "data": {"action": "START", "id": 5}}, 7, None]}).encode()))

# ---- websocket: chunk-plan byte, then the server's bytes ----------------------------------
ws_head = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
frames = b"".join(neon_sim.ws_frame(1, json.dumps(c, separators=(",", ":")).encode())
                  for c in [phone, recording] + sensors[:1])
write("websocket", "handshake-and-pushes", b"\x00" + ws_head + frames)
write("websocket", "bytewise", b"\x01" + ws_head + frames)
big = json.dumps({"model": "Hardware", "data": {"version": "x" * 70000}}).encode()
write("websocket", "ping-fragments-16-64-bit-lengths", b"\x11" + ws_head +
      neon_sim.ws_frame(9, b"hi") + bytes([0x01, 5]) + b'{"mod' + bytes([0x80, 10]) + b'el":"x"}  ' +
      neon_sim.ws_frame(1, b"[" * 200 + b"]" * 200) + neon_sim.ws_frame(1, big) +
      neon_sim.ws_frame(10, b"") + bytes([0x82, 0x83, 1, 2, 3, 4, 5, 6, 7]) + neon_sim.ws_frame(8, b"\x03\xe8bye"))
write("websocket", "refused", b"\x00HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
write("websocket", "bad-frames", b"\x80" + ws_head + bytes([0x81, 0x7f]) + b"\xff" * 8 +
      bytes([0x00, 0x01, 0x41, 0xc1, 0x00, 0x89, 0x7e, 0x00, 0x80]))

# ---- rtsp: chunk-plan byte, then the server's bytes ---------------------------------------
sps_pps = "Z0LAHtkAUAW7ARAAAAMAEAAAAwPI8WLkgA==,aMuMsg=="
sdp_world = ("v=0\r\no=- 1 1 IN IP4 192.168.1.20\r\ns=Neon Sim world\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\n"
             "a=control:*\r\na=range:npt=0-\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
             "a=fmtp:96 packetization-mode=1; profile-level-id=42C01E; sprop-parameter-sets=%s\r\n"
             "a=framerate:30\r\na=x-dimensions:1600,1200\r\na=control:trackID=0\r\n" % sps_pps).encode()


def rtsp(status, cseq, headers, body=b""):
    head = "RTSP/1.0 %d %s\r\nCSeq: %d\r\nServer: neon-sim\r\n" % (status, "OK" if status == 200 else "Error", cseq)
    for k, v in headers:
        head += "%s: %s\r\n" % (k, v)
    if body or status == 200:
        head += "Content-Length: %d\r\n" % len(body)
    return (head + "\r\n").encode() + body


session = (rtsp(200, 1, [("Public", "OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN")]) +
           rtsp(200, 2, [("Content-Base", "rtsp://192.168.1.20:8086/?camera=world/"),
                         ("Content-Type", "application/sdp")], sdp_world) +
           rtsp(200, 3, [("Transport", "RTP/AVP;unicast;client_port=20000-20001;server_port=40000-40001;ssrc=1234ABCD"),
                         ("Session", "5F2A9C01;timeout=60")]) +
           rtsp(200, 4, [("Session", "5F2A9C01"), ("Range", "npt=0.000-"),
                         ("RTP-Info", "url=rtsp://192.168.1.20:8086/?camera=world;seq=1;rtptime=0")]) +
           rtsp(405, 5, []))
write("rtsp", "world-session", b"\x00" + session)
write("rtsp", "world-session-bytewise", b"\x01" + session)
gaze_sdp = ("v=0\nm=application 0 RTP/AVP 99\na=rtpmap:99 com.pupillabs.gaze1/90000\n"
            "a=control:rtsp://192.168.1.20:8086/?camera=gaze/trackID=0\n").encode()
write("rtsp", "gaze-lf-stale-cseq", b"\x0b" + rtsp(200, 7, []) + rtsp(200, 1, []) +
      rtsp(200, 2, [("Content-Location", "rtsp://h/x")], gaze_sdp) +
      rtsp(200, 3, [("Session", " ;timeout=99999999999")]))
write("rtsp", "failures", b"\x00" + rtsp(200, 1, []) + rtsp(200, 2, [], b"v=0\r\nm=video 0 RTP/AVP 96\r\n") +
      rtsp(454, 3, []))

# ---- sdp: the text -------------------------------------------------------------------------
write("sdp", "world.sdp", sdp_world)
write("sdp", "gaze.sdp", gaze_sdp)
write("sdp", "lenient.sdp", b"garbage\nm=audio\na=rtpmap:xx\na=fmtp:96 ;;=;a=b=c\nm=video 0 RTP/AVP 96 97\n"
      b"a=rtpmap:96 H264/90000/2\na=fmtp:96 SPROP-PARAMETER-SETS=Z0LAHtkA,,aMuMsg==\na=control:/track1\n")
write("sdp", "base64-edges", b"a=fmtp:96 sprop-parameter-sets=Zg=,Zm8=,Zm9v,Zg==x,====,Z\n")

# ---- rtp: u32 clock rate, depth byte, then records ------------------------------------------


def rtp_packet(seq, ts, payload, pt=99, marker=True, csrc=0, ext=b"", pad=0):
    first = 0x80 | (0x10 if ext else 0) | (0x20 if pad else 0) | csrc
    out = struct.pack(">BBHII", first, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, 0x1234ABCD)
    out += b"\x00\x00\x00\x01" * csrc
    if ext:
        out += struct.pack(">HH", 0xBEDE, len(ext) // 4) + ext
    out += payload
    if pad:
        out += b"\x00" * (pad - 1) + bytes([pad])
    return out


def sender_report(rtp_ts, ntp_s=3913056000, frac=0x80000000):
    return struct.pack(">BBHIIIIII", 0x80, 200, 6, 0x1234ABCD, ntp_s, frac, rtp_ts, 10, 1000)


gaze9 = struct.pack(">ffB", 800.0, 600.0, 255)
rtp = struct.pack(">IB", 90000, 32)
rtp += b"\x01" + record(sender_report(0) + struct.pack(">BBHI", 0x81, 202, 1, 0x1234ABCD))
for seq in [65533, 65534, 1, 0, 65535, 2, 2, 5, 3, 40000]:
    rtp += bytes([4 << 2]) + record(rtp_packet(seq, seq * 450, gaze9))
rtp += bytes([(60 << 2) | 2])
write("rtp", "gaze-wrap-reorder", rtp)
write("rtp", "header-variants", struct.pack(">IB", 1, 0) +
      b"\x00" + record(rtp_packet(1, 0, gaze9, csrc=2, ext=b"\x00" * 8, pad=4)) +
      b"\x00" + record(rtp_packet(2, 0, b"", pad=1)) +
      b"\x00" + record(b"\x80\x60\x00\x03" + b"\x00" * 8) +
      b"\x00" + record(b"\x90\x60\x00\x04" + b"\x00" * 8 + b"\x00\x00\xff\xff") +
      b"\x01" + record(sender_report(0xFFFFFFFF, ntp_s=0x7FFFFFFF, frac=0xFFFFFFFF)) +
      b"\x00" + record(rtp_packet(5, 0x7FFFFFFF, gaze9)) +
      b"\x01" + record(b"\x80\xc8\xff\xff"))

# ---- h264: flags byte, then records (flags, u16 length, payload) -----------------------------
sps = bytes.fromhex("6742c01ed900500bb01100000300100000030f20f162e480")
pps = bytes.fromhex("68cb8cb2")
idr = bytes([0x65]) + bytes(range(256)) * 16
stap = bytes([0x18]) + struct.pack(">H", len(sps)) + sps + struct.pack(">H", len(pps)) + pps
h264 = b"\x00"
for i, payload in enumerate([stap] + neon_sim.h264_payloads([idr])):
    h264 += bytes([0]) + record(payload)
h264 = h264[:-len(record(payload)) - 1] + bytes([1]) + record(payload)  # marker on the last
h264 += bytes([4 | 1]) + record(bytes([0x41]) + b"\x9a" * 100)
write("h264", "stap-fu-idr-then-p", h264)
fu = neon_sim.h264_payloads([idr])
write("h264", "lost-fragment-and-malformed", b"\x01" + bytes([4]) + record(fu[0]) + bytes([2]) + record(fu[2]) +
      bytes([4]) + record(b"") + bytes([0]) + record(b"\x19\x00") + bytes([0]) + record(b"\x18\x00\x05ab") +
      bytes([0]) + record(b"\x9c\x85ab") + bytes([0]) + record(b"\x7c\x41zz") + bytes([1]) + record(b"\x5c\x05"))

# ---- neon_payloads: records (type, u16 length, body) ---------------------------------------
layouts = {}
for layout in (9, 17, 25, 65, 89, 105):
    fmt = neon_sim.GAZE_STRUCTS[layout]
    vals = []
    for code in fmt.format.lstrip(">!"):
        vals.append(255 if code == "B" else 1.5)
    layouts[layout] = fmt.pack(*vals)
payloads = b"".join(b"\x00" + record(p) for p in layouts.values())
dev = 1_700_000_000_000_000_000
payloads += b"\x01" + record(neon_sim.eye_event_payload(1, (1, 2, (1, 2), (3, 4), (5, 6), 7.0, 8.0, 9.0, 10.0), dev))
payloads += b"\x01" + record(neon_sim.eye_event_payload(2, (5,), dev))
payloads += b"\x01" + record(neon_sim.eye_event_payload(4, (5, 6), dev))
payloads += b"\x01" + record(neon_sim.eye_event_payload(5, (), dev) + b"extra")
payloads += b"\x02" + record(neon_sim.imu_payload(dev, (0.0, 0.0, 1.0), (0.5, -0.5, 0.0), (1.0, 0.0, 0.0, 0.0)))
write("neon_payloads", "every-payload", payloads)


def burst(first_index, phone_minus_host_ms, rtts):
    body = b""
    for i, rtt in enumerate(rtts):
        host_ms = 1_700_000_000_000 + 10 * (first_index + i)
        body += bytes([rtt]) + struct.pack(">qq", host_ms, host_ms + phone_minus_host_ms)
    return b"\x03" + record(body)


echo = b"".join(burst(5 * k, 3700, [3, 1, 9, 2, 4]) for k in range(6)) + payloads
write("neon_payloads", "time-echo-then-payloads", echo)
write("neon_payloads", "extreme-times", burst(0, 0, [1]) +
      b"\x01" + record(struct.pack(">iqq", 4, -2**63, 2**63 - 1)) +
      b"\x02" + record(b"\x08" + b"\xff" * 9 + b"\x01") +
      b"\x03" + record(b"\x01" + struct.pack(">qq", 1_700_000_000_010, 2**63 - 1)))
write("neon_payloads", "imu-wire-types", b"\x02" + record(
    b"\x08\x01\x12\x05\x0d\x00\x00\x80\x3f\x19" + b"\x00" * 8 + b"\x22\x00\x2a\x01\x00\x30\x05"))
# ---- module_line: chunk-plan byte, then a module's stdout ----------------------------------
module_out = "\n".join(json.dumps(m, separators=(",", ":")) for m in [
    {"event": "hello", "protocol": 1, "version": "0.3.0", "type": "camera", "capabilities": ["record", "snapshot"]},
    {"id": 1, "ok": True, "result": {"state": "ready"}},
    {"event": "state", "state": "recording"},
    {"event": "stats", "fps": 30.0, "frames": 901, "dropped": 0, "queue": {"depth": 1, "max": 4}},
    {"event": "warning", "message": "exposure clipped"},
    {"event": "error", "message": "device gone", "code": "device_lost"},
    {"event": "log", "message": "Zo\u00eb \u2713"},
    {"event": "device", "name": "neon", "connected": True},
    {"id": 2, "ok": False, "error": {"code": "busy", "message": "recording"}},
]) + "\n"
write("module_line", "session", b"\x00" + module_out.encode())
write("module_line", "session-bytewise-crlf", b"\x01" + module_out.replace("\n", "\r\n").encode())
write("module_line", "wrong-types", b"\x05" + b'{"event":"warning","message":42}\n{"event":"hello","protocol":"1"}\n'
      b'{"id":3,"ok":false,"error":{"code":5}}\n{"id":4,"ok":"yes"}\n{"event":"session","active":true}\n'
      b'{"event":"stats","deep":[[[[[[[[[1]]]]]]]]]}\n{"event":"hello","protocol":1,"version":"x",'
      b'"capabilities":[1]}\n\xff\xfe\n{"id":18446744073709551616,"ok":true}\n')

# ---- control_request: chunk-plan byte, then a client's lines -------------------------------
requests = "\n".join(json.dumps(r, separators=(",", ":")) for r in [
    {"id": 1, "cmd": "status"},
    {"id": 2, "cmd": "session_start", "args": {"label": "drive 3"}},
    {"id": 3, "cmd": "trial_start", "args": {"label": "baseline"}},
    {"id": 4, "cmd": "note", "args": {"text": "left turn", "mono_ns": 123456789}},
    {"id": 5, "cmd": "module_command", "args": {"name": "cam0", "cmd": "snapshot", "args": {}}},
    {"id": 6, "cmd": "module_restart", "args": {"name": "*"}},
    {"id": 7, "cmd": "subscribe"},
    {"id": 8, "cmd": "trial_stop"},
    {"id": 9, "cmd": "session_stop"},
    {"id": 10, "cmd": "shutdown"},
]) + "\n"
write("control_request", "session", b"\x00" + requests.encode())
write("control_request", "session-chunks", b"\x09" + requests.encode())
write("control_request", "wrong-types", b"\x03" + b'{"id":1,"cmd":5}\n{"id":2,"cmd":"note","args":{"text":7}}\n'
      b'{"id":3,"cmd":"trial_start","args":{"label":["x"]}}\n{"id":4,"cmd":"module_command","args":'
      b'{"name":"cam0","cmd":"x","args":[1]}}\n{"id":5,"cmd":"note","args":{"text":"a","mono_ns":-1}}\n'
      b'{"id":"6","cmd":"status"}\n{"id":7,"cmd":"status","args":"x"}\n{"id":8,"cmd":"nope"}\n')

print("seeds written under", os.path.join(HERE, "corpus"))

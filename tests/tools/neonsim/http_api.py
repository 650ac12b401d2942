"""The HTTP API with its WebSocket, and Time Echo."""
import asyncio
import base64
import hashlib
import json
import struct
import time
import uuid

from .messages import MAX_BODY, ProtocolError, read_message, ws_frame, ws_unmask
from .rtp import KINDS

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B65"
HTTP_REASONS = {101: "Switching Protocols", 200: "OK", 400: "Bad Request", 404: "Not Found",
                405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large",
                426: "Upgrade Required", 431: "Request Header Fields Too Large",
                500: "Internal Server Error", 501: "Not Implemented"}


class HttpApi:
    """Sim's HTTP, WebSocket and Time Echo servers."""

    def phone_component(self):
        b = self.battery
        mem = int(self.args.memory_gb * 1e9)
        return {"model": "Phone", "data": {
            "ip": self.args.host, "port": self.ports["http"], "device_id": self.device_id,
            "device_name": self.args.device_name, "battery_level": b,
            "battery_state": "OK" if b >= 15 else ("LOW" if b >= 5 else "CRITICAL"),
            "memory": mem, "memory_state": "OK" if mem >= 2e9 else (
                "LOW" if mem >= 0.5e9 else "CRITICAL"),
            "time_echo_port": self.ports["time_echo"]}}

    def recording_component(self, action, rec_id, duration_ns):
        return {"model": "Recording", "data": {"id": rec_id, "action": action, "message": "",
                                               "rec_duration_ns": duration_ns}}

    def status_components(self):
        host = self.args.host
        comps = [self.phone_component(),
                 {"model": "Hardware", "data": {
                     "version": "2.0", "glasses_serial": "-1", "world_camera_serial": "-1",
                     "module_serial": self.module_serial}}]
        for sensor in ("gaze", "world"):   # the real phone lists these too; not served here
            comps.append({"model": "Sensor", "data": {
                "sensor": sensor, "conn_type": "WEBSOCKET", "connected": True, "ip": host,
                "port": 8686, "protocol": "websocket", "params": "camera=" + sensor,
                "stream_error": False}})
        for sensor in KINDS:
            ok = sensor != "world" or self.scene.error is None
            comps.append({"model": "Sensor", "data": {
                "sensor": sensor, "conn_type": "DIRECT", "connected": ok, "ip": host,
                "port": self.ports["rtsp"], "protocol": "rtsp", "params": "camera=" + sensor,
                "stream_error": not ok}})
        if self.recording:
            rec_id, start = self.recording
            comps.append(self.recording_component("START", rec_id,
                                                  time.monotonic_ns() - start))
        return comps

    def ws_push(self, comp):
        frame = ws_frame(1, json.dumps(comp, separators=(",", ":")).encode())
        for w in list(self.ws_clients):
            try:
                w.write(frame)
            except Exception:
                self.ws_clients.discard(w)

    # ---- HTTP -----------------------------------------------------------

    def http_response(self, status, obj, keep_alive, extra=""):
        body = json.dumps(obj, separators=(",", ":")).encode() if obj is not None else b""
        head = ("HTTP/1.1 %d %s\r\nServer: neon-sim\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\nConnection: %s\r\n%s\r\n" % (
                    status, HTTP_REASONS.get(status, "Error"), len(body),
                    "keep-alive" if keep_alive else "close", extra))
        return head.encode() + body

    async def handle_http(self, reader, writer):
        self.conns.add(writer)
        try:
            while True:
                try:
                    msg = await read_message(reader, allow_chunked=True, writer=writer)
                except ProtocolError as e:
                    writer.write(self.http_response(e.status, {"message": str(e)}, False))
                    break
                if msg is None:
                    break
                start, headers, body = msg
                parts = start.split()
                if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                    writer.write(self.http_response(400, {"message": "bad request line"}, False))
                    break
                method, target, version = parts
                conn_hdr = headers.get("connection", "").lower()
                keep = ("close" not in conn_hdr) if version == "HTTP/1.1" else (
                    "keep-alive" in conn_hdr)
                path = target.split("?", 1)[0]
                if path.startswith("http://"):
                    path = "/" + path.split("/", 3)[-1]
                if (path == "/api/status" and method == "GET"
                        and "websocket" in headers.get("upgrade", "").lower()):
                    await self.websocket(reader, writer, headers)
                    return
                status, obj = self.route(method, path, body)
                writer.write(self.http_response(status, obj, keep))
                await writer.drain()
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            await self.close_writer(writer)

    async def close_writer(self, writer):
        self.conns.discard(writer)
        self.ws_clients.discard(writer)
        try:
            writer.close()
            await writer.wait_closed()
        except Exception:
            pass

    def route(self, method, path, body):
        if path in ("/api/status", "/api/status/"):
            if method != "GET":
                return 405, {"message": "Method not allowed"}
            return 200, {"message": "Success", "result": self.status_components()}
        posts = {"/api/recording:start": self.rec_start,
                 "/api/recording:stop_and_save": self.rec_stop,
                 "/api/recording:cancel": self.rec_cancel,
                 "/api/event": self.post_event}
        if path in posts:
            if method != "POST":
                return 405, {"message": "Method not allowed"}
            return posts[path](body)
        return 404, {"message": "Not found: %s" % path}

    def rec_start(self, _body):
        if self.recording:
            return 500, {"message": "already recording"}
        rec_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        dev, mono = self.clock.now()
        self.recording = (rec_id, mono)
        self.truth.obj(kind="recording", action="start", id=rec_id, device_ns=dev, mono_ns=mono)
        self.ws_push(self.recording_component("START", rec_id, 0))
        return 200, {"message": "Recording started", "result": {"id": rec_id}}

    def _rec_end(self, action, pushes, message):
        if not self.recording:
            return 500, {"message": "not recording"}
        rec_id, start = self.recording
        dev, mono = self.clock.now()
        self.recording = None
        dur = mono - start
        self.truth.obj(kind="recording", action=action, id=rec_id, device_ns=dev, mono_ns=mono)
        for a in pushes:
            self.ws_push(self.recording_component(a, rec_id, dur))
        result = {"id": rec_id}
        if action == "stop_and_save":
            result["rec_duration_ns"] = dur
        return 200, {"message": message, "result": result}

    def rec_stop(self, _body):
        return self._rec_end("stop_and_save", ("STOP", "SAVE"), "Recording stopped and saved")

    def rec_cancel(self, _body):
        return self._rec_end("cancel", ("DISCARD",), "Recording cancelled")

    def post_event(self, body):
        try:
            req = json.loads(body.decode("utf-8")) if body else None
        except (ValueError, UnicodeDecodeError):
            return 400, {"message": "body is not JSON"}
        if not isinstance(req, dict) or not isinstance(req.get("name"), str):
            return 400, {"message": "expected {\"name\": str, \"timestamp\": int}"}
        dev, mono = self.clock.now()
        ts = req.get("timestamp")
        if ts is None:
            ts = dev
        elif isinstance(ts, bool) or not isinstance(ts, (int, float)):
            return 400, {"message": "timestamp must be an integer (unix ns)"}
        ts = int(ts)
        rec_id = self.recording[0] if self.recording else None
        self.truth.obj(kind="api_event", name=req["name"], timestamp=ts, recording_id=rec_id,
                       device_ns=dev, mono_ns=mono)
        result = {"name": req["name"], "recording_id": rec_id, "timestamp": ts}
        self.ws_push({"model": "Event", "data": result})
        return 200, {"message": "Event sent.", "result": result}

    # ---- WebSocket ------------------------------------------------------

    async def websocket(self, reader, writer, headers):
        key = headers.get("sec-websocket-key")
        if headers.get("sec-websocket-version") != "13" or not key:
            writer.write(self.http_response(426 if key else 400,
                                            {"message": "WebSocket version 13 required"},
                                            False, "Sec-WebSocket-Version: 13\r\n"))
            return
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept).encode())
        for comp in self.status_components():
            writer.write(ws_frame(1, json.dumps(comp, separators=(",", ":")).encode()))
        self.ws_clients.add(writer)
        await writer.drain()
        while True:
            b0, b1 = await reader.readexactly(2)
            opcode = b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", await reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await reader.readexactly(8))[0]
            if not b1 & 0x80:
                writer.write(ws_frame(8, struct.pack("!H", 1002) + b"unmasked frame"))
                return
            if n > MAX_BODY:
                writer.write(ws_frame(8, struct.pack("!H", 1009)))
                return
            mask = await reader.readexactly(4)
            payload = ws_unmask(mask, await reader.readexactly(n))
            if opcode == 8:
                writer.write(ws_frame(8, payload[:2]))
                await writer.drain()
                return
            if opcode == 9:
                writer.write(ws_frame(10, payload[:125]))
                await writer.drain()

    # ---- Time Echo --------------------------------------------------------

    async def handle_time_echo(self, reader, writer):
        self.conns.add(writer)
        try:
            while True:
                t1 = await reader.readexactly(8)
                writer.write(t1 + struct.pack(">Q", self.clock.device_ns() // 1_000_000))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            await self.close_writer(writer)

"""The simulator: listeners, connections, disconnects and shutdown."""
import asyncio
import json
import os
import random
import signal
import sys
import time

from .clock import Clock, Truth, log
from .http_api import HttpApi
from .messages import MAX_LINE
from .payloads import EyeModel, ImuModel
from .producers import Producers
from .rtp import KINDS
from .rtsp import RtspServer
from .scene import SceneSource


class Sim(HttpApi, RtspServer, Producers):
    """The simulated phone; its servers and producers are the mixins."""

    def __init__(self, args):
        self.args = args
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
        self.seed = seed
        self.rng = random.Random(seed)
        self.clock = Clock(int(round(args.offset_s * 1e9)), args.skew_ppm)
        self.truth = Truth(args.truth)
        self.loss = args.loss
        self.reorder = args.reorder
        self.device_id = "%016x" % self.rng.getrandbits(64)
        self.module_serial = "%06d" % self.rng.randrange(10**6)
        self.cname = ("neon-sim-%s@%s" % (self.device_id[:8], args.host)).encode()[:255]
        self.battery = max(0, min(100, args.battery))
        self.recording = None       # (id, start_mono_ns)
        self.ports = {"http": args.http_port, "rtsp": args.rtsp_port,
                      "time_echo": args.time_echo_port}
        self.servers = []
        self.conns = set()          # StreamWriters of every open TCP connection
        self.ws_clients = set()
        self.sessions = {}
        self.playing = {k: [] for k in KINDS}
        self.producers = {}
        self.ffmpeg = set()
        self.down = False
        self.send_errors = 0
        self.scene = SceneSource(args)
        self.scene_ready = None
        self.stop_event = None
        t0 = time.monotonic_ns()
        self.eye = EyeModel(random.Random(seed ^ 0x5EED), args.eye_event_interval_s, t0)
        self.imu = ImuModel(random.Random(seed ^ 0x1D), t0)
        self.encoder_runs = 0
        self.bg_tasks = set()
        self.reapers = set()
        self.reaping = set()

    # ---- lifecycle ------------------------------------------------------

    async def run(self):
        loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        # SPS/PPS for the SDP: a one-frame encode in a thread; only world
        # DESCRIBE/SETUP wait for it.
        self.scene_ready = loop.create_task(asyncio.to_thread(self.scene.probe))
        await self.open_listeners(first=True)
        self.write_port_file()
        self.announce()
        dev, mono = self.clock.now()
        self.truth.obj(kind="start", mono_ns=mono, device_ns=dev, offset_ns=self.clock.offset_ns,
                       seed=self.seed, ports=self.ports, pid=os.getpid(),
                       gaze_layout=self.args.gaze_layout, scene=[self.scene.w, self.scene.h],
                       scene_fps=self.args.scene_fps)
        self.scene_ready.add_done_callback(lambda _: self.truth.obj(
            kind="scene", sps=self.scene.sps.hex() if self.scene.sps else None,
            pps=self.scene.pps.hex() if self.scene.pps else None,
            drawtext=self.scene.drawtext, error=self.scene.error))
        self.truth.flush()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        loop.add_signal_handler(signal.SIGUSR1, lambda: self.spawn(self.disconnect("SIGUSR1")))
        self.spawn(self.flush_loop())
        self.spawn(self.watchdog_loop())
        self.spawn(self.battery_loop())
        if self.args.disconnect_at_s is not None:
            loop.call_later(self.args.disconnect_at_s,
                            lambda: self.spawn(self.disconnect("disconnect-at")))
        log("listening on %s: http %d rtsp %d time_echo %d (pid %d)" % (
            self.args.host, self.ports["http"], self.ports["rtsp"], self.ports["time_echo"],
            os.getpid()))
        await self.stop_event.wait()
        await self.shutdown()

    def spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self.bg_tasks.add(task)
        task.add_done_callback(self.bg_tasks.discard)
        return task

    async def shutdown(self):
        self.close_listeners()
        self.drop_everything()
        tasks = list(self.producers.values()) + list(self.bg_tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.reap_ffmpeg()
        self.truth.close()

    def reap(self, proc):
        """Kill ffmpeg and collect it (reading its stdout to EOF closes the pipe)."""
        if proc in self.reaping:
            return
        self.reaping.add(proc)
        try:
            proc.kill()
        except ProcessLookupError:
            pass

        async def collect():
            try:
                await asyncio.wait_for(proc.communicate(), 3.0)
            except Exception:
                pass
            self.ffmpeg.discard(proc)
            self.reaping.discard(proc)
        task = asyncio.get_running_loop().create_task(collect())
        self.reapers.add(task)
        task.add_done_callback(self.reapers.discard)

    async def reap_ffmpeg(self):
        for p in list(self.ffmpeg):
            self.reap(p)
        if self.reapers:
            await asyncio.gather(*list(self.reapers), return_exceptions=True)

    async def open_listeners(self, first=False):
        handlers = {"http": self.handle_http, "rtsp": self.handle_rtsp,
                    "time_echo": self.handle_time_echo}
        self.servers = []
        for name in ("http", "rtsp", "time_echo"):
            deadline = time.monotonic() + (0 if first else 10)
            while True:
                try:
                    srv = await asyncio.start_server(handlers[name], self.args.host,
                                                     self.ports[name], reuse_address=True,
                                                     limit=MAX_LINE + 2)
                    break
                except OSError as e:
                    if first or time.monotonic() > deadline:
                        raise
                    log("reopen %s port %d: %s; retrying" % (name, self.ports[name], e))
                    await asyncio.sleep(0.2)
            self.ports[name] = srv.sockets[0].getsockname()[1]
            self.servers.append(srv)

    def close_listeners(self):
        for srv in self.servers:
            srv.close()
        self.servers = []

    def write_port_file(self):
        if not self.args.port_file:
            return
        path = self.args.port_file
        tmp = "%s.tmp.%d" % (path, os.getpid())
        with open(tmp, "w") as f:
            json.dump(dict(self.ports, pid=os.getpid()), f)
            f.write("\n")
        os.replace(tmp, path)

    def announce(self):
        """--announce: the module runtime's simulator hook reads this one line on stdout as the
        settings the eye tracker module gets (where to connect)."""
        if not self.args.announce:
            return
        sys.stdout.write(json.dumps({"address": self.args.host, "port": self.ports["http"]}) + "\n")
        sys.stdout.flush()

    def drop_everything(self):
        for w in list(self.conns):
            try:
                w.transport.abort()
            except Exception:
                pass
        self.conns.clear()
        self.ws_clients.clear()
        for s in list(self.sessions.values()):
            self.end_session(s, "closed")

    async def disconnect(self, reason):
        if self.down or self.stop_event.is_set():
            log("disconnect (%s) ignored: already down" % reason)
            return
        self.down = True
        self.truth.obj(kind="disconnect", mono_ns=time.monotonic_ns(), reason=reason)
        log("disconnect (%s) for %.3f s" % (reason, self.args.down_for_s))
        self.close_listeners()
        self.drop_everything()
        await asyncio.sleep(0)
        await self.reap_ffmpeg()
        await asyncio.sleep(self.args.down_for_s)
        if self.stop_event.is_set():
            return
        await self.open_listeners()
        self.down = False
        self.truth.obj(kind="reconnect", mono_ns=time.monotonic_ns(), reason=reason)
        self.write_port_file()
        log("reconnected")

    async def flush_loop(self):
        while True:
            await asyncio.sleep(0.5)
            self.truth.flush()

    async def watchdog_loop(self):
        timeout = int(self.args.session_timeout_s * 1e9)
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic_ns()
            for s in list(self.sessions.values()):
                if now - s.last_activity > timeout:
                    log("session %s (%s) timed out" % (s.id, s.kind))
                    self.end_session(s, "timeout")

    async def battery_loop(self):
        while True:
            await asyncio.sleep(self.args.battery_drain_s)
            if self.battery > 0:
                self.battery -= 1
                self.ws_push(self.phone_component())

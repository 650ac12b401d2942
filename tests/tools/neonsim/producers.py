"""The streams' producers: gaze, IMU, eye events and the scene video."""
import asyncio
import heapq
import subprocess
import time

from .clock import jbool, log
from .payloads import eye_event_payload, imu_payload
from .rtp import KINDS, sleep_until
from .scene import AnnexBSplitter, h264_payloads, set_pdeathsig


class Producers:
    """Sim's producers, one task per stream kind while anyone plays it."""

    def update_producers(self):
        for kind in KINDS:
            task = self.producers.get(kind)
            if self.playing[kind] and (task is None or task.done()):
                coro = {"gaze": self.gaze_producer, "imu": self.imu_producer,
                        "eye_events": self.eye_event_producer,
                        "world": self.world_producer}[kind]()
                self.producers[kind] = asyncio.get_running_loop().create_task(coro)
            elif not self.playing[kind] and task is not None:
                task.cancel()
                del self.producers[kind]

    async def periodic(self, hz, step):
        """Call step(device_ns, mono_ns) for every tick of an absolute hz grid on
        CLOCK_MONOTONIC. A sample is stamped with its tick (like a sensor's
        capture time) and sent when the loop gets there: late ticks are caught
        up, unless the loop stalled for over 0.25 s (then the source skips)."""
        period = max(1, int(round(1e9 / hz)))
        stall = max(250_000_000, 5 * period)
        t = time.monotonic_ns()
        while True:
            dev, mono = self.clock.now()
            if mono - t > stall:
                t += ((mono - t) // period) * period
            off = dev - mono
            while t <= mono:
                step(t + off, t)
                t += period
            await sleep_until(t)

    async def gaze_producer(self):
        layout = self.args.gaze_layout
        truth = self.truth
        sessions = self.playing["gaze"]

        def step(dev, mono):
            payload = self.eye.sample(mono, layout)
            for s in sessions:
                seq, sent = s.send(payload, dev)
                truth.line('{"kind":"gaze","session":"%s","seq":%d,"device_ns":%d,'
                           '"mono_ns":%d,"sent":%s}\n' % (s.id, seq, dev, mono, jbool(sent)))
        await self.periodic(self.args.gaze_hz, step)

    async def imu_producer(self):
        truth = self.truth
        sessions = self.playing["imu"]

        def step(dev, mono):
            accel, gyro, quat = self.imu.sample(mono)
            payload = imu_payload(dev, accel, gyro, quat)
            for s in sessions:
                seq, sent = s.send(payload, dev)
                truth.line('{"kind":"imu","session":"%s","seq":%d,"device_ns":%d,'
                           '"mono_ns":%d,"sent":%s}\n' % (s.id, seq, dev, mono, jbool(sent)))
        await self.periodic(self.args.imu_hz, step)

    async def eye_event_producer(self):
        sessions = self.playing["eye_events"]
        eye = self.eye
        keepalive = 1_000_000_000
        now = time.monotonic_ns()
        eye.ensure(now)
        while eye.events and eye.events[0][0] < now:
            heapq.heappop(eye.events)
        last_sent = now

        def emit(etype, fields):
            dev, mono = self.clock.now()
            payload = eye_event_payload(etype, fields, dev - mono)
            start_ns = end_ns = None
            if etype in (0, 1, 4):
                start_ns, end_ns = fields[0] + dev - mono, fields[1] + dev - mono
            elif etype in (2, 3):
                start_ns = fields[0] + dev - mono
            for s in sessions:
                seq, sent = s.send(payload, dev)
                self.truth.obj(kind="eye_event", session=s.id, seq=seq, type=etype,
                               start_ns=start_ns, end_ns=end_ns, device_ns=dev, mono_ns=mono,
                               sent=sent)
            return mono

        while True:
            now = time.monotonic_ns()
            eye.ensure(now)
            while eye.events and eye.events[0][0] <= now:
                _, _, etype, fields = heapq.heappop(eye.events)
                last_sent = emit(etype, fields)
            if now - last_sent >= keepalive:
                last_sent = emit(5, ())
            nxt = last_sent + keepalive
            if eye.events:
                nxt = min(nxt, eye.events[0][0])
            await sleep_until(nxt)

    async def world_producer(self):
        while True:
            try:
                await self.run_encoder()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log("scene encoder: %r" % (e,))
            await asyncio.sleep(1.0)   # ffmpeg died: restart while anyone watches

    async def run_encoder(self):
        sessions = self.playing["world"]
        self.encoder_runs += 1
        run = self.encoder_runs
        proc = await asyncio.create_subprocess_exec(
            *self.scene.cmd(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            preexec_fn=set_pdeathsig, limit=1 << 18)
        self.ffmpeg.add(proc)
        period = 1e9 / self.args.scene_fps
        splitter = AnnexBSplitter()
        pending = []
        index = 0
        next_t = None
        keep = {1, 5} | ({7, 8} if self.scene.inband else set())
        checked_sps = False
        try:
            while True:
                while not pending:
                    chunk = await proc.stdout.read(1 << 16)
                    if not chunk:
                        raise RuntimeError("ffmpeg ended (exit %s)" % (await proc.wait()))
                    splitter.feed(chunk, pending)
                au = pending.pop(0)
                if not checked_sps:
                    sps = [n for n in au if n[0] & 0x1F == 7]
                    if sps and sps[0] != self.scene.sps:
                        log("warning: encoder SPS differs from the SDP's")
                    checked_sps = True
                nals = [n for n in au if n[0] & 0x1F in keep]
                if not nals:
                    continue
                now = time.monotonic_ns()
                if next_t is None or now > next_t + period:
                    next_t = now            # first frame, or the encoder fell behind
                else:
                    await sleep_until(int(next_t))
                payloads = h264_payloads(nals)
                key = any(n[0] & 0x1F == 5 for n in nals)
                nbytes = sum(len(p) for p in payloads)
                dev, mono = self.clock.now()
                last = len(payloads) - 1
                for s in sessions:
                    first_seq = s.seq
                    all_sent = True
                    for i, p in enumerate(payloads):
                        all_sent &= s.send(p, dev, marker=(i == last))[1]
                    self.truth.line(
                        '{"kind":"frame","session":"%s","seq":%d,"packets":%d,"bytes":%d,'
                        '"index":%d,"run":%d,"keyframe":%s,"device_ns":%d,"mono_ns":%d,'
                        '"sent":%s}\n' % (s.id, first_seq, len(payloads), nbytes, index, run,
                                          jbool(key), dev, mono, jbool(all_sent)))
                index += 1
                next_t += period
        finally:
            self.reap(proc)

# MicroPython entry point for the Pico W sync LED (PSYNC/1 over USB serial).
# Protocol logic lives in psync.py; this file only connects it to the board.
import sys
import os
import time
import select
import binascii
import machine
import micropython

try:
    import asyncio
except ImportError:  # MicroPython before 1.21
    import uasyncio as asyncio

import psync

# ---- configuration ------------------------------------------------------
LED_PINS = (15,)        # GPIO per channel: channel 0 is GPIO 15
PWM_FREQ = 1000         # Hz, used only for levels 2..65535
BOARD = "pico_w"
START_WINDOW_MS = 3000  # Ctrl-C still interrupts this long after boot
IDLE_MS = 10            # longest sleep: bounds the delay of a freshly scheduled at=
SPIN_US = 1500          # edges closer than this are busy-waited for accuracy
RX_CHUNK = 64


class LedChannel:
    """Digital output that switches to PWM for intermediate levels."""

    def __init__(self, gpio):
        self.gpio = gpio
        self.pin = machine.Pin(gpio, machine.Pin.OUT, value=0)
        self.pwm = None

    def value(self, v):
        if self.pwm is not None:
            self.pwm.deinit()
            self.pwm = None
            # Re-initialising hands the pad back from PWM to plain GPIO.
            self.pin = machine.Pin(self.gpio, machine.Pin.OUT, value=v)
        else:
            self.pin.value(v)

    def duty_u16(self, d):
        if self.pwm is None:
            self.pwm = machine.PWM(self.pin)
            self.pwm.freq(PWM_FREQ)
        self.pwm.duty_u16(d)


class UsbSink:
    """Raw (no \\n -> \\r\\n) writes to USB CDC; writable() avoids blocking."""

    def __init__(self):
        self.out = sys.stdout.buffer
        self.poller = select.poll()
        self.poller.register(self.out, select.POLLOUT)

    def writable(self):
        # With the host not reading, a write would block up to 500 ms; report
        # "full" instead so the queue counts the drop.
        return bool(self.poller.poll(0))

    def write(self, data):
        self.out.write(data)


async def rx_task(fw):
    stdin = sys.stdin.buffer  # binary: the text stream turns \r into \n
    stream = asyncio.StreamReader(stdin)
    poller = select.poll()
    poller.register(stdin, select.POLLIN)
    while True:
        chunk = bytearray(await stream.read(1))
        # Drain what already arrived so a whole USB packet is one chunk.
        while len(chunk) < RX_CHUNK and poller.poll(0):
            chunk.extend(stdin.read(1))
        fw.feed(chunk, fw.clock.now())
        fw.flush()


async def tick_task(fw):
    while True:
        wait_us = fw.service()
        fw.flush()
        if wait_us > SPIN_US:
            await asyncio.sleep_ms(min((wait_us - 1000) // 1000, IDLE_MS))
        else:
            if wait_us > 0:
                time.sleep_us(wait_us)
            await asyncio.sleep_ms(0)


async def lock_ctrl_c():
    # Until now a host can still break into a freshly booted board with 0x03;
    # afterwards 0x03 is plain data and cannot kill the firmware.
    await asyncio.sleep_ms(START_WINDOW_MS)
    micropython.kbd_intr(-1)


async def run():
    boot_id = binascii.hexlify(os.urandom(4)).decode()
    uid = binascii.hexlify(machine.unique_id()).decode()
    channels = [LedChannel(g) for g in LED_PINS]
    fw = psync.Firmware(time, channels, UsbSink(), boot_id, uid, board=BOARD)
    fw.start()
    fw.flush()
    asyncio.create_task(lock_ctrl_c())
    asyncio.create_task(rx_task(fw))
    await tick_task(fw)


asyncio.run(run())

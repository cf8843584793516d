"""The RP2040 board: pins, UART, the LCD, ``machine.WDT`` and the asyncio tasks that
drive :class:`~appliance.firmware.panel.Panel`. MicroPython only (imports ``machine``).

Deployed with the package tree (``mpremote cp -r appliance :``) and a ``main.py`` of
``from appliance.firmware.board import run; run()``.

Safe state: the bypass relay is normally-closed, so "engaged" is the coil *off*
(``RELAY`` low). At power-up, and after ``machine.WDT`` resets a hung firmware, the
pins are inputs and the coil is off: the emergency line goes straight through. The
host reset line drives an open-collector transistor: high asserts reset.

The two asyncio tasks report progress in ``_alive``; the scan task feeds the WDT only
while the UART task has run recently, so a hang in either one resets the MCU.

Type-checked against micropython-rp2-stubs (``appliance/firmware/mypy.ini``); on the
project-wide CPython mypy run, ``machine`` is an unknown module and the few
MicroPython-only attributes of ``time``/``asyncio`` carry an ignore for that run.
"""

import asyncio
import random
import time

import machine

from .panel import Panel

# GPIO numbers on the front-panel board (rev A)
UART_ID = 0
UART_TX = 0
UART_RX = 1
BAUD = 115200
RELAY = 2
HOST_RESET = 3
LED_PINS = {"power": 6, "wan": 7, "survivable": 8, "alarm": 9}
BUTTON_PINS = {"page": 14, "drill": 15}  # to ground, internal pull-ups
LCD_RS, LCD_E, LCD_D4 = 16, 17, 18  # D4..D7 on 18..21

WDT_TIMEOUT_MS = 2000
SCAN_MS = 10
UART_POLL_MS = 5
STALL_MS = 500
"""A task that has not run for this long stops the WDT feeding."""

ticks_ms = time.ticks_ms  # type: ignore[attr-defined, unused-ignore]
ticks_diff = time.ticks_diff  # type: ignore[attr-defined, unused-ignore]
sleep_us = time.sleep_us  # type: ignore[attr-defined, unused-ignore]
sleep_ms = asyncio.sleep_ms  # type: ignore[attr-defined, unused-ignore]


class Lcd:
    """HD44780 2x16 character display in 4-bit mode, write-only."""

    def __init__(self, rs: int, e: int, d4: int) -> None:
        self.rs = machine.Pin(rs, machine.Pin.OUT, value=0)
        self.e = machine.Pin(e, machine.Pin.OUT, value=0)
        self.data = [machine.Pin(d4 + i, machine.Pin.OUT, value=0) for i in range(4)]
        self.shown = ("", "")
        sleep_us(50000)
        for nibble in (0x3, 0x3, 0x3, 0x2):  # the datasheet's reset-by-instruction
            self._nibble(nibble)
            sleep_us(5000)
        for cmd in (0x28, 0x0C, 0x06, 0x01):  # 2 lines, display on, increment, clear
            self._command(cmd)
        sleep_us(2000)

    def _nibble(self, value: int) -> None:
        for i in range(4):
            self.data[i].value((value >> i) & 1)
        self.e.value(1)
        sleep_us(1)
        self.e.value(0)
        sleep_us(50)

    def _byte(self, value: int, rs: int) -> None:
        self.rs.value(rs)
        self._nibble(value >> 4)
        self._nibble(value & 0x0F)

    def _command(self, cmd: int) -> None:
        self._byte(cmd, 0)

    def show(self, lines: tuple) -> None:
        """Write the lines that changed (16 characters each)."""
        for row in range(2):
            if lines[row] != self.shown[row]:
                self._command(0x80 | (0x40 * row))
                for ch in lines[row]:
                    self._byte(ord(ch), 1)
        self.shown = (lines[0], lines[1])


class Board:
    """The pins and the panel; the two asyncio tasks below run it."""

    def __init__(self) -> None:
        # The relay pin is driven low first: coil off, bypass engaged, until the
        # watchdog says the host is healthy.
        self.relay = machine.Pin(RELAY, machine.Pin.OUT, value=0)
        self.reset = machine.Pin(HOST_RESET, machine.Pin.OUT, value=0)
        self.leds = {n: machine.Pin(p, machine.Pin.OUT, value=0) for n, p in LED_PINS.items()}
        self.buttons = {
            n: machine.Pin(p, machine.Pin.IN, machine.Pin.PULL_UP) for n, p in BUTTON_PINS.items()
        }
        self.uart = machine.UART(
            UART_ID, baudrate=BAUD, tx=machine.Pin(UART_TX), rx=machine.Pin(UART_RX)
        )
        self.lcd = Lcd(LCD_RS, LCD_E, LCD_D4)
        now = ticks_ms()
        self.panel = Panel(now, random.getrandbits(30))
        self.wdt = machine.WDT(timeout=WDT_TIMEOUT_MS)
        self._alive = {"uart": now}

    def apply(self, now: int) -> None:
        out = self.panel.outputs(now)
        self.relay.value(0 if out.relay_engaged else 1)
        self.reset.value(1 if out.reset_asserted else 0)
        for name, pin in self.leds.items():
            pin.value(1 if out.leds_on.get(name) else 0)
        self.lcd.show(out.lines)

    async def uart_task(self) -> None:
        while True:
            now = ticks_ms()
            if self.uart.any():
                data = self.uart.read()
                if data:
                    self.panel.receive(data, now)
            out = self.panel.data_to_send()
            if out:
                self.uart.write(out)
            self._alive["uart"] = now
            await sleep_ms(UART_POLL_MS)

    async def scan_task(self) -> None:
        while True:
            now = ticks_ms()
            self.panel.buttons({n: pin.value() == 0 for n, pin in self.buttons.items()}, now)
            self.panel.poll(now)
            self.apply(now)
            if ticks_diff(now, self._alive["uart"]) < STALL_MS:
                self.wdt.feed()
            await sleep_ms(SCAN_MS)

    async def main(self) -> None:
        asyncio.create_task(self.uart_task())
        await self.scan_task()


def run() -> None:
    """The firmware's entry point (``main.py``)."""
    asyncio.run(Board().main())

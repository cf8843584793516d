"""The host end of the front-panel serial link: a thin asyncio adapter over the shared
sans-I/O :class:`appliance.firmware.link.Link`.

pyserial opens the port (non-blocking, raw); reads and writes are ``os.read`` /
``os.write`` on its fd from ``loop.add_reader``/``add_writer`` callbacks, so nothing
ever blocks the loop. :meth:`PanelLink.run` is the outer reconnect loop: when the
port vanishes (USB unplugged, pty closed) the connection is dropped and the port is
re-opened with backoff; every new connection shakes hands with a new boot id and, on
``LinkUp``, re-sends the watchdog settings and the panel state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any

import serial

from appliance.firmware import frame, link, messages
from appliance.host.config import PanelConfig

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, dict[str, Any]], None]
"""Called with the message name (``button``, ``drill_request``, ``status``) and body."""


def ticks_now() -> int:
    """The host's clock on the firmware's tick circle (ms, wrapping at 2**30)."""
    return int(time.monotonic() * 1000) & (frame.TICKS_PERIOD - 1)


class PanelLink:
    """Keeps the front panel fed: heartbeats, settings, panel state; reports its messages."""

    def __init__(self, config: PanelConfig, on_message: MessageHandler | None = None) -> None:
        self.config = config
        self.on_message = on_message
        self.healthy = True
        """What the heartbeats say (the edge can take calls)."""
        self.panel: dict[str, Any] = {}
        self.link: link.Link | None = None
        self.connected = asyncio.Event()
        self.link_up = asyncio.Event()
        self.connections = 0
        """Successful opens of the port (1 + reconnections)."""
        self.last_status: dict[str, Any] = {}
        self._serial: serial.Serial | None = None
        self._fd = -1
        self._out = bytearray()
        self._lost: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._heartbeat: asyncio.TimerHandle | None = None

    # -- what the host pushes ---------------------------------------------------------
    def set_panel(self, state: dict[str, Any]) -> None:
        """New front-panel state (site, mode, wan, power, alarm, severity, pages)."""
        if state == self.panel:
            return
        self.panel = dict(state)
        if self.link is not None and self.link.up:
            self._send(messages.PANEL, self.panel)

    def set_healthy(self, healthy: bool) -> None:
        self.healthy = healthy

    def watchdog_settings(self) -> dict[str, int]:
        c = self.config
        return {
            "heartbeat_interval_ms": int(c.heartbeat_interval_s * 1000),
            "misses": c.watchdog_misses,
            "reset_pulse_ms": c.reset_pulse_ms,
            "boot_holdoff_ms": int(c.boot_holdoff_s * 1000),
            "release_after_ms": int(c.release_after_s * 1000),
        }

    # -- the reconnect loop --------------------------------------------------------------
    async def run(self) -> None:
        """Open, serve until the port is lost, re-open with backoff; until cancelled."""
        delay = self.config.reconnect_min_s
        while True:
            try:
                self._open()
            except (OSError, serial.SerialException) as exc:
                log.debug("panel port %s not available: %s", self.config.port, exc)
                await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
                delay = min(delay * 2, self.config.reconnect_max_s)
                continue
            delay = self.config.reconnect_min_s
            try:
                assert self._lost is not None
                await self._lost
            finally:
                self._close()

    def _open(self) -> None:
        loop = asyncio.get_running_loop()
        ser = serial.Serial(
            self.config.port, self.config.baudrate, timeout=0, write_timeout=0, exclusive=True
        )
        self._serial = ser
        self._fd = ser.fileno()
        self._out = bytearray()
        self._lost = loop.create_future()
        self.link = link.Link(link.ROLE_HOST, random.getrandbits(32), ticks_now())
        self.connections += 1
        self.connected.set()
        loop.add_reader(self._fd, self._on_readable)
        self._flush()
        self._arm()
        self._beat()
        log.info("panel port %s open", self.config.port)

    def _close(self) -> None:
        loop = asyncio.get_running_loop()
        for handle in (self._timer, self._heartbeat):
            if handle is not None:
                handle.cancel()
        self._timer = self._heartbeat = None
        if self._fd >= 0:
            loop.remove_reader(self._fd)
            loop.remove_writer(self._fd)
        if self._serial is not None:
            with contextlib.suppress(OSError, serial.SerialException):
                self._serial.close()
        self._serial = None
        self._fd = -1
        self.link = None
        self.connected.clear()
        self.link_up.clear()

    def _drop(self, why: str) -> None:
        log.warning("panel port %s lost: %s", self.config.port, why)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    # -- I/O callbacks ------------------------------------------------------------------
    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the other end of the pty closed, the USB device left
            self._drop(str(exc))
            return
        if not data:
            self._drop("end of file")
            return
        if self.link is None:
            return
        for event in self.link.receive(data, ticks_now()):
            self._on_event(event)
        self._flush()
        self._arm()

    def _on_event(self, event: object) -> None:
        if isinstance(event, link.LinkUp):
            log.info("panel link up (MCU boot %d, restarted=%s)", event.peer_boot, event.restarted)
            self._send(messages.SETTINGS, self.watchdog_settings())
            if self.panel:
                self._send(messages.PANEL, self.panel)
            self.link_up.set()
        elif isinstance(event, link.LinkDown):
            self.link_up.clear()
        elif isinstance(event, link.Message):
            name = messages.NAMES.get(event.kind, f"kind_{event.kind:#x}")
            try:
                body = messages.decode(event.body)
            except ValueError:
                log.warning("panel sent a bad %s body", name)
                return
            if name == "status":
                self.last_status = body
            if self.on_message is not None:
                self.on_message(name, body)
        elif isinstance(event, link.VersionMismatch):
            log.error(
                "panel speaks protocol v%d, host v%d", event.peer_version, frame.PROTOCOL_VERSION
            )

    def _send(self, kind: int, body: dict[str, Any]) -> None:
        if self.link is not None:
            self.link.send(kind, messages.encode(body), ticks_now())
            self._flush()

    def send_drill_result(self, ok: bool, text: str) -> None:
        self._send(messages.DRILL_RESULT, {"ok": ok, "text": text[:48]})

    def _flush(self) -> None:
        if self.link is not None:
            self._out.extend(self.link.data_to_send())
        if not self._out or self._fd < 0:
            return
        try:
            n = os.write(self._fd, self._out)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self._drop(str(exc))
            return
        del self._out[:n]
        loop = asyncio.get_running_loop()
        if self._out:
            loop.add_writer(self._fd, self._flush)
        else:
            loop.remove_writer(self._fd)

    # -- timers ----------------------------------------------------------------------------
    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.link is None:
            return
        delay_ms = self.link.next_timer_ms(ticks_now())
        self._timer = asyncio.get_running_loop().call_later(delay_ms / 1000, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.link is None:
            return
        for event in self.link.poll(ticks_now()):
            self._on_event(event)
        self._flush()
        self._arm()

    def _beat(self) -> None:
        if self.link is not None and self.link.up:
            self.link.send(messages.HEARTBEAT, b"\x01" if self.healthy else b"\x00", ticks_now(),
                           reliable=False)  # fmt: skip
            self._flush()
        self._heartbeat = asyncio.get_running_loop().call_later(
            self.config.heartbeat_interval_s, self._beat
        )

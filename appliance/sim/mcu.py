"""The front-panel MCU, simulated: the real firmware logic (``appliance.firmware.panel``)
under CPython on a pseudo-terminal, so the host opens a real serial device path.

The pty's slave is published as a symlink at ``link_path`` (like socat's ``link=``);
:meth:`McuSimulator.unplug` closes the pty and removes the link, :meth:`replug` makes a
new pty behind the same path (optionally with a freshly booted firmware). Buttons are
scripted with :meth:`press`; the pins (relay, reset, LEDs) and the display are read
from :meth:`outputs`. ``python -m appliance.sim.mcu LINK_PATH`` runs one for the demo.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import tty
from pathlib import Path

from appliance.firmware import frame
from appliance.firmware.panel import Outputs, Panel

SCAN_S = 0.01


def ticks_now() -> int:
    return int(asyncio.get_running_loop().time() * 1000) & (frame.TICKS_PERIOD - 1)


class McuSimulator:
    """One simulated front panel behind ``link_path``."""

    def __init__(self, link_path: str | Path) -> None:
        self.link_path = Path(link_path)
        self.panel: Panel | None = None
        self.boots = 0
        self.relay_history: list[tuple[int, bool]] = []
        """(tick, engaged) at every change of the bypass relay."""
        self.reset_pulses = 0
        self._master = -1
        self._slave = -1
        self._scan: asyncio.Task[None] | None = None
        self._pressed: dict[str, int] = {}  # button -> tick until which it is held
        self._last_reset = False
        self._last_relay: bool | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self.boot()
        self.plug()
        self._scan = asyncio.create_task(self._scan_loop())

    async def stop(self) -> None:
        if self._scan is not None:
            self._scan.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scan
        self.unplug()

    async def __aenter__(self) -> McuSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def boot(self) -> None:
        """Power-cycle the MCU: a new firmware instance with a new boot id."""
        self.boots += 1
        self.panel = Panel(ticks_now(), random.getrandbits(30))

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline before the host opens it
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.link_path.unlink(missing_ok=True)
        self.link_path.symlink_to(os.ttyname(slave))
        asyncio.get_running_loop().add_reader(master, self._on_readable)

    def unplug(self) -> None:
        """The cable is pulled: the host's port vanishes (EIO, then no such file)."""
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            os.close(self._slave)
        self._master = self._slave = -1
        self.link_path.unlink(missing_ok=True)

    def replug(self, reboot: bool = False) -> None:
        self.unplug()
        if reboot:
            self.boot()
        self.plug()

    @property
    def plugged(self) -> bool:
        return self._master >= 0

    # -- buttons and outputs ------------------------------------------------------------
    def press(self, button: str, hold_s: float) -> None:
        """Hold ``button`` for ``hold_s`` from now."""
        self._pressed[button] = frame.ticks_add(ticks_now(), int(hold_s * 1000))

    def outputs(self) -> Outputs:
        assert self.panel is not None
        return self.panel.outputs(ticks_now())

    # -- I/O ------------------------------------------------------------------------------
    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: nobody has the slave open (the host closed it)
            return
        if data and self.panel is not None:
            self.panel.receive(data, ticks_now())
            self._flush()

    def _flush(self) -> None:
        if self.panel is None:
            return
        data = self.panel.data_to_send()
        if data and self._master >= 0:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._master, data)  # a full pty buffer drops bytes, like a UART

    async def _scan_loop(self) -> None:
        while True:
            now = ticks_now()
            panel = self.panel
            if panel is not None:
                levels = {b: frame.ticks_diff(until, now) > 0 for b, until in self._pressed.items()}
                panel.buttons(levels, now)
                panel.poll(now)
                self._flush()
                wd = panel.watchdog
                if wd.relay_engaged != self._last_relay:
                    self._last_relay = wd.relay_engaged
                    self.relay_history.append((now, wd.relay_engaged))
                if wd.reset_asserted and not self._last_reset:
                    self.reset_pulses += 1
                self._last_reset = wd.reset_asserted
            await asyncio.sleep(SCAN_S)


async def _main(path: str) -> None:
    async with McuSimulator(path) as sim:
        print(f"MCU simulator on {path}", flush=True)
        last: tuple[str, str] | None = None
        while True:
            out = sim.outputs()
            if out.lines != last:
                last = out.lines
                print(f"[{out.lines[0]}] [{out.lines[1]}] relay={'bypass' if out.relay_engaged else 'host'}",
                      flush=True)  # fmt: skip
            await asyncio.sleep(0.5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Simulated front-panel MCU on a pty")
    parser.add_argument("link_path", help="where to publish the serial device (a symlink)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.link_path))


if __name__ == "__main__":
    main()

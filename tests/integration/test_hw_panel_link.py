"""The host's serial link against the simulated MCU over a real pty (the firmware's
own logic on the other end): handshake, panel state, heartbeats and the watchdog,
unplug and replug, the drill request from the buttons."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from appliance.host.config import PanelConfig
from appliance.host.panel_link import PanelLink
from appliance.sim.mcu import McuSimulator
from tests.sipp import wait_for_async

pytestmark = pytest.mark.timeout(60)

STATE = {"site": "Branch 7", "mode": "normal", "wan": "up", "severity": "none"}


class Harness:
    def __init__(self, sim: McuSimulator, host: PanelLink, task: asyncio.Task[None]) -> None:
        self.sim = sim
        self.host = host
        self.task = task
        self.messages: list[tuple[str, dict[str, Any]]] = []


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    config = PanelConfig(port=str(tmp_path / "ttyPANEL"), heartbeat_interval_s=0.05,
                         watchdog_misses=4, reset_pulse_ms=50, boot_holdoff_s=0.5,
                         release_after_s=0.3, reconnect_min_s=0.05, reconnect_max_s=0.2)  # fmt: skip
    sim = McuSimulator(config.port)
    await sim.start()
    got: list[tuple[str, dict[str, Any]]] = []
    host = PanelLink(config, on_message=lambda name, body: got.append((name, body)))
    task = asyncio.create_task(host.run())
    h = Harness(sim, host, task)
    h.messages = got
    try:
        yield h
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sim.stop()


def _panel(h: Harness) -> Any:
    assert h.sim.panel is not None
    return h.sim.panel


async def test_handshake_state_and_watchdog_release(harness: Harness) -> None:
    h = harness
    h.host.set_panel(STATE)
    await asyncio.wait_for(h.host.link_up.wait(), 5)
    await wait_for_async(lambda: _panel(h).state == STATE, 5, what="panel state on the MCU")
    assert h.sim.outputs().lines == ("Branch 7        ", "Mode: normal    ")
    # settings pushed: the watchdog runs on the host's timings
    assert _panel(h).watchdog.settings.release_after_ms == 300
    await wait_for_async(lambda: _panel(h).watchdog.state == "normal", 5, what="relay released")
    assert h.sim.outputs().relay_engaged is False
    await wait_for_async(lambda: h.host.last_status.get("watchdog") == "normal", 5,
                         what="status reported to the host")  # fmt: skip
    assert h.sim.reset_pulses == 0


async def test_unplug_engages_bypass_and_replug_resends_state(harness: Harness) -> None:
    h = harness
    h.host.set_panel(STATE)
    await wait_for_async(lambda: _panel(h).watchdog.state == "normal", 5, what="normal")
    h.sim.unplug()
    # the host notices and keeps trying; no exception escapes its task
    await wait_for_async(lambda: not h.host.connected.is_set(), 5, what="host sees the port gone")
    # heartbeats stop reaching the MCU: bypass at once, then the reset pulse
    await wait_for_async(lambda: _panel(h).watchdog.relay_engaged, 5, what="bypass engaged")
    await wait_for_async(lambda: h.sim.reset_pulses >= 1, 5, what="host reset pulse")
    assert not h.task.done()
    # the port comes back on a freshly booted MCU: state re-sent, relay released later
    h.sim.replug(reboot=True)
    assert _panel(h).state == {}
    await wait_for_async(lambda: h.host.connections >= 2 and h.host.link_up.is_set(), 5,
                         what="reconnected")  # fmt: skip
    await wait_for_async(lambda: _panel(h).state == STATE, 5, what="state re-sent")
    await wait_for_async(lambda: _panel(h).watchdog.state == "normal", 5, what="released again")
    assert not h.task.done()


async def test_unhealthy_host_keeps_bypass_without_reset(harness: Harness) -> None:
    h = harness
    await wait_for_async(lambda: _panel(h).watchdog.state == "normal", 5, what="normal")
    h.host.set_healthy(False)
    await wait_for_async(lambda: _panel(h).watchdog.state == "recovering", 5, what="bypass")
    assert h.sim.outputs().relay_engaged and h.sim.reset_pulses == 0
    h.host.set_healthy(True)
    await wait_for_async(lambda: _panel(h).watchdog.state == "normal", 5, what="released")


async def test_drill_long_press_confirm_and_result(harness: Harness) -> None:
    h = harness
    await asyncio.wait_for(h.host.link_up.wait(), 5)
    h.sim.press("drill", 1.7)
    await wait_for_async(lambda: h.sim.outputs().lines[0].startswith("Start drill?"), 5,
                         what="confirmation asked")  # fmt: skip
    await wait_for_async(lambda: not _panel(h).buttons_by_name["drill"].pressed, 5, what="release")
    h.sim.press("drill", 0.1)
    await wait_for_async(lambda: any(n == "drill_request" for n, _ in h.messages), 5,
                         what="drill request at the host")  # fmt: skip
    h.host.send_drill_result(True, "survivable drill")
    await wait_for_async(lambda: h.sim.outputs().lines[0].startswith("Drill started"), 5,
                         what="result on the display")  # fmt: skip
    assert ("button", {"button": "drill", "press": "long"}) in h.messages

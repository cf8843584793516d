"""``branchline hw-agent`` as its own process between real peers: a real edge daemon
(its control API on a unix socket), the simulated front-panel MCU on a pty (the
firmware's own logic) and the pymodbus UPS and environment sensor over TCP.

The panel shows the site and the mode; a drill confirmed on the panel makes the edge
survivable; a UPS running out raises alarms the edge writes to its outbox and puts it in
maintenance; a dead edge makes the MCU bypass the host (an unhealthy heartbeat, no
reset) and a restarted one gets the line back after the healthy period; a dead agent
(a hung host) makes it miss heartbeats, bypass and pulse the reset line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.sim.mcu import McuSimulator
from appliance.sim.modbus_devices import (
    ENV_REGISTERS,
    UPS_REGISTERS,
    ModbusDeviceServer,
    SimulatedDevice,
)
from tests.sipp import REPO_ROOT, EdgeProcess, wait_for_async

pytestmark = pytest.mark.timeout(120)

SITE_NAME = "Branch 7"
RELEASE_AFTER_S = 0.6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hardware_section(panel_port: Path, modbus_port: int) -> dict[str, Any]:
    def device(name: str, kind: str, unit: int, registers: Any, thresholds: list[dict[str, Any]]) -> dict[str, Any]:
        return {"name": name, "kind": kind, "port": modbus_port, "unit_id": unit, "poll_interval_s": 0.2,
                "timeout_s": 0.5, "registers": [r.model_dump() for r in registers], "thresholds": thresholds}  # fmt: skip

    return {
        "panel": {"port": str(panel_port), "heartbeat_interval_s": 0.2, "watchdog_misses": 5,
                  "reset_pulse_ms": 50, "boot_holdoff_s": 10.0, "release_after_s": RELEASE_AFTER_S,
                  "reconnect_min_s": 0.05, "reconnect_max_s": 0.5},  # fmt: skip
        "modbus": [
            device("ups", "ups", 1, UPS_REGISTERS,
                   [{"value": "battery_pct", "below": 50, "hysteresis": 5, "severity": "major"}]),
            device("rack", "environment", 2, ENV_REGISTERS,
                   [{"value": "temperature_c", "above": 35, "hysteresis": 2, "severity": "critical"}]),
        ],  # fmt: skip
        "shutdown": {"device": "ups", "below_s": 600},
        "status_interval_s": 0.2,
        "api_timeout_s": 2.0,
        "drill_s": 600,
        "flush_timeout_s": 2.0,
    }


class Agent:
    """``branchline hw-agent`` as a child process, run where the edge runs."""

    def __init__(self, edge: EdgeProcess, name: str = "agent") -> None:
        self.log = edge.workdir / f"{name}.log"
        pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge_core.cli", "hw-agent", "--config", str(edge.config_path)],
                cwd=edge.workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": pythonpath},
            )  # fmt: skip

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)
        try:
            await wait_for_async(lambda: self.proc.poll() is not None, timeout_s, what="the agent to exit")
        except TimeoutError:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
            raise AssertionError(f"hw-agent ignored signal {sig}\n{self.text()[-3000:]}") from None
        return int(self.proc.returncode)


class Rig:
    def __init__(self, edge: EdgeProcess, sim: McuSimulator, devices: ModbusDeviceServer, agent: Agent) -> None:
        self.edge, self.sim, self.devices, self.agent = edge, sim, devices, agent
        self.extra: list[EdgeProcess | Agent] = []

    @property
    def panel(self) -> Any:
        assert self.sim.panel is not None
        return self.sim.panel

    def lines(self) -> tuple[str, str]:
        line1, line2 = self.sim.outputs().lines
        return line1.rstrip(), line2.rstrip()

    async def api(self, method: str, path: str, body: Any = None, edge: EdgeProcess | None = None) -> httpx.Response:
        edge = edge or self.edge
        sock = str(edge.workdir / edge.ready["api_socket"])
        async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=sock), base_url="http://edge") as c:
            return await c.request(method, path, json=body, timeout=10.0)

    async def get(self, path: str, edge: EdgeProcess | None = None) -> Any:
        resp = await self.api("GET", path, edge=edge)
        resp.raise_for_status()
        return resp.json()

    async def until(self, condition: Callable[[], Any], what: str, timeout_s: float = 15.0) -> Any:
        try:
            return await wait_for_async(condition, timeout_s, interval_s=0.05, what=what)
        except TimeoutError:
            print(self.agent.text()[-4000:])
            raise

    async def until_api(self, path: str, check: Callable[[Any], Any], what: str, timeout_s: float = 15.0,
                        edge: EdgeProcess | None = None) -> Any:  # fmt: skip
        got: list[Any] = []

        async def poll() -> None:
            while True:
                body = await self.get(path, edge)
                if check(body):
                    got.append(body)
                    return
                await asyncio.sleep(0.1)

        try:
            await asyncio.wait_for(poll(), timeout_s)
        except TimeoutError:
            print(self.agent.text()[-4000:])
            raise TimeoutError(f"timed out after {timeout_s:.1f}s waiting for {what}") from None
        return got[0]


@pytest.fixture
async def rig(tmp_path: Path, edge_factory: Callable[..., EdgeProcess]) -> AsyncIterator[Rig]:
    panel_port, modbus_port = tmp_path / "ttyPANEL", free_port()
    # started before the simulators: its start blocks this loop until the edge is ready
    edge = edge_factory({"site": {"name": SITE_NAME}, "hardware": hardware_section(panel_port, modbus_port)})
    sim = McuSimulator(panel_port)
    await sim.start()
    devices = ModbusDeviceServer({1: SimulatedDevice(UPS_REGISTERS), 2: SimulatedDevice(ENV_REGISTERS)},
                                 port=modbus_port)  # fmt: skip
    await devices.start()
    rig = Rig(edge, sim, devices, Agent(edge))
    try:
        yield rig
        if rig.agent.proc.poll() is None:  # SIGTERM: a clean exit
            assert await rig.agent.stop() == 0, rig.agent.text()[-3000:]
    finally:
        for proc in [rig.agent, *rig.extra]:
            if isinstance(proc, Agent) and proc.proc.poll() is None:
                await proc.stop(signal.SIGKILL)
        for proc in rig.extra:
            if isinstance(proc, EdgeProcess) and proc.running():
                await asyncio.to_thread(proc.stop)
        await devices.stop()
        await sim.stop()


async def ready(rig: Rig) -> None:
    """The agent is up: link up, healthy heartbeats released the relay, readings in."""
    await rig.until(lambda: rig.panel.watchdog.state == "normal", "relay released (watchdog normal)")
    await rig.until_api("/v1/hardware", lambda b: {"ups", "rack"} <= set(b["readings"]), "readings")


async def test_the_panel_shows_the_site_and_normal_and_the_edge_sees_the_panel(rig: Rig) -> None:
    assert (await rig.get("/v1/hardware"))["agent"] in ("not reported", "reporting")
    await ready(rig)
    await rig.until(lambda: rig.lines() == (SITE_NAME, "Mode: normal"), "site and mode on the display")
    out = rig.sim.outputs()
    assert out.relay_engaged is False and rig.sim.reset_pulses == 0
    assert rig.panel.led_patterns() == {"power": "on", "wan": "on", "survivable": "off", "alarm": "off"}
    hw = await rig.until_api("/v1/hardware", lambda b: (b["panel"] or {}).get("watchdog") == "normal",
                             "the panel's watchdog state at the edge")  # fmt: skip
    assert hw["agent"] == "reporting"
    assert hw["panel"]["connected"] and hw["panel"]["link_up"] and hw["panel"]["relay"] is False
    assert hw["readings"]["ups"]["values"]["battery_pct"] == 100.0
    assert hw["readings"]["rack"]["values"]["temperature_c"] == 22.5
    assert hw["alarms"] == []
    # the readings are pages on the panel too
    pages = dict(rig.panel.state["pages"])
    assert pages["ups"].startswith("on_battery 0 battery_pct 100% runtime_left_s 3600s")
    assert pages["rack"] == "temperature_c 22.5C humidity_pct 40% door_open 0"


async def test_a_drill_confirmed_on_the_panel_makes_the_edge_survivable(rig: Rig) -> None:
    await ready(rig)
    rig.sim.press("drill", 1.8)  # a long press asks for confirmation on the display
    await rig.until(lambda: rig.lines()[0] == "Start drill?", "the confirmation question")
    await rig.until(lambda: not rig.panel.buttons_by_name["drill"].pressed, "the button released")
    rig.sim.press("drill", 0.1)  # a short press on drill confirms
    status = await rig.until_api("/v1/status", lambda s: s["mode"]["mode"] == "survivable", "survivable")
    assert status["mode"]["drill_until"] is not None and status["accepting_calls"]
    await rig.until(lambda: rig.lines()[0] == "Drill started", "the edge's answer on the display")
    # the display's mode line and the survivable LED (double blink: a drill, not a WAN loss)
    await rig.until(lambda: rig.lines() == (SITE_NAME, "Mode: drill"), "the drill on the mode line")
    assert rig.panel.led_patterns()["survivable"] == "double"
    assert not rig.sim.outputs().relay_engaged  # a drill is healthy: the host keeps the line
    ended = await rig.api("DELETE", "/v1/drill")
    assert ended.status_code == 200
    await rig.until(lambda: rig.lines() == (SITE_NAME, "Mode: normal"), "normal again on the display")
    assert rig.panel.led_patterns()["survivable"] == "off"


def outbox_events(edge: EdgeProcess) -> list[dict[str, Any]]:
    db = sqlite3.connect(edge.workdir / "edge.db")
    try:
        rows = db.execute("SELECT body FROM outbox WHERE kind = 'event' ORDER BY seq").fetchall()
    finally:
        db.close()
    return [json.loads(body) for (body,) in rows]


async def test_a_ups_running_out_raises_alarms_in_the_outbox_and_puts_the_edge_in_maintenance(rig: Rig) -> None:
    await ready(rig)
    rig.devices.power_cut(1, runtime_per_s=-3000.0)  # 3600 s of runtime gone in ~1.2 s
    status = await rig.until_api("/v1/status", lambda s: s["maintenance"], "maintenance mode")
    assert status["accepting_calls"] is False
    hw = await rig.until_api("/v1/hardware", lambda b: {"hw_shutdown", "hw_battery_pct_low"}
                             <= {a["kind"] for a in b["alarms"]}, "both alarms at the edge")  # fmt: skip
    shutdown = next(a for a in hw["alarms"] if a["kind"] == "hw_shutdown")
    assert shutdown["subject"] == "ups" and shutdown["severity"] == "critical"
    assert hw["alarms"][0]["kind"] == "hw_shutdown"  # the most severe first
    assert hw["readings"]["ups"]["values"]["on_battery"] == 1.0
    # the outbox carries them for the fleet, in its alarm rules' shape, with the maintenance
    events = await rig.until(lambda: (e := outbox_events(rig.edge)) and any(
        x["type"] == "maintenance" for x in e) and e, "events in the outbox")  # fmt: skip
    alarms = {(e["alarm"], e["subject"], e["severity"], e["active"]) for e in events if e["type"] == "alarm"}
    assert ("hw_shutdown", "ups", "critical", True) in alarms
    assert ("hw_battery_pct_low", "ups", "major", True) in alarms
    maintenance = next(e for e in events if e["type"] == "maintenance")
    assert maintenance["on"] and "runtime left" in maintenance["reason"]
    # the flush was asked for (telemetry is off here: it answers with the backlog at once)
    await rig.until(lambda: "outbox flush" in rig.agent.text(), "the outbox flush")
    # the front panel: power LED for a low battery, the alarm LED fast, the alarm on page 2
    await rig.until(lambda: (rig.panel.state.get("severity"), rig.panel.state.get("mode"))
                    == ("critical", "maintenance"), "critical and maintenance on the panel")  # fmt: skip
    assert rig.panel.state["power"] == "low"
    assert rig.panel.led_patterns()["alarm"] == "fast"
    assert "runtime left" in rig.panel.state["alarm"]
    # maintenance on purpose is healthy: the host keeps the line
    assert rig.panel.watchdog.state == "normal" and not rig.sim.outputs().relay_engaged


async def test_a_dead_edge_bypasses_the_host_and_a_restarted_one_gets_the_line_back(rig: Rig) -> None:
    await ready(rig)
    await rig.api("POST", "/v1/hardware/alarms", {"kind": "hw_probe", "subject": "x", "active": True})
    rig.devices.devices[2].set("temperature_c", 40.0)  # an alarm the new edge must learn again
    await rig.until_api("/v1/hardware", lambda b: any(a["kind"] == "hw_temperature_c_high" for a in b["alarms"]),
                        "temperature alarm")  # fmt: skip
    assert rig.edge.pid is not None
    os.kill(rig.edge.pid, signal.SIGKILL)
    await rig.until(lambda: rig.edge.proc is not None and rig.edge.proc.poll() is not None, "the edge dead")
    # the agent says "unhealthy": bypass at once, no reset (the host itself is alive)
    await rig.until(lambda: rig.sim.outputs().relay_engaged, "bypass relay engaged")
    assert rig.panel.watchdog.state == "recovering" and rig.sim.reset_pulses == 0
    await rig.until(lambda: rig.lines()[1] == "Mode: edge down", "the panel says the edge is down")
    assert rig.panel.state["severity"] == "critical"
    # the edge comes back (same site, same store, same socket)
    edge2 = EdgeProcess(rig.edge.workdir, rig.edge.config)
    rig.extra.append(edge2)
    await edge2.start_async()
    # (the simulator's scan loop records the relay's changes, as the pin would see them)
    await rig.until(lambda: rig.sim.relay_history[-1][1] is False, "relay released after the healthy period")
    assert [engaged for _, engaged in rig.sim.relay_history] == [True, False, True, False]
    assert rig.sim.reset_pulses == 0
    await rig.until(lambda: rig.lines() == (SITE_NAME, "Mode: normal"), "normal on the display")
    # the new edge learned the active alarm and the readings again; a test's own probe is gone
    hw = await rig.until_api("/v1/hardware", lambda b: {"ups", "rack"} <= set(b["readings"]) and b["alarms"],
                             "the new edge resynced", edge=edge2)  # fmt: skip
    assert [a["kind"] for a in hw["alarms"]] == ["hw_temperature_c_high"]

    # a hung host: no agent, no heartbeats -> bypass and a reset pulse from the MCU
    assert await rig.agent.stop(signal.SIGKILL) == -signal.SIGKILL
    await rig.until(lambda: rig.sim.outputs().relay_engaged, "bypass after missed heartbeats")
    await rig.until(lambda: rig.sim.reset_pulses >= 1, "the host reset pulse")
    assert rig.panel.watchdog.state in ("resetting", "holdoff")
    # the host is back (a new agent): the relay is released again, without another reset
    pulses = rig.sim.reset_pulses
    agent2 = Agent(edge2, "agent2")
    rig.extra.append(agent2)
    await rig.until(lambda: rig.panel.watchdog.state == "normal", "released after the host came back")
    assert rig.sim.reset_pulses == pulses
    assert await agent2.stop() == 0, agent2.text()[-3000:]
    await asyncio.to_thread(edge2.stop)

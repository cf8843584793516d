"""Modbus monitoring against the pymodbus simulator: TCP on a free port and RTU over a
pty pair (socat). Values scaled right, a silent device raises and clears its alarm, a
UPS draining below the threshold puts the edge in maintenance and flushes the outbox
(through the EdgeActions boundary; the edge's API hooks are not in edge_core yet)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from appliance.host.alarms import AlarmChange
from appliance.host.config import HardwareConfig, ModbusDeviceConfig
from appliance.host.monitor import HardwareMonitor
from appliance.sim.modbus_devices import (
    ENV_REGISTERS,
    UPS_REGISTERS,
    ModbusDeviceServer,
    SimulatedDevice,
)
from tests.sipp import wait_for_async

pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RecordingEdge:
    """The edge side of EdgeActions, recorded."""

    def __init__(self) -> None:
        self.alarms: list[AlarmChange] = []
        self.readings: dict[str, dict[str, float]] = {}
        self.calls: list[tuple[str, Any]] = []

    async def alarm(self, change: AlarmChange) -> None:
        self.alarms.append(change)

    async def report_readings(self, device: str, values: dict[str, float]) -> None:
        self.readings[device] = values

    async def maintenance(self, on: bool, reason: str) -> None:
        self.calls.append(("maintenance", (on, reason)))

    async def flush_outbox(self) -> None:
        self.calls.append(("flush_outbox", None))


def hardware(port: int, **over: Any) -> HardwareConfig:
    ups = {"name": "ups", "kind": "ups", "port": port, "unit_id": 1, "poll_interval_s": 0.1,
           "timeout_s": 0.3, "registers": [r.model_dump() for r in UPS_REGISTERS],
           "thresholds": [{"value": "battery_pct", "below": 50, "hysteresis": 5,
                           "severity": "major"}]}  # fmt: skip
    env = {"name": "rack", "kind": "environment", "port": port, "unit_id": 2,
           "poll_interval_s": 0.1, "timeout_s": 0.3,
           "registers": [r.model_dump() for r in ENV_REGISTERS],
           "thresholds": [{"value": "temperature_c", "above": 35, "hysteresis": 2,
                           "severity": "critical"}]}  # fmt: skip
    data: dict[str, Any] = {"modbus": [ups, env], "shutdown": {"device": "ups", "below_s": 600}}
    data.update(over)
    return HardwareConfig.model_validate(data)


@pytest.fixture
async def rig() -> AsyncIterator[tuple[ModbusDeviceServer, HardwareMonitor, RecordingEdge]]:
    port = free_port()
    server = ModbusDeviceServer({1: SimulatedDevice(UPS_REGISTERS),
                                 2: SimulatedDevice(ENV_REGISTERS, {"temperature_c": -5.5})},
                                port=port)  # fmt: skip
    await server.start()
    edge = RecordingEdge()
    monitor = HardwareMonitor(hardware(port), edge)
    task = asyncio.create_task(monitor.run())
    try:
        yield server, monitor, edge
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await server.stop()


async def test_tcp_values_scaled(
    rig: tuple[ModbusDeviceServer, HardwareMonitor, RecordingEdge],
) -> None:
    server, monitor, edge = rig
    await wait_for_async(lambda: "ups" in edge.readings and "rack" in edge.readings, 10,
                         what="first readings")  # fmt: skip
    assert edge.readings["ups"] == {"on_battery": 0.0, "battery_pct": 100.0,
                                    "runtime_left_s": 3600.0, "load_pct": 35.0,
                                    "input_v": 230.0}  # fmt: skip
    assert edge.readings["rack"] == {"temperature_c": -5.5, "humidity_pct": 40.0, "door_open": 0.0}
    server.devices[2].set("door_open", 1)
    server.devices[2].set("temperature_c", 36.5)
    await wait_for_async(lambda: edge.readings["rack"]["door_open"] == 1.0, 10, what="door")
    await wait_for_async(lambda: any(a.alarm == "temperature_c_high" and a.raised
                                     for a in edge.alarms), 10, what="temperature alarm")  # fmt: skip
    server.devices[2].set("temperature_c", 34.0)  # inside the hysteresis band: stays raised
    await wait_for_async(lambda: edge.readings["rack"]["temperature_c"] == 34.0, 10, what="34")
    assert ("rack", "temperature_c_high") in monitor.active
    server.devices[2].set("temperature_c", 32.5)
    await wait_for_async(lambda: ("rack", "temperature_c_high") not in monitor.active, 10,
                         what="cleared below 33")  # fmt: skip


async def test_silent_device_raises_and_clears(
    rig: tuple[ModbusDeviceServer, HardwareMonitor, RecordingEdge],
) -> None:
    server, monitor, edge = rig
    await wait_for_async(lambda: "ups" in edge.readings, 10, what="first readings")
    await server.silence()
    await wait_for_async(lambda: ("ups", "offline") in monitor.active
                         and ("rack", "offline") in monitor.active, 10, what="offline alarms")  # fmt: skip
    await server.start()
    await wait_for_async(lambda: not monitor.active, 10, what="offline alarms cleared")
    offline = [(a.device, a.raised) for a in edge.alarms if a.alarm == "offline"]
    assert sorted(offline) == [("rack", False), ("rack", True), ("ups", False), ("ups", True)]


async def test_ups_draining_triggers_maintenance_and_flush(
    rig: tuple[ModbusDeviceServer, HardwareMonitor, RecordingEdge],
) -> None:
    server, monitor, edge = rig
    await wait_for_async(lambda: "ups" in edge.readings, 10, what="first readings")
    server.power_cut(1, runtime_per_s=-3000.0)  # 3600 s of runtime gone in ~1.2 s
    await wait_for_async(lambda: ("flush_outbox", None) in edge.calls, 10, what="shutdown")
    assert edge.calls[0][0] == "maintenance" and edge.calls[0][1][0] is True
    assert "runtime left" in edge.calls[0][1][1]
    assert monitor.shutdowns == 1
    assert any(a.alarm == "battery_pct_low" and a.raised for a in edge.alarms)
    assert edge.readings["ups"]["on_battery"] == 1.0


async def test_rtu_over_a_pty_pair(tmp_path: Path) -> None:
    socat = shutil.which("socat")
    if socat is None:
        pytest.skip("socat not installed (Debian package socat)")
    a, b = tmp_path / "rtu-a", tmp_path / "rtu-b"
    proc = subprocess.Popen([socat, f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        await wait_for_async(lambda: a.exists() and b.exists(), 10, what="socat ptys")
        server = ModbusDeviceServer({3: SimulatedDevice(UPS_REGISTERS, {"battery_pct": 87.5})},
                                    serial_port=str(a), baudrate=19200)  # fmt: skip
        await server.start()
        device = ModbusDeviceConfig.model_validate(
            {"name": "ups", "kind": "ups", "transport": "rtu", "serial_port": str(b),
             "baudrate": 19200, "unit_id": 3, "poll_interval_s": 0.2, "timeout_s": 1.0,
             "registers": [r.model_dump() for r in UPS_REGISTERS]})  # fmt: skip
        edge = RecordingEdge()
        monitor = HardwareMonitor(HardwareConfig(modbus=[device]), edge)
        task = asyncio.create_task(monitor.run())
        try:
            await wait_for_async(lambda: "ups" in edge.readings, 15, what="RTU reading")
            assert edge.readings["ups"]["battery_pct"] == 87.5
            assert edge.readings["ups"]["runtime_left_s"] == 3600.0
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await server.stop()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

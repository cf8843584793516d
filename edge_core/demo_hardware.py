"""The appliance half of ``branchline demo``: a simulated front panel and UPS/sensors.

All in the demo's process, on its loop: the front-panel MCU simulator on a pty (the real
firmware logic, ``appliance/sim/mcu.py``), a Modbus TCP server with a UPS (unit 1) and
an environment sensor (unit 2) on a free port (``appliance/sim/modbus_devices.py``),
and the hardware agent (``appliance/host/agent.py``) that ties them to the demo edge
through its control API — what ``branchline hw-agent`` runs on a real box.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DemoHardware:
    def __init__(self, workdir: Path) -> None:
        self.link = workdir / "front-panel"
        self.modbus_port = _free_port()
        self.mcu: Any = None
        self.modbus: Any = None
        self.agent_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from appliance.sim.mcu import McuSimulator
        from appliance.sim.modbus_devices import (
            ENV_REGISTERS,
            UPS_REGISTERS,
            ModbusDeviceServer,
            SimulatedDevice,
        )

        self.mcu = McuSimulator(self.link)
        await self.mcu.start()
        self.modbus = ModbusDeviceServer(
            {1: SimulatedDevice(UPS_REGISTERS), 2: SimulatedDevice(ENV_REGISTERS)}, port=self.modbus_port
        )
        await self.modbus.start()

    def hardware_settings(self) -> dict[str, Any]:
        """The demo site's ``hardware`` section."""
        from appliance.sim.modbus_devices import device_config

        devices = []
        for name, kind, unit in (("ups", "ups", 1), ("rack", "environment", 2)):
            device = device_config(name, kind, unit, self.modbus_port).model_dump(mode="json")
            device["poll_interval_s"] = 1.0
            devices.append(device)
        return {
            # the bypass relay is let go after 2 s of a healthy host (30 s on a real box)
            "panel": {"port": str(self.link), "heartbeat_interval_s": 1.0, "release_after_s": 2.0},
            "modbus": devices,
            "shutdown": {"device": "ups"},
        }

    def start_agent(self, config: Any, api_socket: str) -> None:
        from appliance.host.agent import HardwareAgent

        self.agent_task = asyncio.create_task(HardwareAgent(config.hardware, api_socket).run(), name="hw-agent")

    async def stop(self) -> None:
        if self.agent_task is not None:
            self.agent_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.agent_task
        for part in (self.modbus, self.mcu):
            if part is not None:
                with contextlib.suppress(Exception):
                    await part.stop()

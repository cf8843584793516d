"""Modbus devices, simulated: a pymodbus server (TCP, or RTU on a serial path) whose
registers follow a register map from the config, with scriptable values: set one,
drain the UPS battery, warm the room, or go silent (the server stops answering).

``python -m appliance.sim.modbus_devices --port 5020`` serves the demo UPS and
environment sensor on one TCP port (unit ids 1 and 2).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence

from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from appliance.host.config import ModbusDeviceConfig, RegisterConfig
from appliance.host.modbus import decode, encode, register_count

FC = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}

UPS_REGISTERS = [
    RegisterConfig(name="on_battery", address=0, table="discrete", type="bool"),
    RegisterConfig(name="battery_pct", address=0, table="input", type="u16", scale=0.1, unit="%"),
    RegisterConfig(name="runtime_left_s", address=1, table="input", type="u32", unit="s"),
    RegisterConfig(name="load_pct", address=3, table="input", type="u16", scale=0.1, unit="%"),
    RegisterConfig(name="input_v", address=4, table="input", type="u16", scale=0.1, unit="V"),
]
ENV_REGISTERS = [
    RegisterConfig(name="temperature_c", address=10, type="s16", scale=0.1, unit="C"),
    RegisterConfig(name="humidity_pct", address=11, type="u16", scale=0.1, unit="%"),
    RegisterConfig(name="door_open", address=0, table="coil", type="bool"),
]
PDU_REGISTERS = [
    RegisterConfig(name=f"outlet{i}_a", address=20 + i, table="input", scale=0.01, unit="A")
    for i in range(1, 5)
]  # fmt: skip
DEFAULTS = {"battery_pct": 100.0, "runtime_left_s": 3600, "load_pct": 35.0, "input_v": 230.0,
            "temperature_c": 22.5, "humidity_pct": 40.0}  # fmt: skip


class SimulatedDevice:
    """The registers of one unit id. Values live here; pymodbus's simulator asks for
    them on every request (its ``action`` hook), so a script changes them at will."""

    def __init__(self, registers: Sequence[RegisterConfig], values: dict[str, float] | None = None):
        self.registers = {r.name: r for r in registers}
        self.raw: dict[int, dict[int, int]] = {fc: {} for fc in FC.values()}
        """function code -> address -> raw 16-bit word (0/1 for bits)."""
        for name in self.registers:
            self.set(name, (values or {}).get(name, DEFAULTS.get(name, 0.0)))

    def set(self, name: str, value: float) -> None:
        reg = self.registers[name]
        for i, word in enumerate(encode(value, reg)):
            self.raw[FC[reg.table]][reg.address + i] = word

    def get(self, name: str) -> float:
        reg = self.registers[name]
        table = self.raw[FC[reg.table]]
        return decode([table.get(reg.address + i, 0) for i in range(register_count(reg))], reg)

    async def _action(self, fc: int, start: int, address: int, count: int,
                      registers: list[int], set_values: list[int] | list[bool] | None) -> None:  # fmt: skip
        bits = fc in (1, 2)
        for addr, word in self.raw.get(fc, {}).items():
            if 0 <= addr - start < len(registers):
                # pymodbus keeps bit n of a bit table in bit (n % 16) of word n
                registers[addr - start] = (
                    (1 << (addr % 16)) if bits and word else (0 if bits else word)
                )
        return None

    def sim_device(self, unit: int) -> SimDevice:
        def block(kind: DataType) -> list[SimData]:
            return [SimData(0, count=64, values=0, datatype=kind)]

        blocks = (block(DataType.BITS), block(DataType.BITS), block(DataType.REGISTERS),
                  block(DataType.REGISTERS))  # fmt: skip
        return SimDevice(unit, simdata=blocks, action=self._action)


class ModbusDeviceServer:
    """A pymodbus server for some simulated devices (unit id -> device)."""

    def __init__(self, devices: dict[int, SimulatedDevice], *, host: str = "127.0.0.1",
                 port: int = 0, serial_port: str = "", baudrate: int = 9600) -> None:  # fmt: skip
        self.devices = devices
        self.host, self.port = host, port
        self.serial_port, self.baudrate = serial_port, baudrate
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._scripts: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        context = [d.sim_device(u) for u, d in self.devices.items()]
        if self.serial_port:
            self._server = ModbusSerialServer(
                context, port=self.serial_port, baudrate=self.baudrate
            )
        else:
            self._server = ModbusTcpServer(context, address=(self.host, self.port))
        self._task = asyncio.create_task(self._server.serve_forever())
        await asyncio.sleep(0)

    async def stop(self) -> None:
        for task in self._scripts:
            task.cancel()
        if self._server is not None:
            await self._server.shutdown()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._server = self._task = None

    async def silence(self) -> None:
        """The devices stop answering (the server goes away)."""
        scripts, self._scripts = self._scripts, []
        await self.stop()
        self._scripts = scripts

    async def __aenter__(self) -> ModbusDeviceServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- scripts ---------------------------------------------------------------------
    def ramp(self, unit: int, name: str, per_s: float, stop_at: float, step_s: float = 0.1) -> None:
        """Move a value by ``per_s`` per second until it reaches ``stop_at``."""

        async def run() -> None:
            device = self.devices[unit]
            value = device.get(name)
            while (per_s < 0 and value > stop_at) or (per_s > 0 and value < stop_at):
                await asyncio.sleep(step_s)
                value = max(stop_at, value + per_s * step_s) if per_s < 0 else min(
                    stop_at, value + per_s * step_s)  # fmt: skip
                device.set(name, value)

        self._scripts.append(asyncio.create_task(run()))

    def power_cut(self, unit: int, runtime_per_s: float = -60.0) -> None:
        """Mains gone: on battery, runtime and charge draining."""
        device = self.devices[unit]
        device.set("on_battery", 1)
        device.set("input_v", 0)
        self.ramp(unit, "runtime_left_s", runtime_per_s, 0)
        self.ramp(unit, "battery_pct", runtime_per_s / 36, 0)


async def _main(port: int) -> None:
    server = ModbusDeviceServer({1: SimulatedDevice(UPS_REGISTERS), 2: SimulatedDevice(ENV_REGISTERS)},
                                port=port)  # fmt: skip
    async with server:
        print(f"Modbus devices on 127.0.0.1:{port} (UPS unit 1, environment unit 2)", flush=True)
        await asyncio.Event().wait()


def device_config(name: str, kind: str, unit: int, port: int) -> ModbusDeviceConfig:
    """The config of a simulated device served by :func:`_main` (for the demo)."""
    regs = {"ups": UPS_REGISTERS, "environment": ENV_REGISTERS, "pdu": PDU_REGISTERS}[kind]
    return ModbusDeviceConfig.model_validate(
        {"name": name, "kind": kind, "port": port, "unit_id": unit, "registers": regs}
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Simulated Modbus UPS and environment sensor")
    parser.add_argument("--port", type=int, default=5020)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.port))


if __name__ == "__main__":
    main()

"""Modbus polling of the UPS, PDU and environment sensors (pymodbus, TCP or RTU).

:func:`decode` turns raw registers into a value (type, signedness, word order, scale);
:class:`DevicePoller` polls one device on its interval with its timeout and reports
readings and alarm changes through callbacks. A device that does not answer is an
``offline`` alarm, never an exception out of :meth:`DevicePoller.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from appliance.host.alarms import AlarmChange, OfflineAlarm, ThresholdAlarm
from appliance.host.config import ModbusDeviceConfig, RegisterConfig

log = logging.getLogger(__name__)

ReadingHandler = Callable[[str, dict[str, float]], None]
AlarmHandler = Callable[[AlarmChange], None]


def register_count(reg: RegisterConfig) -> int:
    return 2 if reg.type in ("u32", "s32") else 1


def decode(raw: Sequence[int | bool], reg: RegisterConfig) -> float:
    """The value of ``reg`` from its raw registers (or bits)."""
    if reg.type == "bool":
        return 1.0 if raw[0] else 0.0
    words = [int(w) & 0xFFFF for w in raw[: register_count(reg)]]
    if reg.type in ("u16", "s16"):
        value = words[0]
        if reg.type == "s16" and value & 0x8000:
            value -= 0x10000
    else:
        hi, lo = (words[0], words[1]) if reg.word_order == "big" else (words[1], words[0])
        value = (hi << 16) | lo
        if reg.type == "s32" and value & 0x80000000:
            value -= 0x1_0000_0000
    return value * reg.scale


def encode(value: float, reg: RegisterConfig) -> list[int]:
    """Inverse of :func:`decode` (the simulator writes registers with it)."""
    if reg.type == "bool":
        return [1 if value else 0]
    raw = round(value / reg.scale)
    if reg.type in ("u16", "s16"):
        return [raw & 0xFFFF]
    raw &= 0xFFFF_FFFF
    hi, lo = raw >> 16, raw & 0xFFFF
    return [hi, lo] if reg.word_order == "big" else [lo, hi]


class DevicePoller:
    """Polls one device forever; readings and alarm changes go to the callbacks."""

    def __init__(self, config: ModbusDeviceConfig, on_reading: ReadingHandler,
                 on_alarm: AlarmHandler) -> None:  # fmt: skip
        self.config = config
        self.on_reading = on_reading
        self.on_alarm = on_alarm
        self.thresholds = [ThresholdAlarm(config.name, t) for t in config.thresholds]
        self.offline = OfflineAlarm(config.name)
        self.values: dict[str, float] = {}
        self.polls = 0
        self.failures = 0

    def _client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        c = self.config
        if c.transport == "tcp":
            return AsyncModbusTcpClient(c.host, port=c.port, timeout=c.timeout_s, retries=0,
                                        reconnect_delay=0)  # fmt: skip
        return AsyncModbusSerialClient(c.serial_port, baudrate=c.baudrate, timeout=c.timeout_s,
                                       retries=0, reconnect_delay=0)  # fmt: skip

    async def _read(self, client: AsyncModbusTcpClient | AsyncModbusSerialClient,
                    reg: RegisterConfig) -> float:  # fmt: skip
        unit, n = self.config.unit_id, register_count(reg)
        if reg.table == "holding":
            rr = await client.read_holding_registers(reg.address, count=n, device_id=unit)
        elif reg.table == "input":
            rr = await client.read_input_registers(reg.address, count=n, device_id=unit)
        elif reg.table == "coil":
            rr = await client.read_coils(reg.address, count=1, device_id=unit)
        else:
            rr = await client.read_discrete_inputs(reg.address, count=1, device_id=unit)
        if rr.isError():
            raise ModbusException(f"{reg.name}: exception response {rr}")
        return decode(rr.bits if reg.table in ("coil", "discrete") else rr.registers, reg)

    async def poll_once(self, client: AsyncModbusTcpClient | AsyncModbusSerialClient) -> bool:
        """One round over the register map; True when the device answered all of it."""
        self.polls += 1
        values: dict[str, float] = {}
        try:
            if not client.connected:
                await asyncio.wait_for(client.connect(), self.config.timeout_s)
                if not client.connected:
                    raise ConnectionError("cannot connect")
            for reg in self.config.registers:
                values[reg.name] = await asyncio.wait_for(self._read(client, reg),
                                                          self.config.timeout_s * 2)  # fmt: skip
        except (ModbusException, ConnectionError, OSError, TimeoutError) as exc:
            self.failures += 1
            client.close()
            change = self.offline.update(False, str(exc) or type(exc).__name__)
            if change:
                self.on_alarm(change)
            return False
        change = self.offline.update(True)
        if change:
            self.on_alarm(change)
        self.values = values
        self.on_reading(self.config.name, values)
        for alarm in self.thresholds:
            v = values.get(alarm.config.value)
            if v is not None and (ch := alarm.update(v)) is not None:
                self.on_alarm(ch)
        return True

    async def run(self) -> None:
        """Poll every ``poll_interval_s`` until cancelled."""
        client = self._client()
        loop = asyncio.get_running_loop()
        try:
            while True:
                started = loop.time()
                try:
                    await self.poll_once(client)
                except Exception:  # a bug in a callback must not stop the monitoring
                    log.exception("polling %s", self.config.name)
                await asyncio.sleep(max(0.0, self.config.poll_interval_s - (loop.time() - started)))
        finally:
            with contextlib.suppress(Exception):
                client.close()

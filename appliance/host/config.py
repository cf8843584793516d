"""The ``hardware:`` section of the site config (``SiteConfig.hardware``). Every tunable
number carries its unit.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PanelConfig(_Strict):
    """The front-panel MCU on a serial port."""

    port: str
    """Serial device path (``/dev/ttyACM0``, a udev symlink, or a pty in tests)."""
    baudrate: int = 115200
    heartbeat_interval_s: float = Field(1.0, gt=0)
    """How often the host feeds the MCU's host watchdog."""
    watchdog_misses: int = Field(3, ge=1)
    """Heartbeats missed in a row before the MCU engages the bypass and resets the host."""
    reset_pulse_ms: int = Field(200, ge=10)
    boot_holdoff_s: float = Field(180.0, gt=0)
    """Time a rebooting host gets before the MCU may reset it again (doubles per retry)."""
    release_after_s: float = Field(30.0, ge=0)
    """Healthy time needed before the bypass relay is released."""
    reconnect_min_s: float = Field(0.2, gt=0)
    reconnect_max_s: float = Field(5.0, gt=0)


class RegisterConfig(_Strict):
    """One value read from a Modbus device."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    address: int = Field(ge=0, le=65535)
    table: Literal["holding", "input", "coil", "discrete"] = "holding"
    type: Literal["u16", "s16", "u32", "s32", "bool"] = "u16"
    scale: float = 1.0
    """Multiplier applied to the raw integer (0.1 for a register in tenths)."""
    word_order: Literal["big", "little"] = "big"
    """For 32-bit values: ``big`` = high word first."""
    unit: str = ""


class ThresholdConfig(_Strict):
    """An alarm when a register goes above or below a level, with hysteresis."""

    value: str
    """Name of the register watched."""
    above: float | None = None
    below: float | None = None
    hysteresis: float = Field(0.0, ge=0)
    """The value must come back this far past the level before the alarm clears."""
    severity: Literal["minor", "major", "critical"] = "major"
    message: str = ""

    @model_validator(mode="after")
    def _one_level(self) -> ThresholdConfig:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above/below")
        return self


class ModbusDeviceConfig(_Strict):
    """A UPS, PDU or environment sensor polled over Modbus TCP or RTU."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    kind: Literal["ups", "pdu", "environment"]
    transport: Literal["tcp", "rtu"] = "tcp"
    host: str = "127.0.0.1"
    port: int = 502
    serial_port: str = ""
    baudrate: int = 9600
    unit_id: int = Field(1, ge=0, le=247)
    poll_interval_s: float = Field(5.0, gt=0)
    timeout_s: float = Field(1.0, gt=0)
    registers: list[RegisterConfig]
    thresholds: list[ThresholdConfig] = []

    @model_validator(mode="after")
    def _known_registers(self) -> ModbusDeviceConfig:
        names = {r.name for r in self.registers}
        for t in self.thresholds:
            if t.value not in names:
                raise ValueError(f"threshold on unknown register {t.value!r}")
        if self.transport == "rtu" and not self.serial_port:
            raise ValueError("rtu needs serial_port")
        return self


class ShutdownConfig(_Strict):
    """A clean, announced shutdown when the UPS is about to run out."""

    device: str
    value: str = "runtime_left_s"
    """Register of ``device`` holding the runtime left, in seconds."""
    below_s: float = Field(300.0, gt=0)
    """Runtime left (seconds) under which the edge goes to maintenance and flushes."""


class HardwareConfig(_Strict):
    """The appliance's hardware, run by ``branchline hw-agent`` (``appliance.host.agent``)."""

    panel: PanelConfig | None = None
    modbus: list[ModbusDeviceConfig] = []
    shutdown: ShutdownConfig | None = None
    status_interval_s: float = Field(default=1.0, gt=0, le=60)
    """How often the agent reads the edge's ``/v1/status`` (the heartbeat's health flag)."""
    api_timeout_s: float = Field(default=2.0, gt=0, le=60)
    """A control-API request slower than this counts as the edge not answering."""
    drill_s: float = Field(default=600.0, gt=0, le=86400)
    """How long a drill started from the front panel forces survivable mode."""
    flush_timeout_s: float = Field(default=30.0, gt=0, le=120)
    """How long the UPS shutdown waits for the outbox to reach the fleet."""

    @model_validator(mode="after")
    def _shutdown_device(self) -> HardwareConfig:
        names = [d.name for d in self.modbus]
        if len(set(names)) != len(names):
            raise ValueError("modbus: device names must be unique")
        if self.shutdown is not None and self.shutdown.device not in names:
            raise ValueError(f"shutdown: no modbus device {self.shutdown.device!r}")
        return self

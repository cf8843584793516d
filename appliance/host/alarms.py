"""Thresholds with hysteresis, device-offline alarms and the UPS shutdown trigger
(sans-I/O: values in, changes out)."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.host.config import ShutdownConfig, ThresholdConfig


@dataclass(frozen=True)
class AlarmChange:
    """An alarm was raised or cleared."""

    device: str
    """Device name from the config."""
    alarm: str
    """``<register>_high``, ``<register>_low`` or ``offline``."""
    raised: bool
    """True when raised, False when cleared."""
    severity: str
    """minor, major or critical."""
    message: str
    """Human text for the panel and the NOC."""
    value: float | None = None
    """The reading that moved it (None for offline)."""


class ThresholdAlarm:
    """One threshold: raised past the level, cleared only ``hysteresis`` back inside."""

    def __init__(self, device: str, config: ThresholdConfig) -> None:
        self.device = device
        self.config = config
        self.active = False
        high = config.above is not None
        self.name = f"{config.value}_{'high' if high else 'low'}"

    def update(self, value: float) -> AlarmChange | None:
        c = self.config
        if c.above is not None:
            trip, clear = value > c.above, value <= c.above - c.hysteresis
            level = c.above
        else:
            assert c.below is not None
            trip, clear = value < c.below, value >= c.below + c.hysteresis
            level = c.below
        if not self.active and trip:
            self.active = True
        elif self.active and clear:
            self.active = False
        else:
            return None
        word = "above" if c.above is not None else "below"
        message = c.message or f"{self.device} {c.value} {value:g} {word} {level:g}"
        return AlarmChange(self.device, self.name, self.active, c.severity, message, value)


class OfflineAlarm:
    """A device that stops answering is an alarm, raised once, cleared when it answers."""

    def __init__(self, device: str, after_failures: int = 1) -> None:
        self.device = device
        self.after_failures = after_failures
        self.failures = 0
        self.active = False

    def update(self, answered: bool, why: str = "") -> AlarmChange | None:
        if answered:
            self.failures = 0
            if self.active:
                self.active = False
                return AlarmChange(self.device, "offline", False, "major", f"{self.device} answers")
            return None
        self.failures += 1
        if not self.active and self.failures >= self.after_failures:
            self.active = True
            text = f"{self.device} not answering" + (f": {why}" if why else "")
            return AlarmChange(self.device, "offline", True, "major", text[:120])
        return None


class ShutdownGuard:
    """Fires once when the UPS runtime left drops below the threshold; re-arms when it
    is back above 1.5 times the threshold (mains returned and the battery charged)."""

    def __init__(self, config: ShutdownConfig) -> None:
        self.config = config
        self.fired = False

    def update(self, device: str, values: dict[str, float]) -> bool:
        if device != self.config.device or self.config.value not in values:
            return False
        runtime = values[self.config.value]
        if not self.fired and runtime < self.config.below_s:
            self.fired = True
            return True
        if self.fired and runtime >= self.config.below_s * 1.5:
            self.fired = False
        return False

"""Status LED blink patterns (sans-I/O): ``level(pattern, now_ms)`` -> on or off.

Periods are powers of two so the patterns stay in phase across the 2**30 wrap of
``time.ticks_ms``. Severity maps to urgency: steady for information, slow blink for
a major condition, fast blink for a critical one.
"""

OFF = "off"
ON = "on"
SLOW = "slow"
"""512 ms on, 512 ms off: a major condition."""
FAST = "fast"
"""128 ms on, 128 ms off: a critical condition."""
BLIP = "blip"
"""128 ms on every 2048 ms: standby, waiting for the host."""
DOUBLE = "double"
"""Two 128 ms blips every 2048 ms: a drill in progress."""

PATTERNS = (OFF, ON, SLOW, FAST, BLIP, DOUBLE)

LED_NAMES = ("power", "wan", "survivable", "alarm")

SEVERITY_PATTERN = {"none": OFF, "minor": ON, "major": SLOW, "critical": FAST}
"""Pattern of the alarm LED for the most severe active alarm."""


def level(pattern: str, now_ms: int) -> bool:
    """Whether an LED showing ``pattern`` is lit at ``now_ms``."""
    if pattern == ON:
        return True
    if pattern == SLOW:
        return now_ms & 1023 < 512
    if pattern == FAST:
        return now_ms & 255 < 128
    if pattern == BLIP:
        return now_ms & 2047 < 128
    if pattern == DOUBLE:
        phase = now_ms & 2047
        return phase < 128 or 256 <= phase < 384
    return False


def patterns_for(state: dict, watchdog_state: str, link_up: bool) -> dict:
    """LED name -> pattern for the panel ``state`` the host sent (see messages.PANEL)
    and the MCU's own view (watchdog state, link up)."""
    if not link_up or watchdog_state != "normal":
        power = BLIP if watchdog_state in ("starting", "holdoff") else FAST
        if watchdog_state == "recovering":
            power = SLOW
    else:
        power = {"mains": ON, "battery": SLOW, "low": FAST}.get(state.get("power", "mains"), ON)
    mode = state.get("mode", "normal")
    survivable = {"survivable": ON, "drill": DOUBLE, "maintenance": SLOW}.get(mode, OFF)
    wan = ON if state.get("wan", "up") == "up" else SLOW
    alarm = SEVERITY_PATTERN.get(state.get("severity", "none"), FAST)
    if watchdog_state in ("resetting", "holdoff"):
        alarm = FAST
    return {"power": power, "wan": wan, "survivable": survivable, "alarm": alarm}

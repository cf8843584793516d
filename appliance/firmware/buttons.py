"""Front-panel buttons: debouncing and short/long press detection (sans-I/O).

``update(pressed, now_ms)`` is called with the raw pin level every scan; it returns
``"short"`` when a press shorter than ``long_ms`` is released, ``"long"`` as soon as a
press has lasted ``long_ms`` (the release after it reports nothing), else None.
"""

SHORT = "short"
LONG = "long"

_TICKS_PERIOD = 1 << 30
_TICKS_HALF = _TICKS_PERIOD // 2


def _diff(a: int, b: int) -> int:
    return ((a - b + _TICKS_HALF) & (_TICKS_PERIOD - 1)) - _TICKS_HALF


class Button:
    """One push button."""

    def __init__(self, name: str, now_ms: int, debounce_ms: int = 30,
                 long_ms: int = 1500) -> None:  # fmt: skip
        self.name = name
        self.debounce_ms = debounce_ms
        self.long_ms = long_ms
        self.pressed = False
        """Debounced state."""
        self._raw = False
        self._raw_since = now_ms
        self._pressed_at = now_ms
        self._long_sent = False

    def update(self, raw: bool, now_ms: int) -> "str | None":
        if raw != self._raw:
            self._raw = raw
            self._raw_since = now_ms
        stable = _diff(now_ms, self._raw_since) >= self.debounce_ms
        if stable and raw != self.pressed:
            self.pressed = raw
            if raw:
                self._pressed_at = self._raw_since
                self._long_sent = False
            elif not self._long_sent:
                return SHORT
            return None
        if self.pressed and not self._long_sent and _diff(now_ms, self._pressed_at) >= self.long_ms:
            self._long_sent = True
            return LONG
        return None

"""The WAN monitor, sans-I/O: NORMAL or SURVIVABLE, with hysteresis and a drill.

Inputs are the WAN signals (``signal("trunks", up, now)`` from the trunk monitor,
``signal("fleet", up, now)`` from the MQTT session) and the technician's drill. The
first configured signal that has something behind it decides (by default the wan
trunks' keepalives, which notice a cut within seconds; a site without wan trunks is
judged on the MQTT session, which needs its keepalive to notice). Outputs are
:class:`ModeChanged` events and one timer, like every protocol core here.

The mode rules, all in :meth:`WanMonitor._decide`:

* WAN down → SURVIVABLE at once (the signals are already debounced: a trunk is down
  after ``down_after`` missed keepalives, the MQTT session after its keepalive);
* WAN up for ``up_after_s`` → NORMAL;
* never two changes within ``min_dwell_s``: a flapping link changes the mode at most
  once per window, and the decision is re-taken when the window closes;
* a drill forces SURVIVABLE for its duration, whatever the WAN says; when it ends the
  WAN decides again (with the same dwell rule).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edge_core.config.schema import WanSettings


class Mode(enum.Enum):
    NORMAL = "normal"
    SURVIVABLE = "survivable"


@dataclass(frozen=True, slots=True)
class ModeChanged:
    old: Mode
    new: Mode
    cause: str
    """``wan down (trunks, fleet)``, ``wan up``, ``drill``, ``drill over`` ..."""
    at: float
    previous_s: float
    """How long the edge was in ``old``."""


class WanMonitor:
    def __init__(self, settings: WanSettings, now: float) -> None:
        self.settings = settings
        self.mode = Mode.NORMAL
        self.since = now
        self._changed_at: float | None = None  # the last change (None: none yet)
        self._signals: dict[str, bool | None] = dict.fromkeys(settings.signals)
        self._up_since: float | None = now  # the WAN is taken as up until told otherwise
        self._drill_until: float | None = None
        self._events: list[ModeChanged] = []
        self._timer: float | None = None

    # -- inputs ------------------------------------------------------------------------
    def signal(self, name: str, up: bool | None, now: float) -> None:
        """``up`` None: nothing behind this signal (left out of the judgement)."""
        if name not in self._signals:
            return
        was = self.wan_up()
        self._signals[name] = up
        is_up = self.wan_up()
        if is_up and not was:
            self._up_since = now
        elif not is_up:
            self._up_since = None
        self._decide(now)

    def drill(self, seconds: float | None, now: float) -> None:
        """Force SURVIVABLE for ``seconds`` (None or 0: end the drill now)."""
        self._drill_until = now + seconds if seconds else None
        if self._drill_until is None:
            self._decide(now, cause_up="drill over")
            return
        self._set(Mode.SURVIVABLE, now, "drill")
        self._decide(now)

    # -- outputs ---------------------------------------------------------------------
    def wan_up(self) -> bool:
        """What the deciding signal says (up while nothing is known)."""
        return next((v for v in self._signals.values() if v is not None), True)

    @property
    def drilling(self) -> bool:
        return self._drill_until is not None

    @property
    def drill_until(self) -> float | None:
        return self._drill_until

    def take_events(self) -> list[ModeChanged]:
        events, self._events = self._events, []
        return events

    def get_timer(self) -> float | None:
        return self._timer

    def handle_timer(self, now: float) -> None:
        if self._timer is not None and now >= self._timer:
            self._timer = None
            if self._drill_until is not None and now >= self._drill_until:
                self._drill_until = None
                self._decide(now, cause_up="drill over")
            else:
                self._decide(now)

    # -- the rules ---------------------------------------------------------------------
    def _decide(self, now: float, *, cause_up: str = "wan up") -> None:
        deadlines: list[float] = []
        if self._drill_until is not None:
            deadlines.append(self._drill_until)
            want, cause = Mode.SURVIVABLE, "drill"
        elif not self.wan_up():
            decider = next(k for k, v in self._signals.items() if v is not None)
            want, cause = Mode.SURVIVABLE, f"wan down ({decider})"
        else:
            assert self._up_since is not None
            settled = self._up_since + self.settings.up_after_s
            if self.mode is Mode.SURVIVABLE and now < settled:
                want, cause = Mode.SURVIVABLE, ""
                deadlines.append(settled)
            else:
                want, cause = Mode.NORMAL, cause_up
        if want is not self.mode:
            window = None if self._changed_at is None else self._changed_at + self.settings.min_dwell_s
            if window is not None and now < window and cause != "drill":
                deadlines.append(window)  # decide again when the window closes
            else:
                self._set(want, now, cause)
        self._timer = min(deadlines) if deadlines else None

    def _set(self, mode: Mode, now: float, cause: str) -> None:
        if mode is self.mode:
            return
        self._events.append(ModeChanged(self.mode, mode, cause, now, now - self.since))
        self.mode, self.since, self._changed_at = mode, now, now

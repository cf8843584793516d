"""The host watchdog: heartbeats in, the PSTN bypass relay and the host reset line out.

Sans-I/O and clock-free: ``heartbeat(healthy, now_ms)`` and ``tick(now_ms)`` feed it,
``relay_engaged`` / ``reset_asserted`` are what the pins must show. Everything that
affects the state machine lives in this module; transitions are the ``TRANSITIONS``
table, the timers are ``_deadline``.

Safe state: the bypass relay is wired normally-closed, so an unpowered or resetting
MCU (``machine.WDT`` fired, pins back to inputs) leaves the emergency line straight
through. "Engaged" therefore means the relay coil is *off*; the host is in the call
path only in ``NORMAL``.

* ``STARTING`` - the MCU just booted; the host gets ``boot_holdoff_ms`` to speak.
* ``NORMAL`` - healthy heartbeats; relay released (line through the host).
* ``RESETTING`` - ``misses`` heartbeats missed: relay engaged at once and the host
  reset line asserted for ``reset_pulse_ms``.
* ``HOLDOFF`` - the host is booting: no further reset for the hold-off, which doubles
  after every reset that did not bring the host back (up to ``max_holdoff_factor``),
  so a slow-booting host is not reset in a loop.
* ``RECOVERING`` - heartbeats again; the relay stays engaged until the host has said
  healthy for ``release_after_ms`` without a break.
"""

STARTING = "starting"
NORMAL = "normal"
RESETTING = "resetting"
HOLDOFF = "holdoff"
RECOVERING = "recovering"

# inputs
HEARTBEAT_OK = "heartbeat_ok"
HEARTBEAT_BAD = "heartbeat_bad"
MISSED = "missed"
PULSE_DONE = "pulse_done"
HOLDOFF_OVER = "holdoff_over"
HEALTHY_LONG = "healthy_long"

TRANSITIONS = {
    STARTING: {HEARTBEAT_OK: RECOVERING, HEARTBEAT_BAD: RECOVERING, HOLDOFF_OVER: RESETTING},
    NORMAL: {HEARTBEAT_OK: NORMAL, HEARTBEAT_BAD: RECOVERING, MISSED: RESETTING},
    RESETTING: {PULSE_DONE: HOLDOFF},
    HOLDOFF: {HEARTBEAT_OK: RECOVERING, HEARTBEAT_BAD: RECOVERING, HOLDOFF_OVER: RESETTING},
    RECOVERING: {
        HEARTBEAT_OK: RECOVERING,
        HEARTBEAT_BAD: RECOVERING,
        MISSED: RESETTING,
        HEALTHY_LONG: NORMAL,
    },
}
"""state -> input -> next state; an input a state does not list is ignored."""

_TICKS_PERIOD = 1 << 30  # as frame.TICKS_PERIOD; kept local so this module stands alone
_TICKS_HALF = _TICKS_PERIOD // 2


def _diff(a: int, b: int) -> int:
    return ((a - b + _TICKS_HALF) & (_TICKS_PERIOD - 1)) - _TICKS_HALF


class WatchdogSettings:
    """Timings of the host watchdog, in milliseconds (pushed by the host's config)."""

    def __init__(
        self,
        heartbeat_interval_ms: int = 1000,
        misses: int = 3,
        reset_pulse_ms: int = 200,
        boot_holdoff_ms: int = 180000,
        release_after_ms: int = 30000,
        max_holdoff_factor: int = 8,
    ) -> None:
        self.heartbeat_interval_ms = heartbeat_interval_ms
        """How often the host sends a heartbeat."""
        self.misses = misses
        """Heartbeats missed in a row before the bypass engages and the host is reset."""
        self.reset_pulse_ms = reset_pulse_ms
        """How long the host reset line is held."""
        self.boot_holdoff_ms = boot_holdoff_ms
        """Time a (re)booting host gets before it may be reset again."""
        self.release_after_ms = release_after_ms
        """Healthy heartbeats needed without a break before the relay is released."""
        self.max_holdoff_factor = max_holdoff_factor
        """Cap of the hold-off doubling after resets that did not help."""


class WatchdogChanged:
    """The watchdog moved from ``previous`` to ``state`` on ``cause``."""

    def __init__(self, previous: str, state: str, cause: str, now_ms: int) -> None:
        self.previous = previous
        """State before."""
        self.state = state
        """State now."""
        self.cause = cause
        """The input that moved it (``missed``, ``healthy_long``...)."""
        self.now_ms = now_ms
        """Tick of the change."""

    def __repr__(self) -> str:
        return f"WatchdogChanged({self.previous} -> {self.state} on {self.cause})"


class HostWatchdog:
    """The state machine; see the module docstring."""

    def __init__(self, settings: WatchdogSettings, now_ms: int) -> None:
        self.settings = settings
        self.state = STARTING
        self.entered_ms = now_ms
        self.last_heartbeat_ms = now_ms
        self.healthy_since_ms = -1
        """Tick of the first healthy heartbeat of the current unbroken run, -1 if none."""
        self.resets = 0
        """Resets since the host was last NORMAL (drives the hold-off doubling)."""
        self.total_resets = 0
        """Reset pulses since the MCU booted."""

    @property
    def relay_engaged(self) -> bool:
        """True: the emergency line bypasses the host (relay coil off, the safe state)."""
        return self.state != NORMAL

    @property
    def reset_asserted(self) -> bool:
        """True while the host reset line must be driven."""
        return self.state == RESETTING

    def holdoff_ms(self) -> int:
        """The hold-off in force: doubled per unsuccessful reset, capped."""
        factor = 1
        for _ in range(max(0, self.resets - 1)):
            if factor * 2 > self.settings.max_holdoff_factor:
                break
            factor *= 2
        return self.settings.boot_holdoff_ms * factor

    def _apply(self, cause: str, now_ms: int, events: list) -> None:
        nxt = TRANSITIONS[self.state].get(cause)
        if nxt is None:
            return
        previous = self.state
        if nxt == RESETTING:
            self.resets += 1
            self.total_resets += 1
        elif nxt == NORMAL:
            self.resets = 0
        if nxt != RECOVERING:
            self.healthy_since_ms = -1
        if nxt != previous:
            self.state = nxt
            self.entered_ms = now_ms
            events.append(WatchdogChanged(previous, nxt, cause, now_ms))

    def heartbeat(self, healthy: bool, now_ms: int) -> list:
        """A heartbeat from the host; ``healthy`` is the host's own verdict."""
        events: list = []
        if self.state == RESETTING:
            return events  # cannot be the host we are resetting; ignore until the pulse ends
        self.last_heartbeat_ms = now_ms
        self._apply(HEARTBEAT_OK if healthy else HEARTBEAT_BAD, now_ms, events)
        if self.state == RECOVERING:
            if not healthy:
                self.healthy_since_ms = -1
            elif self.healthy_since_ms < 0:
                self.healthy_since_ms = now_ms
        events.extend(self.tick(now_ms))
        return events

    def _deadline(self) -> "tuple[str, int] | None":
        """(input, tick) of the next timer of the current state, or None."""
        s = self.settings
        state = self.state
        if state == STARTING or state == HOLDOFF:
            return HOLDOFF_OVER, self.entered_ms + self.holdoff_ms()
        if state == RESETTING:
            return PULSE_DONE, self.entered_ms + s.reset_pulse_ms
        missed_at = self.last_heartbeat_ms + s.heartbeat_interval_ms * s.misses
        if state == RECOVERING and self.healthy_since_ms >= 0:
            release_at = self.healthy_since_ms + s.release_after_ms
            if _diff(release_at, missed_at) < 0:
                return HEALTHY_LONG, release_at
        return MISSED, missed_at

    def next_timer_ms(self, now_ms: int) -> int:
        """Milliseconds until :meth:`tick` can change something (0 = now)."""
        deadline = self._deadline()
        if deadline is None:
            return 1000
        return max(0, _diff(deadline[1], now_ms))

    def tick(self, now_ms: int) -> list:
        """Run the timers due at ``now_ms``; WatchdogChanged events, in order."""
        events: list = []
        for _ in range(8):  # a bounded number of due timers per call, never a loop
            deadline = self._deadline()
            if deadline is None or _diff(now_ms, deadline[1]) < 0:
                break
            # Entered at now_ms, not at the deadline: a late tick must still give the
            # reset line its full pulse in real time.
            self._apply(deadline[0], now_ms, events)
        return events

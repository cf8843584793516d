"""Trunk health, sans-I/O: SIP OPTIONS keepalives judged into up/down with hysteresis.

The adapter (``SipCore``) asks :meth:`TrunkMonitor.get_timer` when to call
:meth:`TrunkMonitor.handle_timer`, which returns the trunks to probe now; it sends an
OPTIONS to each, and reports the answer with :meth:`TrunkMonitor.answered` (any final
response proves the peer alive: 200, but also 404 or 405 from a carrier that does not
implement OPTIONS) or nothing at all: a probe not answered within
``options_timeout_s`` is a failure (the transaction's own Timer F, 32 s, is far too slow
for failover). ``down_after`` failures in a row mark a trunk down, ``up_after``
answers in a row bring it back. Changes come out of :meth:`TrunkMonitor.take_events`.

A trunk without keepalive (``options_interval_s: 0``; see ``Trunk.keepalive_s`` for
the default by kind) is always up. Every trunk starts
up: a box must not refuse calls at boot until the first probes are back.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from edge_core.config.schema import Trunk


@dataclass(frozen=True, slots=True)
class TrunkChanged:
    trunk: str
    """The trunk's name."""
    kind: str
    """``wan`` or ``local``."""
    up: bool
    """Its new state."""
    cause: str
    """``keepalive timeout``, ``answered 200`` ..."""
    at: float


@dataclass(slots=True)
class TrunkStatus:
    config: Trunk
    up: bool = True
    failures: int = 0
    """Consecutive failed probes."""
    successes: int = 0
    """Consecutive answered probes."""
    rtt_ms: float | None = None
    """Round trip of the last answered probe."""
    last_probe_at: float | None = None
    last_status: int | None = None
    """The SIP status of the last answer (None: timed out or none yet)."""
    since: float = 0.0
    """When it entered its current state."""
    probe: tuple[Any, float] | None = None
    """(probe id, sent at) of the probe in flight."""


class TrunkMonitor:
    def __init__(self, trunks: list[Trunk], now: float) -> None:
        self.trunks: dict[str, TrunkStatus] = {t.name: TrunkStatus(t, since=now) for t in trunks}
        self._events: list[TrunkChanged] = []
        self._heap: list[tuple[float, int, str, str]] = []  # (deadline, seq, kind, trunk)
        self._seq = 0
        for t in trunks:
            if t.keepalive_s > 0:
                self._arm(now, "probe", t.name)  # the first probe at once

    # -- outputs ---------------------------------------------------------------------
    def take_events(self) -> list[TrunkChanged]:
        events, self._events = self._events, []
        return events

    def get_timer(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def handle_timer(self, now: float) -> list[str]:
        """Time out late probes; the names of the trunks to probe now (each gets one
        :meth:`sent` call from the adapter)."""
        due: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            _, seq, kind, name = heapq.heappop(self._heap)
            status = self.trunks.get(name)
            if status is None:
                continue
            if kind == "probe":
                self._arm(now + status.config.keepalive_s, "probe", name)
                if status.probe is not None and status.probe[1] + status.config.options_timeout_s <= now:
                    # its timeout is due at this same moment: count it first, then probe
                    # again at once (else a timeout equal to the interval skips a round)
                    status.probe = None
                    status.last_status = None
                    self._failed(status, now, "keepalive timeout")
                if status.probe is None:  # else still waiting: its own timeout decides
                    due.append(name)
            elif kind == "timeout" and status.probe is not None and status.probe[0] == seq:
                status.probe = None
                status.last_status = None
                self._failed(status, now, "keepalive timeout")
        return due

    # -- inputs ------------------------------------------------------------------------
    def sent(self, name: str, now: float) -> int:
        """The adapter sent a probe to ``name``; the id to hand back with the answer."""
        status = self.trunks[name]
        self._seq += 1
        status.probe = (self._seq, now)
        status.last_probe_at = now
        heapq.heappush(self._heap, (now + status.config.options_timeout_s, self._seq, "timeout", name))
        return self._seq

    def answered(self, name: str, probe_id: int, status_code: int, now: float) -> None:
        """A final response to probe ``probe_id``; a late or unknown one is ignored."""
        status = self.trunks.get(name)
        if status is None or status.probe is None or status.probe[0] != probe_id:
            return
        sent_at = status.probe[1]
        status.probe = None
        status.last_status = status_code
        if status_code in (408, 503) or status_code >= 600:
            # 408 (our own transaction gave up) and 503 (overloaded, RFC 3261 §21.5.4)
            # say the peer cannot take calls
            self._failed(status, now, f"answered {status_code}")
            return
        status.rtt_ms = (now - sent_at) * 1000.0
        status.failures = 0
        status.successes += 1
        if not status.up and status.successes >= status.config.up_after:
            self._change(status, True, now, f"answered {status_code}")

    def usable(self, name: str) -> bool:
        status = self.trunks.get(name)
        return status is not None and status.up

    def wan_up(self) -> bool | None:
        """Any ``wan`` trunk up; None when the site has no wan trunk with a keepalive."""
        judged = [s for s in self.trunks.values() if s.config.kind == "wan" and s.config.keepalive_s > 0]
        if not judged:
            return None
        return any(s.up for s in judged)

    # -- inside ------------------------------------------------------------------------
    def _failed(self, status: TrunkStatus, now: float, cause: str) -> None:
        status.successes = 0
        status.failures += 1
        if status.up and status.failures >= status.config.down_after:
            self._change(status, False, now, cause)

    def _change(self, status: TrunkStatus, up: bool, now: float, cause: str) -> None:
        status.up = up
        status.since = now
        self._events.append(TrunkChanged(status.config.name, status.config.kind, up, cause, now))

    def _arm(self, deadline: float, kind: str, name: str) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, kind, name))

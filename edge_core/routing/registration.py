"""Registering the edge to its carriers (RFC 3261 §10.2), sans-I/O.

For each trunk with ``registration: true`` the edge keeps one binding at the carrier's
registrar: REGISTER with one Call-ID for the binding's life and an increasing CSeq
(§10.2.4), answered challenges (401/407, RFC 7616 digest through
``edge_core.sip.auth.build_authorization``), a refresh before the granted expiry, and
retries with backoff after a failure. :class:`OutboundRegistrations` decides *when* and
*what*; ``SipCore`` builds and sends the requests and feeds the answers back.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from edge_core.config.schema import Trunk

REFRESH_AT = 0.8
"""Refresh when this share of the granted expiry has passed."""
RETRY_MIN_S = 5.0
RETRY_MAX_S = 300.0


@dataclass(slots=True)
class Registration:
    trunk: Trunk
    state: str = "unregistered"
    """``unregistered``, ``registering``, ``registered`` or ``failed``."""
    expires_at: float | None = None
    """When the carrier's binding runs out (None: not registered)."""
    reason: str = ""
    """The last failure, e.g. ``403 Forbidden`` or ``timeout``."""
    retry_s: float = RETRY_MIN_S
    challenged: bool = False
    """The request in flight already answered a challenge (a second one fails it)."""
    attempt: int = 0
    """Bumped for every REGISTER sent: an answer to an older one is ignored."""


class OutboundRegistrations:
    def __init__(self, trunks: list[Trunk], now: float) -> None:
        self.registrations = {t.name: Registration(t) for t in trunks if t.registration}
        self._heap: list[tuple[float, str, int]] = [(now, name, 0) for name in self.registrations]
        heapq.heapify(self._heap)

    def get_timer(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def handle_timer(self, now: float) -> list[str]:
        """The trunks to (re-)register now: the adapter sends each a REGISTER and calls
        :meth:`sent`."""
        due: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            _, name, attempt = heapq.heappop(self._heap)
            reg = self.registrations.get(name)
            if reg is not None and attempt == reg.attempt and name not in due:
                due.append(name)
        return due

    def sent(self, name: str, *, challenged: bool = False) -> int:
        reg = self.registrations[name]
        reg.attempt += 1
        reg.challenged = challenged
        if reg.state != "registered":
            reg.state = "registering"
        return reg.attempt

    def answered(self, name: str, attempt: int, status: int, reason: str, granted_s: float | None,
                 now: float) -> str:  # fmt: skip
        """A final answer; returns ``registered``, ``challenge`` (answer it and send
        again), or ``failed``."""
        reg = self.registrations.get(name)
        if reg is None or attempt != reg.attempt:
            return "stale"
        if status in (401, 407) and not reg.challenged:
            return "challenge"
        if 200 <= status < 300:
            granted = granted_s if granted_s and granted_s > 0 else float(reg.trunk.register_expires_s)
            reg.state, reg.reason, reg.expires_at = "registered", "", now + granted
            reg.retry_s = RETRY_MIN_S
            heapq.heappush(self._heap, (now + granted * REFRESH_AT, name, reg.attempt))
            return "registered"
        self._failed(reg, f"{status} {reason}".strip(), now)
        return "failed"

    def timed_out(self, name: str, attempt: int, now: float) -> None:
        reg = self.registrations.get(name)
        if reg is not None and attempt == reg.attempt:
            self._failed(reg, "timeout", now)

    def _failed(self, reg: Registration, why: str, now: float) -> None:
        reg.state, reg.reason = "failed", why
        if reg.expires_at is not None and reg.expires_at <= now:
            reg.expires_at = None
        heapq.heappush(self._heap, (now + reg.retry_s, reg.trunk.name, reg.attempt))
        reg.retry_s = min(reg.retry_s * 2, RETRY_MAX_S)

"""SIP transaction timer values (RFC 3261 §17.1.1.1, Table 4) and the deadline queue
the transaction layer runs them on.

Sans-I/O: nothing here reads a clock. Deadlines are absolute values of the ``now``
the caller injects; the asyncio adapter re-arms one ``loop.call_at`` on
:meth:`TimerQueue.next_deadline`. Hand-written, like the rest of the transaction
layer: no maintained sans-I/O SIP transaction library exists for Python.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Protocol

__all__ = ["TimerSettings", "TimerQueue", "TimerTarget"]


@dataclass(frozen=True, slots=True)
class TimerSettings:
    """The base intervals every transaction timer is derived from (RFC 3261 Table 4)."""

    t1_s: float = 0.5
    """RTT estimate; A, E, G start at T1 and B, F, H, J, L, M last 64*T1."""
    t2_s: float = 4.0
    """Cap of the non-INVITE request and INVITE final response retransmit interval."""
    t4_s: float = 5.0
    """Longest time a message stays in the network; Timers I and K."""
    d_s: float = 32.0
    """Timer D: how long an INVITE client absorbs final retransmissions (§17.1.1.2:
    at least 32 s on unreliable transports)."""

    @property
    def t64_s(self) -> float:
        """64*T1: Timers B, F, H, J and RFC 6026's L and M."""
        return 64.0 * self.t1_s


class TimerTarget(Protocol):
    """Anything that owns timers: it keeps ``{timer name: sequence}`` of its live ones."""

    _timers: dict[str, int]


class TimerQueue:
    """A heap of ``(deadline, seq, target, name)`` with lazy cancellation.

    Arming records the entry's ``seq`` in ``target._timers[name]``; cancelling just
    forgets it there, and stale heap entries are discarded when they reach the top.
    That keeps arm/cancel O(log n)/O(1) and the earliest-deadline peek O(1) amortised.
    """

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerTarget, str]] = []
        self._seq = 0

    def arm(self, target: TimerTarget, name: str, deadline: float) -> None:
        """(Re)start timer ``name`` of ``target``; an earlier arming of it is cancelled."""
        self._seq += 1
        target._timers[name] = self._seq
        heapq.heappush(self._heap, (deadline, self._seq, target, name))

    @staticmethod
    def cancel(target: TimerTarget, name: str) -> None:
        target._timers.pop(name, None)

    @staticmethod
    def cancel_all(target: TimerTarget) -> None:
        target._timers.clear()

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or None when no timer runs."""
        heap = self._heap
        while heap:
            _, seq, target, name = heap[0]
            if target._timers.get(name) == seq:
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float) -> tuple[TimerTarget, str] | None:
        """Remove and return the earliest live timer whose deadline is <= ``now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, target, name = heapq.heappop(heap)
            if target._timers.get(name) == seq:
                del target._timers[name]
                return target, name
        return None

    def __len__(self) -> int:
        """Heap entries, including cancelled ones not yet discarded (for diagnostics)."""
        return len(self._heap)

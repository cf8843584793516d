"""Garbage-collector settings and pause accounting for the edge's one event loop.

A full (generation 2) collection walks every live object; with tens of thousands of
calls' worth of lingering transactions that is a pause long enough for peers to
retransmit (T1 = 500 ms). The daemon therefore freezes what startup allocated (it is
never garbage), raises the young-generation threshold (SIP messages are short-lived and
mostly freed by reference counting), and measures every pause so the figure is known
rather than guessed: ``GcPauses.summary()`` goes into the exit log.
"""

from __future__ import annotations

import gc
import time

YOUNG_THRESHOLD = 20_000  # objects allocated between generation-0 collections (default 700)


class GcPauses:
    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.max_ms = [0.0, 0.0, 0.0]
        self.total_ms = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        ms = (time.perf_counter() - self._start) * 1000
        gen = info.get("generation", 0)
        self.count[gen] += 1
        self.max_ms[gen] = max(self.max_ms[gen], ms)
        self.total_ms += ms

    def summary(self) -> str:
        gens = ", ".join(f"gen{g} {self.count[g]}x max {self.max_ms[g]:.1f} ms" for g in range(3))
        return f"gc pauses: {gens}, total {self.total_ms:.0f} ms"


def tune_for_latency() -> GcPauses:
    """Freeze startup objects, raise the young threshold, start counting pauses."""
    gc.collect()
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, g1, g2)
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    return pauses


def untune(pauses: GcPauses) -> None:
    if pauses in gc.callbacks:
        gc.callbacks.remove(pauses)

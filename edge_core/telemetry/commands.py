"""What the fleet may ask an edge on ``cmd``: ping, logs, diagnostics, maintenance.

Each op takes the command's ``args`` and returns a JSON-able result, or raises
:class:`CommandFailed` with a reason for the ``error`` field. The log lines come from
:class:`LogRing`, a logging handler keeping the last N formatted records in memory.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any, Protocol

import cython_ext
from edge_core.store.db import EdgeStore

OPS = ("ping", "logs", "diagnostics", "maintenance")
MAX_LOG_LINES = 10_000


class CommandFailed(Exception):
    """The command was understood and could not be carried out (or was not understood)."""


class LogRing(logging.Handler):
    """The last ``capacity`` log lines, formatted, for the ``logs`` command."""

    def __init__(self, capacity: int, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.lines: collections.deque[str] = collections.deque(maxlen=capacity)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # logging must never raise into the code that logs
            self.handleError(record)

    def last(self, n: int) -> list[str]:
        return list(self.lines)[-n:] if n > 0 else []


class CommandTarget(Protocol):
    """The daemon as the commands see it."""

    maintenance: bool

    def set_maintenance(self, on: bool) -> None: ...


async def run_command(op: str, args: dict[str, Any], target: CommandTarget, store: EdgeStore,
                      logs: LogRing | None, extra: dict[str, Any]) -> Any:  # fmt: skip
    """Carry out ``op``; ``extra`` is added to diagnostics (the telemetry counters)."""
    if op == "ping":
        return {"pong": True, "at": time.time()}
    if op == "logs":
        n = args.get("lines", 100)
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_LOG_LINES:
            raise CommandFailed(f"args.lines: an integer from 0 to {MAX_LOG_LINES}")
        return {"lines": logs.last(n) if logs is not None else []}
    if op == "diagnostics":
        return {
            "db_integrity": await store.integrity_check(),
            "outbox_backlog": await store.outbox_backlog(),
            "outbox_last_seq": await store.outbox_last_seq(),
            "kernels": cython_ext.implementations(),
            "maintenance": target.maintenance,
            **extra,
        }
    if op == "maintenance":
        on = args.get("on")
        if not isinstance(on, bool):
            raise CommandFailed("args.on: true or false")
        target.set_maintenance(on)
        return {"maintenance": on}
    raise CommandFailed(f"unknown op {op!r} (one of {', '.join(OPS)})")

"""What the fleet may ask an edge on ``cmd``: ping, logs, diagnostics, maintenance, update.

Each op takes the command's ``args`` and returns a JSON-able result, or raises
:class:`CommandFailed` with a reason for the ``error`` field. The log lines come from
:class:`LogRing`, a logging handler keeping the last N formatted records in memory.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import cython_ext
from edge_core.store.db import EdgeStore
from edge_core.telemetry import protocol

OPS = ("ping", "logs", "diagnostics", "maintenance", "update")
BOX_ROOT_ENV = "BRANCHLINE_BOX_ROOT"
log = logging.getLogger("edge.telemetry")
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
    if op == protocol.UPDATE_OP:
        return start_update(args)
    raise CommandFailed(f"unknown op {op!r} (one of {', '.join(OPS)})")


def box_root() -> Path | None:
    """The A/B box this edge runs from: ``$BRANCHLINE_BOX_ROOT``, else the root above
    the running slot's venv (``ROOT/slots/a/venv``); None when not installed as a slot."""
    env = os.environ.get(BOX_ROOT_ENV)
    if env:
        return Path(env)
    venv = Path(sys.prefix).resolve()
    if venv.name == "venv" and venv.parent.parent.name == "slots":
        return venv.parent.parent.parent
    return None


def start_update(args: dict[str, Any]) -> dict[str, Any]:
    """Have the update agent (``images.agent``) run, and answer ``accepted``; it reports
    the outcome under ``args.report_id``. The agent must outlive this edge (the installer
    restarts it) and needs rights the edge's service user lacks, so on a provisioned box
    (``launch: service`` in ``ROOT/etc/updater.yaml``) the edge only writes the request
    for the box's updater service (``images.updater``, root); otherwise (a box whose edge
    runs as root, development) it starts the agent itself, detached, in its own session."""
    try:
        spec = protocol.UpdateArgs.model_validate(args)
    except ValueError as exc:
        raise CommandFailed(f"args: {exc}") from None
    root = box_root()
    if root is None or not (root / "state.json").exists():
        raise CommandFailed("this edge does not run from an A/B box (no ROOT/slots/*/venv with state.json)")
    from images.agent import UpdaterSettings, update_running
    from images.updater import request_pending, write_request

    if update_running(root) or request_pending(root):
        raise CommandFailed("an update is running already")
    if UpdaterSettings.load(root).launch == "service":
        write_request(root, json.loads(spec.model_dump_json()))
        log.info("update to %s: asked the updater service (%s)", spec.version, spec.report_id)
        return protocol.UpdateResult(stage="accepted", version=spec.version).model_dump()
    (root / "log").mkdir(exist_ok=True)
    with open(root / "log" / "update-agent.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "images.agent", "--root", str(root), "--args", spec.model_dump_json()],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=str(root), close_fds=True,
        )
    log.info("update to %s: agent pid %d started (%s)", spec.version, proc.pid, spec.report_id)
    return protocol.UpdateResult(stage="accepted", version=spec.version).model_dump()

"""The box's updater service: runs the update agent as root, on the edge's request.

The edge runs as an unprivileged service user (``User=branchline``, ``ProtectSystem=
strict``): it may not write the slots nor restart itself through the service manager,
and under systemd a child it starts dies with it when the installer restarts the edge
(the unit's cgroup is killed). So the edge's ``update`` command only *asks*: it writes
``ROOT/data/update-request.json`` (atomically, in its own data directory) and answers
``accepted``. The updater takes the request and runs the agent (``python -m
images.agent --root ROOT --args ...``) from the slot that runs now, as root, in its own
service -- which the edge's restart does not touch:

* **systemd**: ``branchline-update.path`` (``PathExists=`` the request) starts
  ``branchline-update.service`` (``Type=oneshot``): ``python -m images.updater --once``.
* **supervisord**: the ``branchline-updater`` program, ``python -m images.updater``,
  checks for a request every ``poll_s`` (supervisord has no path trigger).

A request is renamed to ``update-request.taken.json`` before the agent starts, so it
runs once even if the updater is restarted mid-way; a malformed request is moved aside
as ``update-request.rejected.json`` with the reason in the log. The updater uses the
standard library only, so an install that replaces the slot it was started from cannot
pull modules from under it; each agent starts from the then-current slot.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("branchline.updater")

REQUEST = "data/update-request.json"
TAKEN = "data/update-request.taken.json"
REJECTED = "data/update-request.rejected.json"
UPDATER_SERVICE = "branchline-updater"


def write_request(root: Path, args: dict[str, Any]) -> Path:
    """The edge side: ask the updater to run the agent with ``args`` (atomic)."""
    path = root / REQUEST
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(args))
    os.replace(tmp, path)
    return path


def request_pending(root: Path) -> bool:
    return (root / REQUEST).exists() or (root / TAKEN).exists()


def agent_command(root: Path, args_json: str) -> list[str]:
    """The agent, with the interpreter of the slot that runs now."""
    python = root / "current" / "venv" / "bin" / "python"
    return [str(python), "-m", "images.agent", "--root", str(root), "--args", args_json]


def take(root: Path) -> str | None:
    """The pending request's JSON, moved out of the way first (None: nothing to do)."""
    request, taken = root / REQUEST, root / TAKEN
    if request.exists():
        os.replace(request, taken)
    if not taken.exists():
        return None
    raw = taken.read_text()
    try:
        parsed = json.loads(raw)
        if not isinstance(parsed, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        log.error("update request refused: %s: %s", exc, raw[:200])
        os.replace(taken, root / REJECTED)
        return None
    return raw


def run_once(root: Path) -> int | None:
    """Run the agent for the pending request, if any; its exit status (None: none)."""
    args_json = take(root)
    if args_json is None:
        return None
    (root / "log").mkdir(exist_ok=True)
    with open(root / "log" / "update-agent.log", "ab") as out:
        status = subprocess.run(agent_command(root, args_json), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=str(root), check=False).returncode
    (root / TAKEN).unlink(missing_ok=True)
    log.info("update agent exited with %d", status)
    return status


def serve(root: Path, poll_s: float) -> None:
    while True:
        run_once(root)
        time.sleep(poll_s)  # supervisord has no path trigger: poll the request file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m images.updater", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/opt/branchline")
    parser.add_argument("--once", action="store_true", help="run the pending request, if any, and exit (systemd)")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between checks (supervisord)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    root = Path(args.root)
    if args.once:
        status = run_once(root)
        return 0 if status is None else status
    serve(root, args.poll)
    return 0


if __name__ == "__main__":
    sys.exit(main())

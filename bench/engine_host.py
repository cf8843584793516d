#!/usr/bin/env python3
"""Hosts the edge's media engine for bench/media.py in a process of its own.

Allocates 2N legs, connects leg 2i with leg 2i+1, optionally points each leg at its
generator socket (``--remote-ports FILE``, a JSON list; with latching the generator's
first packet would do the same), prints one JSON line
``{"impl": ..., "ports": [...]}`` (the relay port of each generator leg, in order),
relays until stdin closes, then prints ``{"counters": {...}}`` and exits.

``--impl engine`` runs the compiled engine (``cython_ext.mediaengine._mediaengine``)
and fails when it is not built; ``--impl python`` its pure-Python twin
(``BRANCHLINE_PURE_PYTHON=1``, as ``cython_ext`` selects it); ``auto`` (default) takes
whichever ``cython_ext.mediaengine`` loads: the compiled engine, else the twin.  The
``impl`` line says which one ran.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

IMPL_ENV = {
    "engine": {"BRANCHLINE_REQUIRE_COMPILED": "1"},
    "python": {"BRANCHLINE_PURE_PYTHON": "1"},
    "auto": {},
}


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def select_impl(impl: str) -> None:
    """Set the environment ``cython_ext.load_kernel`` reads, before the engine imports."""
    for name in ("BRANCHLINE_PURE_PYTHON", "BRANCHLINE_REQUIRE_COMPILED"):
        os.environ.pop(name, None)
    os.environ.update(IMPL_ENV[impl])


def run_engine(args: argparse.Namespace, remotes: list[int] | None) -> None:
    select_impl(args.impl)
    from cython_ext.mediaengine import IMPLEMENTATION, MediaEngine

    engine = MediaEngine(args.host, args.port_min, args.port_max, rtp_timeout_s=30.0)
    engine.start()
    try:
        legs = [engine.allocate_leg() for _ in range(2 * args.calls)]
        for i in range(args.calls):
            engine.connect(legs[2 * i][0], legs[2 * i + 1][0])
        if remotes is not None:
            for (leg_id, _port), remote in zip(legs, remotes, strict=True):
                engine.set_remote(leg_id, args.host, remote)
        emit({"impl": f"cython_ext.mediaengine ({IMPLEMENTATION})",
              "ports": [port for _leg, port in legs]})
        sys.stdin.buffer.read()  # until the benchmark closes our stdin
        counters = engine.counters()
    finally:
        engine.stop()
    emit({"counters": dict(counters) if isinstance(counters, dict) else {"raw": repr(counters)}})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port-min", type=int, default=20000)
    parser.add_argument("--port-max", type=int, default=29999)
    parser.add_argument("--remote-ports", type=Path, default=None)
    parser.add_argument("--impl", choices=tuple(IMPL_ENV), default="auto")
    args = parser.parse_args(argv)
    remotes = json.loads(args.remote_ports.read_text()) if args.remote_ports else None
    run_engine(args, remotes)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Hosts the edge's media relay for bench/media.py in a process of its own.

Allocates 2N legs, connects leg 2i with leg 2i+1, optionally points each leg at its
generator socket (``--remote-ports FILE``, a JSON list; with latching the generator's
first packet would do the same), prints one JSON line
``{"impl": ..., "ports": [...]}`` (the relay port of each generator leg, in order),
relays until stdin closes, then prints ``{"counters": {...}}`` and exits.

Uses the Cython engine (``cython_ext.mediaengine``) when it imports, else the asyncio
relay v0 (``edge_core.media.relay.MediaRelay``) on uvloop, as the edge daemon runs it.
``--impl`` forces one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run_engine(args: argparse.Namespace, remotes: list[int] | None) -> None:
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


async def run_asyncio_relay(args: argparse.Namespace, remotes: list[int] | None) -> None:
    from edge_core.media.relay import MediaRelay

    relay = MediaRelay(args.host, args.port_min, args.port_max, latch=True)
    await relay.start()
    try:
        legs = [relay.allocate_leg() for _ in range(2 * args.calls)]
        for i in range(args.calls):
            relay.connect(legs[2 * i], legs[2 * i + 1])
        if remotes is not None:
            for leg, remote in zip(legs, remotes, strict=True):
                relay.set_remote(leg, args.host, remote)
        emit({"impl": f"edge_core.media.relay.MediaRelay ({relay.implementation})",
              "ports": [leg.local_port for leg in legs]})
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.buffer.read)
        counters = relay.stats()
    finally:
        await relay.stop()
    emit({"counters": counters})


def engine_available() -> bool:
    try:
        import cython_ext.mediaengine  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port-min", type=int, default=20000)
    parser.add_argument("--port-max", type=int, default=29999)
    parser.add_argument("--remote-ports", type=Path, default=None)
    parser.add_argument("--impl", choices=("auto", "engine", "asyncio"), default="auto")
    args = parser.parse_args(argv)
    remotes = json.loads(args.remote_ports.read_text()) if args.remote_ports else None
    impl = args.impl
    if impl == "auto":
        impl = "engine" if engine_available() else "asyncio"
    if impl == "engine":
        run_engine(args, remotes)
    else:
        try:
            import uvloop
        except ImportError:
            asyncio.run(run_asyncio_relay(args, remotes))
        else:
            uvloop.run(run_asyncio_relay(args, remotes))
    return 0


if __name__ == "__main__":
    sys.exit(main())

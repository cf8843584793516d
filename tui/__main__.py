"""``branchline tui`` / ``python -m tui``: the console on an edge's control socket."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_SOCKET = "var/edge.sock"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", help=f"the edge's control API socket (default: from --config, else {DEFAULT_SOCKET})")
    parser.add_argument("--config", help="the edge's site config: its api.socket is used")
    parser.add_argument("--bundle-dir", default=".", help="where support bundles are saved (default: here)")


def socket_path(args: argparse.Namespace) -> str:
    if args.socket:
        return str(args.socket)
    if args.config:
        from edge_core.config import load_config

        sock = load_config(args.config).api.socket
        if not sock:
            raise SystemExit(f"{args.config}: the control API is off (api.socket is empty)")
        return sock
    return DEFAULT_SOCKET


def run(args: argparse.Namespace) -> int:
    from tui.app import ConsoleApp

    path = socket_path(args)
    if not Path(path).exists():
        print(f"note: {path} does not exist yet; the console will keep retrying", file=sys.stderr)
    ConsoleApp(path, bundle_dir=args.bundle_dir).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="branchline tui", description="Branchline technician console")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

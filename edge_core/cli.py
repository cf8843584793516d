"""``branchline``: the one command, with a sub-command per part of the product.

Sub-commands import their part lazily, so ``branchline edge check`` does not load the
simulator and a missing optional part cannot break the others.
"""

from __future__ import annotations

import argparse
import logging
import sys


def _edge_check(args: argparse.Namespace) -> int:
    from edge_core.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(
        f"{args.config}: valid (site {config.site.id}, {len(config.extensions)} extensions, "
        f"{len(config.trunks)} trunks, {len(config.routes)} routes)"
    )
    return 0


def _edge_run(args: argparse.Namespace) -> int:
    from edge_core.app import run_edge
    from edge_core.config import ConfigError, load_config
    from edge_core.ivr.prompts import PromptError

    try:
        config = load_config(args.config)
        return run_edge(config, args.ready_file)
    except (ConfigError, PromptError) as exc:
        print(exc, file=sys.stderr)
        return 2


def _duration(text: str) -> float:
    """``60``, ``60s``, ``5m``, ``1h`` -> seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    value = text.strip().lower()
    scale = units.get(value[-1:], None)
    number = value[:-1] if scale is not None else value
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 60s, 5m, 1h)") from None
    if not 0 < seconds <= 86400:
        raise argparse.ArgumentTypeError(f"a drill lasts between 1 s and 24 h, not {text!r}")
    return seconds


def _edge_drill(args: argparse.Namespace) -> int:
    """Start (or ``--stop``) the survivable drill on a running edge, through its API."""
    import json

    import httpx

    from edge_core.config import ConfigError, load_config

    socket = args.socket
    if socket is None:
        try:
            socket = load_config(args.config).api.socket
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
    transport = httpx.HTTPTransport(uds=socket)
    try:
        with httpx.Client(transport=transport, base_url="http://edge", timeout=5.0) as client:
            if args.stop:
                response = client.delete("/v1/drill")
            else:
                response = client.post("/v1/drill", json={"seconds": args.for_s})
    except httpx.HTTPError as exc:
        print(f"branchline edge drill: the edge's control API at {socket} does not answer: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"branchline edge drill: {response.status_code} {response.text}", file=sys.stderr)
        return 1
    mode = response.json()
    print(json.dumps(mode))
    return 0


def _info(args: argparse.Namespace) -> int:
    import json
    from importlib.metadata import version

    import cython_ext

    print(json.dumps({"version": version("branchline"), "kernels": cython_ext.implementations()}))
    return 0


def _sim(args: argparse.Namespace) -> int:
    from appliance.sim.phones import main as sim_main

    return sim_main(args)


def _demo(args: argparse.Namespace) -> int:
    from edge_core.demo import run_demo

    return run_demo(args)


def _fleet_run(args: argparse.Namespace) -> int:
    from fleet.service import run_fleet

    return run_fleet(args)


def _hw_agent(args: argparse.Namespace) -> int:
    import asyncio

    from appliance.host.agent import run_agent
    from edge_core.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    socket = args.socket or config.api.socket
    if not socket:
        print(f"{args.config}: api.socket is off; the agent needs the control API (or --socket)", file=sys.stderr)
        return 2
    asyncio.run(run_agent(config.hardware, socket))
    return 0


def _tui(args: argparse.Namespace) -> int:
    from tui.__main__ import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="branchline", description="Branchline contact-center edge and fleet")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    edge = sub.add_parser("edge", help="the edge daemon").add_subparsers(dest="edge_command", required=True)
    run = edge.add_parser("run", help="run the edge daemon until SIGTERM")
    run.add_argument("--config", required=True, help="site config YAML")
    run.add_argument("--ready-file", help="write listening ports as JSON here once ready")
    run.set_defaults(func=_edge_run)
    drill = edge.add_parser("drill", help="force survivable mode for a while on a running edge (a drill)")
    drill.add_argument("what", choices=["survivable"], help="what to drill")
    drill.add_argument("--for", dest="for_s", type=_duration, default=60.0, help="how long: 60s, 5m, 1h")
    drill.add_argument("--stop", action="store_true", help="end the drill now")
    where = drill.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", help="the edge's site config (its api.socket)")
    where.add_argument("--socket", help="the edge's control API socket")
    drill.set_defaults(func=_edge_drill)

    check = edge.add_parser("check", help="validate a site config and exit")
    check.add_argument("--config", required=True)
    check.set_defaults(func=_edge_check)

    fleet = sub.add_parser("fleet", help="the fleet manager").add_subparsers(dest="fleet_command", required=True)
    fleet_run = fleet.add_parser("run", help="migrate the fleet store and run N ingest workers until SIGTERM")
    from fleet.service import add_arguments as add_fleet_arguments

    add_fleet_arguments(fleet_run)
    fleet_run.set_defaults(func=_fleet_run)

    hw = sub.add_parser("hw-agent", help="front panel, watchdog and Modbus devices tied to a running edge")
    hw.add_argument("--config", required=True, help="site config YAML (its hardware: and api.socket)")
    hw.add_argument("--socket", help="the edge's control API socket (default: api.socket of the config)")
    hw.set_defaults(func=_hw_agent)

    from images.cli import add_image_commands  # image build|verify|install|keygen|status

    add_image_commands(sub)
    from provisioning.cli import add_provision_commands  # provision bootstrap

    add_provision_commands(sub)

    info = sub.add_parser("info", help="version and which kernel implementations are loaded")
    info.set_defaults(func=_info)

    sim = sub.add_parser("sim", help="simulated phones: register and place calls through an edge")
    sim.add_argument("--edge", required=True, help="edge SIP address host:port (UDP)")
    sim.add_argument("--config", required=True, help="the edge's site config (phones use its extensions)")
    sim.add_argument("--phones", type=int, default=4, help="how many extensions to register")
    sim.add_argument("--calls", type=int, default=4, help="how many calls to place")
    sim.add_argument("--talk-s", type=float, default=2.0, help="seconds each answered call lasts")
    sim.set_defaults(func=_sim)

    demo = sub.add_parser("demo", help="edge + simulated phones on free ports; prints the CDRs")
    demo.add_argument("--calls", type=int, default=4)
    demo.add_argument("--keep-running", action="store_true",
                      help="on a terminal, leave the edge and the fleet up after the calls (Ctrl-C stops)")
    demo.set_defaults(func=_demo)
    tui = sub.add_parser("tui", help="the technician console on an edge's control socket")
    from tui.__main__ import add_arguments as add_tui_arguments

    add_tui_arguments(tui)
    tui.set_defaults(func=_tui)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""``branchline provision bootstrap|status|collect-logs|rotate-credentials HOST...``:
argument parsing and output only (the work is in provisioning.tasks and .maintain)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def _connector(args: argparse.Namespace) -> Callable[[str], Any]:
    from fabric import Connection

    def connect(host: str) -> Connection:
        name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
        kwargs = {"key_filename": args.key} if args.key else {}
        return Connection(name, port=int(port) if port else None, user=args.user, connect_kwargs=kwargs)

    return connect


def _each(args: argparse.Namespace, work: Callable[[Any], T]) -> list[T]:
    """``work(connection)`` for every host in parallel; results in host order."""
    from provisioning.tasks import on_hosts

    connect = _connector(args)
    return on_hosts(args.hosts, lambda h: work(connect(h)), args.parallel)


def _bootstrap(args: argparse.Namespace) -> int:
    from provisioning.tasks import BootstrapOptions, StepResult, bootstrap_many

    tokens = dict(zip(args.hosts, args.enroll_token or [], strict=False))
    pubkey = Path(args.bundle_pubkey).read_bytes() if args.bundle_pubkey else b""

    def opts(host: str) -> BootstrapOptions:
        site = args.site if len(args.hosts) == 1 else f"{args.site}-{host.split('.')[0].replace(':', '-')}"
        return BootstrapOptions(site=site, fleet_url=args.fleet, bundle=Path(args.bundle), root=args.root,
                                enroll_token=tokens.get(host, ""), bundle_public_key=pubkey,
                                install=not args.no_install, service=args.service, service_user=args.service_user,
                                python=args.python, apt=not args.no_apt)

    def progress(host: str, step: StepResult) -> None:  # one line per step as it finishes
        print(f"{host}: {'*' if step.changed else '-'} {step.name}: {step.detail}", flush=True)

    reports = bootstrap_many(_connector(args), args.hosts, opts, parallel=args.parallel, on_step=progress)
    print()
    for report in reports:
        print("\n".join(report.lines()))
    return 0 if all(r.ok for r in reports) else 1


def _status(args: argparse.Namespace) -> int:
    from provisioning.maintain import box_status

    reports = _each(args, lambda c: box_status(c, args.root))
    for report in reports:
        print("\n".join(report.lines()))
    return 0 if all(r.ok and r.health.get("ok") for r in reports) else 1


def _collect_logs(args: argparse.Namespace) -> int:
    from provisioning.maintain import collect_logs

    def one(c: Any) -> str:
        try:
            return f"{c.host}: {collect_logs(c, args.root, Path(args.out))}"
        except Exception as exc:  # reported per host
            return f"{c.host}: FAILED {type(exc).__name__}: {exc}"

    lines = _each(args, one)
    print("\n".join(lines))
    return 1 if any("FAILED" in line for line in lines) else 0


def _rotate(args: argparse.Namespace) -> int:
    from provisioning.maintain import rotate_credentials

    token = args.token or os.environ.get("BRANCHLINE_FLEET_TOKEN", "")
    if not token:
        print("an admin token is needed: --token or BRANCHLINE_FLEET_TOKEN")
        return 2

    def one(c: Any) -> tuple[str, bool]:
        try:
            steps = rotate_credentials(c, args.root, args.fleet, token)
            return "\n".join([f"{c.host}: rotated"] + [f"  * {s.name}: {s.detail}" for s in steps]), True
        except Exception as exc:  # reported per host
            return f"{c.host}: FAILED {type(exc).__name__}: {exc}", False

    results = _each(args, one)
    print("\n".join(text for text, _ in results))
    return 0 if all(ok for _, ok in results) else 1


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("hosts", nargs="+", metavar="HOST", help="host or host:port")
    p.add_argument("--user", default="root", help="SSH user: root, or an admin with password-less sudo (key only)")
    p.add_argument("--key", help="SSH private key")
    p.add_argument("--root", default="/opt/branchline")
    p.add_argument("--parallel", type=int, default=8)


def add_provision_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    provision = sub.add_parser("provision", help="bootstrap and maintain boxes over SSH (Fabric)")
    cmds = provision.add_subparsers(dest="provision_command", required=True)

    boot = cmds.add_parser("bootstrap", help="bring up boxes from nothing to installed, enrolled and healthy; "
                                             "idempotent")
    _common(boot)
    boot.add_argument("--site", required=True, help="site id (suffixed per host when several)")
    boot.add_argument("--fleet", required=True, help="fleet URL for enrollment")
    boot.add_argument("--bundle", required=True)
    boot.add_argument("--bundle-pubkey", help="PEM of the bundle signing key: verified against before anything "
                                              "is written, written to ROOT/etc/bundle.pub")
    boot.add_argument("--enroll-token", action="append", metavar="TOKEN",
                      help="one-time enrollment token (POST /api/v1/enroll-tokens), once per host in order")
    boot.add_argument("--service", choices=("systemd", "supervisor"), default="systemd",
                      help="the box's process manager (supervisor: a box-owned supervisord)")
    boot.add_argument("--service-user", default="branchline")
    boot.add_argument("--python", default="/usr/bin/python3", help="the box's Python")
    boot.add_argument("--no-install", action="store_true", help="lay out and enroll only")
    boot.add_argument("--no-apt", action="store_true", help="a missing Debian package is an error")
    boot.set_defaults(func=_bootstrap)

    status = cmds.add_parser("status", help="release per slot, service, health, last install event per box")
    _common(status)
    status.set_defaults(func=_status)

    logs = cmds.add_parser("collect-logs", help="a support bundle per box (.tar.gz), secrets redacted")
    _common(logs)
    logs.add_argument("--out", default=".", help="directory for the bundles")
    logs.set_defaults(func=_collect_logs)

    rotate = cmds.add_parser("rotate-credentials", help="new MQTT credentials from the fleet, applied on the box")
    _common(rotate)
    rotate.add_argument("--fleet", required=True, help="fleet URL")
    rotate.add_argument("--token", help="fleet admin token (default: $BRANCHLINE_FLEET_TOKEN)")
    rotate.set_defaults(func=_rotate)

"""``branchline provision bootstrap HOST... --site S --fleet URL --bundle FILE``."""

from __future__ import annotations

import argparse
from pathlib import Path


def _bootstrap(args: argparse.Namespace) -> int:
    from fabric import Connection

    from provisioning.tasks import BootstrapOptions, bootstrap_many

    def connect(host: str) -> Connection:
        kwargs = {"key_filename": args.key} if args.key else {}
        return Connection(host, user=args.user, connect_kwargs=kwargs)

    tokens = dict(zip(args.hosts, args.enroll_token or [], strict=False))

    def opts(host: str) -> BootstrapOptions:
        site = args.site if len(args.hosts) == 1 else f"{args.site}-{host.split('.')[0]}"
        return BootstrapOptions(site=site, fleet_url=args.fleet, bundle=Path(args.bundle), root=args.root,
                                enroll_token=tokens.get(host, ""),
                                bundle_public_key=Path(args.bundle_pubkey).read_bytes() if args.bundle_pubkey else b"")

    reports = bootstrap_many(connect, args.hosts, opts, parallel=args.parallel)
    for report in reports:
        print("\n".join(report.lines()))
    return 0 if all(r.ok for r in reports) else 1


def add_provision_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    provision = sub.add_parser("provision", help="bootstrap and maintain boxes over SSH (Fabric)")
    cmds = provision.add_subparsers(dest="provision_command", required=True)
    boot = cmds.add_parser("bootstrap", help="bring up boxes from nothing; idempotent")
    boot.add_argument("hosts", nargs="+", metavar="HOST")
    boot.add_argument("--site", required=True, help="site id (suffixed per host when several)")
    boot.add_argument("--fleet", required=True, help="fleet URL for enrollment")
    boot.add_argument("--bundle", required=True)
    boot.add_argument("--user", default="admin")
    boot.add_argument("--key", help="SSH private key")
    boot.add_argument("--root", default="/opt/branchline")
    boot.add_argument("--parallel", type=int, default=8)
    boot.add_argument("--enroll-token", action="append", metavar="TOKEN",
                      help="one-time enrollment token (POST /api/v1/enroll-tokens), once per host in order")
    boot.add_argument("--bundle-pubkey", help="PEM of the bundle signing key, written to ROOT/etc/bundle.pub")
    boot.set_defaults(func=_bootstrap)

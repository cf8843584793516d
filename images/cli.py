"""``branchline image build|verify|install|keygen|status``: argument parsing and output only."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _keygen(args: argparse.Namespace) -> int:
    from images.signing import generate_key, public_raw_b64

    public = generate_key(Path(args.out))
    print(f"{args.out}: private key (keep it off the boxes); {args.out}.pub: public key {public_raw_b64(public)}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from images.build import build_from_source
    from images.signing import load_private_key

    manifest = build_from_source(
        Path(args.source), Path(args.out), version=args.version, key=load_private_key(Path(args.key)),
        with_deps=not args.project_only, files_dir=Path(args.files) if args.files else None,
        min_upgrade_from=args.min_upgrade_from,
    )
    print(json.dumps({"bundle": args.out, **manifest.to_dict()}, indent=1))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from images.bundle import BundleError, verify_bundle
    from images.signing import load_public_key_file

    try:
        verified = verify_bundle(Path(args.bundle), load_public_key_file(Path(args.pubkey)))
    except BundleError as exc:
        print(f"REFUSED {exc}", file=sys.stderr)
        return 3
    print(json.dumps({"ok": True, "manifest_sha256": verified.manifest_sha256, **verified.manifest.to_dict()}, indent=1))
    return 0


def _installer(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The box's installer: its settings from ``ROOT/etc/updater.yaml`` (the same the
    update agent uses), overridden by the command line."""
    from dataclasses import replace

    from images.agent import UpdaterSettings, make_installer

    root = Path(args.root)
    settings = UpdaterSettings.load(root)
    if args.supervisor_socket:
        settings = replace(settings, service="supervisor", supervisor_socket=args.supervisor_socket)
    if args.pubkey:
        settings = replace(settings, bundle_public_key_file=str(Path(args.pubkey).absolute()))
    return make_installer(root, settings)


def _install(args: argparse.Namespace) -> int:
    result = _installer(args).install(Path(args.bundle), allow_downgrade=args.allow_downgrade)
    print(json.dumps(result.to_json(), indent=1))
    return {"committed": 0, "refused": 3, "rolled_back": 4, "failed": 5}[result.outcome]


def _apply_config(args: argparse.Namespace) -> int:
    healthy, detail = _installer(args).apply_config()
    print(json.dumps({"ok": healthy, "detail": detail}))
    return 0 if healthy else 1


def _health(args: argparse.Namespace) -> int:
    """The application's own health check, once (no baseline): exit 0 when it passes."""
    from images.health import Baseline, EdgeEndpoints, EdgeProbe, HealthPolicy, judge
    from images.slots import BoxLayout

    layout = BoxLayout(Path(args.root))
    config = layout.root / "current" / "etc" / "site.yaml"
    if not config.exists():
        print(json.dumps({"ok": False, "checks": [{"name": "slot", "ok": False,
                                                  "detail": f"{config} missing: nothing installed"}]}))
        return 1
    report = judge(EdgeProbe(EdgeEndpoints.from_config(config, layout.data_dir)).observe(), Baseline(),
                   HealthPolicy())
    print(json.dumps({"ok": report.ok, "checks": [
        {"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks]}))
    return 0 if report.ok else 1


def _status(args: argparse.Namespace) -> int:
    from images.slots import BoxLayout

    layout = BoxLayout(Path(args.root))
    print(json.dumps({"current": layout.current(), **layout.load().to_json()}, indent=1))
    return 0


def add_image_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    image = sub.add_parser("image", help="update bundles: build, verify, install (A/B with rollback)")
    cmds = image.add_subparsers(dest="image_command", required=True)

    keygen = cmds.add_parser("keygen", help="a new ed25519 signing key (PEM, 0600) and its .pub")
    keygen.add_argument("out")
    keygen.set_defaults(func=_keygen)

    build = cmds.add_parser("build", help="build a signed bundle from the source tree")
    build.add_argument("--version", required=True)
    build.add_argument("--key", required=True, help="ed25519 private key (PEM)")
    build.add_argument("--out", required=True)
    build.add_argument("--source", default=".")
    build.add_argument("--files", help="directory shipped as files/ (prompts, defaults, config/override.yaml)")
    build.add_argument("--min-upgrade-from", default="0")
    build.add_argument("--project-only", action="store_true",
                       help="only the project wheel (development; the box needs the dependencies already)")
    build.set_defaults(func=_build)

    verify = cmds.add_parser("verify", help="check signature and hashes; print the manifest")
    verify.add_argument("bundle")
    verify.add_argument("--pubkey", required=True)
    verify.set_defaults(func=_verify)

    for name, func, text in (("install", _install, "verify, install into the inactive slot, switch, "
                              "health-check, commit or roll back"), ("status", _status, "slots and history"),
                             ("health", _health, "run the edge's health check once; exit 0 when healthy"),
                             ("apply-config", _apply_config, "after ROOT/etc/site.yaml changed: write it into "
                              "the running slot, restart the edge, wait until healthy")):
        p = cmds.add_parser(name, help=text)
        if name in ("install", "apply-config"):
            p.add_argument("--pubkey", help="bundle signing key (default: ROOT/etc/bundle.pub via updater.yaml)")
            p.add_argument("--supervisor-socket",
                           help="use supervisord on this socket (default: ROOT/etc/updater.yaml, else systemd)")
        if name == "install":
            p.add_argument("bundle")
            p.add_argument("--allow-downgrade", action="store_true")
        p.add_argument("--root", default="/opt/branchline")
        p.set_defaults(func=func)

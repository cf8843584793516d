"""``python -m fleet.api``: serve the NOC API and dashboard, or issue a token.

    python -m fleet.api serve --db URL --http 127.0.0.1:8080 --tokens var/fleet-tokens.json \\
        [--broker mqtt://127.0.0.1:1883 --signing-key var/fleet-signing.pem]
    python -m fleet.api token add alice --role admin --tokens var/fleet-tokens.json

Config push needs both ``--broker`` (retained publish) and ``--signing-key`` (created,
mode 0600, when missing); without them the API is read-only for configuration. With
``--mosquitto-password-file`` and ``--mosquitto-acl-file`` (``fleet.broker_auth``),
enrollment and credential rotation keep mosquitto's authentication in step; the fleet's
own MQTT credentials go in the ``--broker`` URL (``mqtt://user:password@host:port``). The
environment variable ``BRANCHLINE_FLEET_ADMIN_TOKEN`` bootstraps an admin token named
``admin`` when the token file has none of that name.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any

from fleet import broker_auth
from fleet.api.auth import Role, TokenError, TokenRegistry
from fleet.mqtt import BROKER_ENV

ADMIN_TOKEN_ENV = "BRANCHLINE_FLEET_ADMIN_TOKEN"
GRACEFUL_SHUTDOWN_S = 3


def parse_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--http wants host:port, not {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``serve`` (``fleet run`` can reuse them)."""
    parser.add_argument("--db", default="sqlite+aiosqlite:///var/fleet.db")
    parser.add_argument("--http", type=parse_hostport, default=("127.0.0.1", 8080), help="host:port to listen on")
    parser.add_argument("--tokens", default="var/fleet-tokens.json", help="token file (hashes only)")
    parser.add_argument("--broker", default=os.environ.get(BROKER_ENV),
                        help=f"mqtt://[user:password@]host:port for config push (retained publish); "
                             f"default ${BROKER_ENV}")
    parser.add_argument("--signing-key", help="ed25519 PEM that signs configs (created when missing)")
    parser.add_argument("--no-migrate", action="store_true", help="the store is migrated already")
    parser.add_argument("--poll-interval-s", type=float, default=1.0, help="event stream store polling period")
    broker_auth.add_arguments(parser)


async def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fleet.api.app import create_app
    from fleet.configs import ConfigStore, load_signing_key
    from fleet.mqtt import RetainedPublisher
    from fleet.store import FleetStore

    try:
        auth = broker_auth.from_arguments(args, args.broker)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    tokens = TokenRegistry(args.tokens)
    bootstrap = os.environ.get(ADMIN_TOKEN_ENV)
    if bootstrap and tokens.get("admin") is None:
        tokens.issue("admin", Role.admin, created_by="bootstrap", secret=bootstrap)
    store = await FleetStore.open(args.db, migrate_schema=not args.no_migrate)
    publisher = RetainedPublisher(args.broker, "fleet-api-config") if args.broker else None
    configs = None
    if publisher is not None and args.signing_key:
        configs = ConfigStore(store, load_signing_key(args.signing_key, create=True), publisher)
    app = create_app(store, configs=configs, tokens=tokens, poll_interval_s=args.poll_interval_s)
    app.state.broker_auth = auth
    host, port = args.http
    loop = asyncio.get_running_loop()

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # event streams never end by themselves: end them first, so the graceful
            # shutdown does not wait GRACEFUL_SHUTDOWN_S for them and then cut them
            loop.call_soon_threadsafe(app.state.ctx.hub.end_streams)
            super().handle_exit(sig, frame)

    server = Server(uvicorn.Config(app, host=host, port=port, log_level="info", lifespan="on",
                                   timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S))
    try:
        await server.serve()
    finally:
        if publisher is not None:
            await publisher.close()
        await store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet.api")
    sub = parser.add_subparsers(dest="command", required=True)
    add_arguments(sub.add_parser("serve", help="serve the API and dashboard"))
    token = sub.add_parser("token", help="manage tokens offline")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    add = token_sub.add_parser("add", help="issue a token and print its secret")
    add.add_argument("name")
    add.add_argument("--role", choices=[r.value for r in Role], default="viewer")
    add.add_argument("--tokens", default="var/fleet-tokens.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "token":
        try:
            print(TokenRegistry(args.tokens).issue(args.name, Role(args.role), created_by="cli"))
        except TokenError as exc:
            print(exc, file=sys.stderr)
            return 2
        return 0
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())

"""A config change made centrally: ``python -m tests.system.fleet_push`` run inside the
``central`` namespace (the broker's address is only reachable from there).

Stores a new version of the ``site:<id>`` layer through ``fleet.configs.ConfigStore``
(validated, versioned, signed, published retained on the site's config topic) and
prints ``{"site": .., "version": N}``: what an operator's push through the fleet does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from fleet.configs import ConfigStore, load_signing_key
from fleet.mqtt import RetainedPublisher
from fleet.store import FleetStore


async def push(db: str, broker: str, key: Path, site: str, layer: dict[str, object], reason: str) -> int:
    store = await FleetStore.open(db, migrate_schema=False)
    try:
        async with RetainedPublisher(broker, f"fleet-push-{site}") as publish:
            configs = ConfigStore(store, load_signing_key(key), publish)
            change = await configs.set_layer(f"site:{site}", layer, author="noc", reason=reason)
    finally:
        await store.close()
    return change.site_versions[site]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleet_push")
    parser.add_argument("--db", required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--key", required=True, type=Path, help="the fleet's ed25519 signing key (PEM)")
    parser.add_argument("--site", required=True)
    parser.add_argument("--layer", required=True, type=Path, help="JSON file: the site layer's body")
    parser.add_argument("--reason", default="system test")
    args = parser.parse_args(argv)
    layer = json.loads(args.layer.read_text())
    version = asyncio.run(asyncio.wait_for(push(args.db, args.broker, args.key, args.site, layer, args.reason), 30))
    print(json.dumps({"site": args.site, "version": version}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

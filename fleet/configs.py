"""Configuration as desired state: layered, versioned, validated, signed, published.

A site's desired config is composed from layers, each an immutable series of versions
(``config_layers``): ``base`` (fleet-wide), ``region:<name>``, ``type:<name>`` (site
type), then ``site:<id>`` overrides, deep-merged in that order (mappings merge key by
key; lists and scalars replace). The site's ``site.id`` is always its own id.

A change to any layer is one transaction: the new layer version, then for every site
the layer reaches, the recomposed config validated with ``edge_core.config.schema``
(the edge's own schema). If any site's result is invalid, nothing is stored and
:class:`ConfigRejected` names the site and the field path. Sites whose composed config
changed get a new immutable ``config_versions`` row (version n+1, author, reason, which
layer versions it came from) and an audit entry. After the commit, each new version is
signed with the fleet's ed25519 key (``protocol.sign_config``) and published retained
(QoS 1) on ``bl/v1/site/{site}/config``: an edge offline now gets it when it reconnects.

Rollback is a new version with the body of an earlier one: :meth:`ConfigStore.rollback`
does it for a layer (and so for every site it reaches); :meth:`ConfigStore.rollback_site`
republishes an earlier composed version of one site as its newest (until the next change
to one of its layers recomposes it). Drift — desired version != the version the edge
reports — is read from the registry (``SiteRow.drift``).
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from edge_core.config.schema import ConfigError, parse_config
from edge_core.telemetry import protocol as p
from fleet.store import FleetStore, schema
from fleet.store.engine import insert_ignore

Publisher = Callable[[str, bytes], Awaitable[None]]
"""``await publish(topic, payload)``: publish retained at QoS 1 and wait for the broker's ack."""

_SCOPE = re.compile(r"^(base|(region|type|site):[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")
_CONFIG_LOCK_ID = 0x42_4C_43_46  # "BLCF": config changes are serialised on PostgreSQL
VALIDATION_PROBE = "validation-probe"
"""Site id a layer is validated with when it reaches no site yet."""


class ConfigRejected(Exception):
    """A change refused before anything was stored; ``problems`` are ``(path, reason)``
    with the path prefixed by the site it was found for (``site b1: routes[0].match``)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("config rejected:\n" + "\n".join(f"  {path}: {reason}" for path, reason in problems))


@dataclass(frozen=True)
class ConfigChange:
    scope: str
    layer_version: int
    site_versions: dict[str, int] = field(default_factory=dict)
    """New desired versions, by site (sites whose composed config did not change are absent)."""


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base``: nested mappings merge, anything else replaces. Inputs are not modified."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def scopes_for(site_id: str, region: str = "", site_type: str = "") -> list[str]:
    """The layers that make up a site's config, lowest first."""
    scopes = ["base"]
    if region:
        scopes.append(f"region:{region}")
    if site_type:
        scopes.append(f"type:{site_type}")
    return [*scopes, f"site:{site_id}"]


def compose(site_id: str, layers: list[Mapping[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for layer in layers:
        body = deep_merge(body, layer)
    return deep_merge(body, {"site": {"id": site_id}})


def validate(site_id: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems of a composed config by the edge's schema, paths prefixed by the site."""
    try:
        parse_config(body, f"site {site_id}")
    except ConfigError as exc:
        return [(f"site {site_id}: {path}", reason) for path, reason in exc.problems]
    return []


# -- keys -----------------------------------------------------------------------------------


def load_signing_key(path: str | Path, *, create: bool = False) -> Any:
    """The fleet's ed25519 private key from a PEM file; with ``create``, a new one is
    written (mode 0600) when the file does not exist."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    if not path.exists() and create:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return key
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def public_key_b64(private_key: Any) -> str:
    """What an edge puts in ``telemetry.fleet_public_key``: base64 of the 32 raw bytes."""
    import base64

    from cryptography.hazmat.primitives import serialization

    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


# -- the store of desired configs -------------------------------------------------------------


class ConfigStore:
    def __init__(self, store: FleetStore, signing_key: Any, publish: Publisher | None = None) -> None:
        self.store = store
        self.signing_key = signing_key
        self.publish = publish

    async def set_layer(self, scope: str, body: Mapping[str, Any], *, author: str, reason: str) -> ConfigChange:
        """Store a new version of a layer and the recomposed configs of the sites it
        reaches, then publish those. Raises ConfigRejected (nothing stored) if a
        result is invalid."""
        if not _SCOPE.match(scope):
            raise ConfigRejected([("(scope)", f"{scope!r} is not base, region:<name>, type:<name> or site:<id>")])
        if not isinstance(body, Mapping):
            raise ConfigRejected([("(top level)", "a layer is a mapping of config sections")])
        if not author:
            raise ConfigRejected([("(author)", "every change needs an author")])
        now = time.time()
        async with self.store.transaction() as conn:
            await self._lock(conn)
            cl = schema.config_layers
            layer_version = 1 + ((await conn.execute(
                select(func.max(cl.c.version)).where(cl.c.scope == scope))).scalar() or 0)
            if scope.startswith("site:"):
                await conn.execute(insert_ignore(conn.dialect.name, schema.sites).values(
                    id=scope[5:], created_at=now))
            await conn.execute(cl.insert().values(scope=scope, version=layer_version, body=dict(body),
                                                  author=author, reason=reason, created_at=now))
            sites = await self._sites_reached(conn, scope)
            site_versions = await self._recompose(conn, sites or [VALIDATION_PROBE], author, reason, now,
                                                  store=bool(sites), probe_scope=scope)
            await self.store.audit(conn, author, "config.layer", scope,
                                   {"version": layer_version, "reason": reason, "sites": site_versions}, now)
        await self.publish_versions(site_versions)
        return ConfigChange(scope, layer_version, site_versions)

    async def rollback(self, scope: str, to_version: int, *, author: str, reason: str = "") -> ConfigChange:
        """A new version of ``scope`` whose body is that of ``to_version``."""
        old = [v for v in await self.store.list_layer_versions(scope, limit=100_000) if v.version == to_version]
        if not old:
            raise ConfigRejected([("(version)", f"{scope} has no version {to_version}")])
        why = f"rollback to v{to_version}" + (f": {reason}" if reason else "")
        return await self.set_layer(scope, old[0].body, author=author, reason=why)

    async def rollback_site(self, site_id: str, to_version: int, *, author: str, reason: str = "") -> int:
        """Publish an earlier composed version of one site as its newest; returns the new version."""
        old = await self.store.get_config_version(site_id, to_version)
        if old is None:
            raise ConfigRejected([("(version)", f"site {site_id} has no config version {to_version}")])
        now = time.time()
        async with self.store.transaction() as conn:
            await self._lock(conn)
            version = await self._next_site_version(conn, site_id)
            await conn.execute(schema.config_versions.insert().values(
                site_id=site_id, version=version, body=old.body, sources={**old.sources, "rollback_of": to_version},
                author=author, reason=f"rollback to v{to_version}" + (f": {reason}" if reason else ""),
                created_at=now))
            await self.store.audit(conn, author, "config.rollback", f"site:{site_id}",
                                   {"to": to_version, "version": version, "reason": reason}, now)
        await self.publish_versions({site_id: version})
        return version

    async def recompose(self, site_id: str, *, author: str, reason: str) -> int | None:
        """Recompose one site from its layers (after its region or type changed); the new
        version, or None when nothing changed. Raises ConfigRejected if invalid."""
        now = time.time()
        async with self.store.transaction() as conn:
            await self._lock(conn)
            versions = await self._recompose(conn, [site_id], author, reason, now, store=True)
            if versions:
                await self.store.audit(conn, author, "config.recompose", f"site:{site_id}", versions, now)
        await self.publish_versions(versions)
        return versions.get(site_id)

    async def publish_versions(self, versions: Mapping[str, int]) -> None:
        """Sign and publish (retained) the given site versions; marks them published."""
        if self.publish is None:
            return
        for site_id, version in sorted(versions.items()):
            row = await self.store.get_config_version(site_id, version)
            assert row is not None
            envelope = p.sign_config(self.signing_key, site_id, version, row.body,
                                     author=row.author, reason=row.reason)
            await self.publish(p.topic(site_id, "config"), envelope.to_bytes())
            cv = schema.config_versions
            async with self.store.transaction() as conn:
                await conn.execute(update(cv).where(cv.c.site_id == site_id, cv.c.version == version)
                                   .values(published_at=time.time()))

    async def publish_latest(self) -> int:
        """Publish every site's newest version again (a broker that lost its retained
        messages, or versions stored while no publisher was connected); returns how many."""
        cv = schema.config_versions
        async with self.store.engine.connect() as conn:
            rows = list(await conn.execute(select(cv.c.site_id, func.max(cv.c.version)).group_by(cv.c.site_id)))
        await self.publish_versions({site: int(version) for site, version in rows})
        return len(rows)

    # -- inside the transaction ---------------------------------------------------------

    async def _lock(self, conn: AsyncConnection) -> None:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _CONFIG_LOCK_ID})

    async def _sites_reached(self, conn: AsyncConnection, scope: str) -> list[str]:
        s = schema.sites
        stmt = select(s.c.id).order_by(s.c.id)
        kind, _, name = scope.partition(":")
        if kind == "region":
            stmt = stmt.where(s.c.region == name)
        elif kind == "type":
            stmt = stmt.where(s.c.site_type == name)
        elif kind == "site":
            stmt = stmt.where(s.c.id == name)
        return [r[0] for r in await conn.execute(stmt)]

    async def _latest_layers(self, conn: AsyncConnection, scopes: list[str]) -> dict[str, tuple[int, Any]]:
        cl = schema.config_layers
        newest = select(cl.c.scope, func.max(cl.c.version).label("v")).where(cl.c.scope.in_(scopes)) \
            .group_by(cl.c.scope).subquery()
        rows = await conn.execute(select(cl.c.scope, cl.c.version, cl.c.body).join(
            newest, (newest.c.scope == cl.c.scope) & (newest.c.v == cl.c.version)))
        return {r.scope: (r.version, r.body) for r in rows}

    async def _next_site_version(self, conn: AsyncConnection, site_id: str) -> int:
        cv = schema.config_versions
        return 1 + ((await conn.execute(select(func.max(cv.c.version)).where(cv.c.site_id == site_id))).scalar() or 0)

    async def _recompose(self, conn: AsyncConnection, site_ids: list[str], author: str, reason: str,
                         now: float, *, store: bool, probe_scope: str = "") -> dict[str, int]:
        s, cv = schema.sites, schema.config_versions
        groups = {r.id: (r.region, r.site_type) for r in await conn.execute(
            select(s.c.id, s.c.region, s.c.site_type).where(s.c.id.in_(site_ids)))}
        problems: list[tuple[str, str]] = []
        composed: dict[str, tuple[dict[str, Any], dict[str, int]]] = {}
        kind, _, name = probe_scope.partition(":")
        probe_groups = (name if kind == "region" else "", name if kind == "type" else "")
        for site_id in site_ids:
            region, site_type = groups.get(site_id, probe_groups)
            scopes = scopes_for(site_id, region, site_type)
            layers = await self._latest_layers(conn, scopes)
            body = compose(site_id, [layers[sc][1] for sc in scopes if sc in layers])
            problems += validate(site_id, body)
            composed[site_id] = (body, {sc: layers[sc][0] for sc in scopes if sc in layers})
        if problems:
            raise ConfigRejected(problems)  # the transaction rolls back: nothing stored
        if not store:
            return {}
        versions: dict[str, int] = {}
        for site_id, (body, sources) in composed.items():
            current = await conn.execute(select(cv.c.body).where(cv.c.site_id == site_id)
                                         .order_by(cv.c.version.desc()).limit(1))
            latest = current.scalar()
            if latest == body:
                continue
            version = await self._next_site_version(conn, site_id)
            await conn.execute(cv.insert().values(site_id=site_id, version=version, body=body, sources=sources,
                                                  author=author, reason=reason, created_at=now))
            versions[site_id] = version
        return versions

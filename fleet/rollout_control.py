"""The rollout control loop: drives running campaigns over MQTT.

Every ``tick_s`` it loads each running campaign, lets it pick the sites to start
(:meth:`fleet.rollouts.Campaign.start_next`: waves, window, concurrency), expires sites
that never answered, saves, and sends each started site an ``update`` command on its
``cmd`` topic (id ``rollout-{campaign}-{site}-{n}``, args
:class:`~edge_core.telemetry.protocol.UpdateArgs`). It subscribes to every site's
``cmd/result``: an ``accepted`` answer only confirms the agent started; a ``done``
answer (or a failed command) is the site's result, with the rollback reason, handed to
:meth:`~fleet.rollouts.Campaign.report`, which advances or halts the campaign.

It runs as a task of the NOC API process (``fleet.api.rollouts`` starts it in the
router's lifespan) because campaigns are created, paused and aborted there, and the
shared :attr:`RolloutStore.lock` then serialises the loop and the API handlers in one
process without a database lock. One API process per fleet runs campaigns; a second
API instance would need a row lock (``SELECT ... FOR UPDATE``) instead.

Each site's window is read in the site's own time zone: ``site.timezone`` of its
latest desired config (``config_versions``), looked up only for the waiting sites of a
campaign's current wave and cached ``zone_ttl_s`` per site, so a tick costs no query once
the wave's zones are known. A site without one uses the campaign's ``timezone``; a name
this host does not know is logged and falls back the same way (never an error).

Its MQTT subscription is a plain one (not ``$share/...``): it sees every result
alongside the ingest workers, which store command results as usual. Its session is
persistent (``clean_session=False`` under its stable client id): a result published while
the loop is reconnecting (a broker restart, an edge delivering a result it could not
send before) waits in the broker for it instead of being lost to the campaign.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from edge_core.telemetry import protocol
from fleet.mqtt import MqttConnection, MqttError, redact_broker_url
from fleet.rollouts import Campaign, RolloutStore, zone
from fleet.store import schema

log = logging.getLogger(__name__)

ID_PREFIX = "rollout-"


def command_id(cid: int, n: int) -> str:
    return f"{ID_PREFIX}{cid}-{n}"


def campaign_of(command: str) -> int | None:
    if not command.startswith(ID_PREFIX):
        return None
    head = command[len(ID_PREFIX):].split("-", 1)[0]
    return int(head) if head.isdigit() else None


_CHUNK = 500
"""Site ids per ``IN (...)`` of the zone lookup."""


async def site_zones(engine: AsyncEngine, site_ids: Iterable[str]) -> dict[str, str]:
    """``{site: site.timezone}`` from each site's latest desired config, for the sites
    that have one (a site without a desired config, or without the key, is left out).
    Only the zone is read (a JSON path), not the whole config."""
    cv = schema.config_versions
    ids = list(dict.fromkeys(site_ids))
    found: dict[str, str] = {}
    async with engine.connect() as conn:
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            latest = (select(cv.c.site_id, func.max(cv.c.version).label("v"))
                      .where(cv.c.site_id.in_(chunk)).group_by(cv.c.site_id).subquery())
            rows = (await conn.execute(
                select(cv.c.site_id, cv.c.body[("site", "timezone")].as_string().label("tz"))
                .join(latest, and_(latest.c.site_id == cv.c.site_id, latest.c.v == cv.c.version)))).all()
            found.update({r.site_id: str(r.tz) for r in rows if r.tz is not None and r.tz != ""})
    return found


class RolloutController:
    def __init__(self, rollouts: RolloutStore, broker_url: str, *, tick_s: float = 1.0,
                 client_id: str = "fleet-rollouts", clock: Callable[[], float] = time.time,
                 zone_ttl_s: float = 300.0) -> None:
        self.rollouts = rollouts
        self.broker_url = broker_url
        self.tick_s = tick_s
        self.client_id = client_id
        self.clock = clock
        self.zone_ttl_s = zone_ttl_s
        """How long a site's zone (from its desired config) is used before it is read again."""
        self.conn: MqttConnection | None = None
        self._seq = itertools.count(int(time.time()))
        self._zones: dict[str, tuple[float, str | None]] = {}
        """site -> (when read, its zone name or None)."""
        self.counters = {"commands": 0, "results": 0, "accepted": 0, "ignored": 0, "zone_lookups": 0}

    async def run(self) -> None:
        """Connect, subscribe, tick and read results; reconnect with backoff, forever."""
        delay = 0.5
        while True:
            try:
                async with MqttConnection(self.broker_url, self.client_id, clean_session=False) as conn:
                    self.conn = conn
                    await conn.subscribe([(f"{protocol.PREFIX}/+/cmd/result", 1)])
                    delay = 0.5
                    await self._session(conn)
            except (MqttError, OSError, TimeoutError) as exc:
                log.info("rollout control: broker %s: %s; again in %.1f s", redact_broker_url(self.broker_url), exc,
                         delay)
            except Exception:  # a bug must not end the loop for good
                log.exception("rollout control loop failed")
            finally:
                self.conn = None
            await asyncio.sleep(delay)  # reconnect backoff
            delay = min(delay * 2, 15.0)

    async def _session(self, conn: MqttConnection) -> None:
        reader = asyncio.create_task(self._read(conn))
        try:
            while not conn.lost.done() and not reader.done():
                await self.tick(conn)
                await asyncio.wait({conn.lost, reader}, timeout=self.tick_s)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self, conn: MqttConnection) -> None:
        while True:
            msg = await conn.messages.get()
            try:
                site, kind = protocol.parse_topic(msg.topic)
                if kind == "cmd/result":
                    await self.on_result(site, protocol.CommandResult.from_bytes(bytes(msg.payload)))
            except protocol.ProtocolError as exc:
                log.debug("rollout control: dropped %s: %s", msg.topic, exc)

    async def tick(self, conn: MqttConnection) -> None:
        now = self.clock()
        for row in await self.rollouts.list_campaigns(states=("running",)):
            cid = int(row["id"])
            async with self.rollouts.lock:
                campaign = await self.rollouts.load(cid)
                expired = campaign.expire(now)
                reasons = [p.reason for p in campaign.sites.values()]
                started = campaign.start_next(now, await self.zones_for(campaign, now))
                if started or expired or reasons != [p.reason for p in campaign.sites.values()]:
                    await self.rollouts.save(cid, campaign, now)
            spec = campaign.spec
            for site in started:
                cmd_id = command_id(cid, next(self._seq))
                args = protocol.UpdateArgs(url=spec.bundle_url, sha256=spec.bundle_sha256, size=spec.bundle_size,
                                           version=spec.bundle_version, report_id=cmd_id, campaign=cid)
                command = protocol.Command(id=cmd_id, op=protocol.UPDATE_OP, args=args.model_dump())
                conn.publish(protocol.topic(site, "cmd"), command.to_bytes(), qos=1)
                self.counters["commands"] += 1
                log.info("campaign %d: update %s sent to %s (%s)", cid, spec.bundle_version, site, cmd_id)

    async def zones_for(self, campaign: Campaign, now: float) -> dict[str, str]:
        """The zones of the sites ``start_next`` may start (the current wave's waiting
        ones), from the cache, reading those missing or older than ``zone_ttl_s``."""
        if campaign.state != "running":
            return {}
        waiting = [s for s in campaign.waves[campaign.wave] if campaign.sites[s].state == "waiting"]
        stale = [s for s in waiting if s not in self._zones or now - self._zones[s][0] > self.zone_ttl_s]
        if stale:
            found = await site_zones(self.rollouts.engine, stale)
            self.counters["zone_lookups"] += 1
            for site in stale:
                name = found.get(site)
                if name is not None and zone(name) is None:
                    log.warning("site %s: unknown time zone %r in its config: its install window is "
                                "read in the campaign's zone", site, name)
                self._zones[site] = (now, name)
        return {s: name for s in waiting if (name := self._zones[s][1]) is not None}

    async def on_result(self, site: str, result: protocol.CommandResult) -> None:
        cid = campaign_of(result.id)
        if cid is None:
            return
        body: dict[str, Any] = result.result if isinstance(result.result, dict) else {}
        if result.ok and body.get("stage") == "accepted":
            self.counters["accepted"] += 1
            return
        outcome = str(body.get("outcome") or ("committed" if result.ok else "failed"))
        reason = str(body.get("reason") or result.error)
        check = str(body.get("check") or ("" if result.ok else "command"))
        if not await self.rollouts.exists(cid):
            self.counters["ignored"] += 1
            return
        async with self.rollouts.lock:
            campaign = await self.rollouts.load(cid)
            now = self.clock()
            if campaign.report(site, outcome, reason, now, check):
                await self.rollouts.save(cid, campaign, now)
                self.counters["results"] += 1
                log.info("campaign %d: %s %s%s", cid, site, outcome, f" ({check}: {reason})" if reason else "")
            else:
                self.counters["ignored"] += 1

"""Staged rollouts of update bundles: campaigns, waves that stop themselves, per-site state.

A campaign targets a set of sites and splits them into waves (default: 1 site, then
5 %, 25 %, 100 % of the target, cumulative). :class:`Campaign` is sans-I/O: it is told
the time and each site's result and says which sites to start next. Rules:

* at most ``max_concurrent`` installs in flight; a site starts only inside its window
  (``window_start_h``..``window_end_h``; outside business hours by default) read in the
  **site's own time zone**: "outside business hours" is local to each branch. The caller
  passes the zones in (``start_next(now, zones)``, ``{site: zone name}`` from each site's
  desired config, ``site.timezone``); the campaign's ``timezone`` is the fallback for a
  site without one, or with a name this host's tz database does not know. A site of the
  current wave that waits for its window says so in its ``reason`` ("waiting for window
  (20:00 local, Europe/Paris)");
* a wave is done when every site in it has a result; the campaign advances when the
  wave's success rate is at least ``success_threshold``;
* it **halts** as soon as a wave's failure rate (failed / wave size) passes
  ``error_threshold`` -- the remaining sites of that wave and every later wave never start;
* a site that reports nothing within ``install_timeout_s`` counts as failed (its real
  result, if it comes later, replaces the timeout in the site's state and reason);
* an operator can pause, resume or abort.

The control loop that drives campaigns over MQTT is ``fleet.rollout_control``.

:class:`RolloutStore` keeps campaigns and per-site state (with every rollback reason)
in two tables of this module's own metadata, created on the fleet store's engine.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import JSON, Column, Float, Integer, MetaData, String, Table, Text, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

CampaignState = Literal["running", "paused", "halted", "aborted", "done"]
SiteState = Literal["waiting", "installing", "committed", "rolled_back", "failed", "skipped"]
DEFAULT_WAVES = (1, 0.05, 0.25, 1.0)
"""An int is a site count, a float a fraction of the target (cumulative)."""


@dataclass
class CampaignSpec:
    name: str
    bundle_version: str
    bundle_url: str
    sites: list[str]
    waves: tuple[float, ...] = DEFAULT_WAVES
    success_threshold: float = 0.9
    """A wave's committed/size must reach this to advance."""
    error_threshold: float = 0.2
    """A wave's failed/size above this halts the campaign."""
    max_concurrent: int = 10
    window_start_h: int = 20
    window_end_h: int = 6
    """Installs start only between these local hours (wrapping midnight); equal = always."""
    timezone: str = "UTC"
    """The fallback zone of the window, for a site whose own zone is not known (see :func:`site_zone`)."""
    bundle_sha256: str = ""
    """SHA-256 of the bundle file: the box checks its download against it."""
    bundle_size: int = 0
    install_timeout_s: float = 1800.0
    """A site with no result this long after its start counts as failed."""


def plan_waves(sites: list[str], waves: tuple[float, ...]) -> list[list[str]]:
    """Split ``sites`` (in order) into waves; each entry is a cumulative count or fraction."""
    out: list[list[str]] = []
    done = 0
    for step in waves:
        upto = int(step) if isinstance(step, int) or step > 1 else math.ceil(step * len(sites))
        upto = min(max(upto, done), len(sites))
        if upto > done:
            out.append(sites[done:upto])
            done = upto
    if done < len(sites):
        out.append(sites[done:])
    return out


def zone(name: object) -> ZoneInfo | None:
    """The time zone called ``name``; None for no name, or one this host does not know
    (a typo, a name from a newer tz database, not a string at all)."""
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def site_zone(spec: CampaignSpec, name: object) -> tuple[tzinfo, str]:
    """The zone a site's window is read in, and how to say which: the site's own zone
    ``name`` if known, else the campaign's ``timezone`` (UTC if that is unknown too)."""
    own = zone(name)
    if own is not None:
        return own, str(name)
    fallback = zone(spec.timezone)
    label = f"campaign zone {spec.timezone}" if fallback is not None else "UTC"
    if name is not None and name != "":
        label += f"; site zone {name!r} unknown"
    return (fallback or UTC), label


def in_window(spec: CampaignSpec, now: float, tz: tzinfo | None = None) -> bool:
    """Whether ``now`` is inside the window in ``tz`` (default: the campaign's zone)."""
    hour = datetime.fromtimestamp(now, tz or site_zone(spec, None)[0]).hour
    start, end = spec.window_start_h, spec.window_end_h
    if start == end:
        return True
    return start <= hour < end if start < end else (hour >= start or hour < end)


@dataclass
class SiteProgress:
    state: SiteState = "waiting"
    reason: str = ""
    wave: int = 0
    started_at: float | None = None
    done_at: float | None = None
    check: str = ""
    """The check that failed (``api``, ``crash_loop``, ``download`` ...), for a rollback."""


@dataclass
class Campaign:
    spec: CampaignSpec
    state: CampaignState = "running"
    wave: int = 0
    halt_reason: str = ""
    sites: dict[str, SiteProgress] = field(default_factory=dict)
    waves: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.waves:
            self.waves = plan_waves(list(self.spec.sites), self.spec.waves)
        for i, wave in enumerate(self.waves):
            for site in wave:
                self.sites.setdefault(site, SiteProgress(wave=i))

    def _wave_counts(self, i: int) -> tuple[int, int, int]:
        members = [self.sites[s] for s in self.waves[i]]
        ok = sum(p.state == "committed" for p in members)
        bad = sum(p.state in ("rolled_back", "failed") for p in members)
        return ok, bad, len(members)

    def start_next(self, now: float, zones: Mapping[str, object] | None = None) -> list[str]:
        """Sites to start installing now (marked ``installing``): those of the current
        wave inside their window, in their own zone (``zones``: site -> zone name; a site
        missing there uses the campaign's ``timezone``), up to ``max_concurrent`` in flight.
        A site left waiting outside its window gets that as its ``reason``."""
        if self.state != "running":
            return []
        zones = zones or {}
        inflight = sum(p.state == "installing" for p in self.sites.values())
        room = self.spec.max_concurrent - inflight
        started = []
        for site in self.waves[self.wave]:
            progress = self.sites[site]
            if progress.state != "waiting":
                continue
            tz, label = site_zone(self.spec, zones.get(site))
            if not in_window(self.spec, now, tz):
                progress.reason = f"waiting for window ({self.spec.window_start_h:02d}:00 local, {label})"
            elif room > 0:
                progress.state, progress.started_at, progress.reason = "installing", now, ""
                started.append(site)
                room -= 1
            else:  # in its window, waiting for a free place
                progress.reason = ""
        return started

    def report(self, site: str, outcome: str, reason: str, now: float, check: str = "") -> bool:
        """A site's result: ``committed``, ``rolled_back`` or ``failed`` (with why).
        False (and nothing changes) for a duplicate report, or one for a site that never
        started. The real result of a site already counted failed for its timeout (a box
        cut off from the broker sends it when it is back) replaces the timeout: the
        site shows what happened and why; a campaign halted meanwhile stays halted."""
        progress = self.sites.get(site)
        if progress is None:
            return False
        late = progress.state == "failed" and progress.check == "timeout" and check != "timeout"
        if progress.state != "installing" and not late:
            return False
        progress.state = outcome if outcome in ("committed", "rolled_back") else "failed"  # type: ignore[assignment]
        progress.reason, progress.done_at, progress.check = reason, now, check
        self._judge()
        return True

    def expire(self, now: float) -> list[str]:
        """Sites installing for longer than ``install_timeout_s``: reported failed."""
        late = [s for s, p in self.sites.items() if p.state == "installing" and p.started_at is not None
                and now - p.started_at > self.spec.install_timeout_s]
        for site in late:
            self.report(site, "failed", f"no result within {self.spec.install_timeout_s:.0f} s", now, "timeout")
        return late

    def _judge(self) -> None:
        if self.state not in ("running", "paused"):
            return
        ok, bad, size = self._wave_counts(self.wave)
        if bad / size > self.spec.error_threshold:
            self._halt(f"wave {self.wave + 1}: {bad} of {size} failed "
                       f"(> {self.spec.error_threshold:.0%})")
            return
        if ok + bad < size:
            return
        if ok / size < self.spec.success_threshold:
            self._halt(f"wave {self.wave + 1}: {ok} of {size} succeeded "
                       f"(< {self.spec.success_threshold:.0%})")
        elif self.wave + 1 < len(self.waves):
            self.wave += 1
        else:
            self.state = "done"

    def _halt(self, why: str) -> None:
        self.state, self.halt_reason = "halted", why
        for p in self.sites.values():
            if p.state == "waiting":
                p.state, p.reason = "skipped", ""

    def pause(self) -> None:
        if self.state == "running":
            self.state = "paused"

    def resume(self) -> None:
        if self.state == "paused":
            self.state = "running"

    def abort(self) -> None:
        if self.state in ("running", "paused"):
            self.state = "aborted"
            for p in self.sites.values():
                if p.state == "waiting":
                    p.state, p.reason = "skipped", ""

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for p in self.sites.values():
            counts[p.state] = counts.get(p.state, 0) + 1
        return {"name": self.spec.name, "version": self.spec.bundle_version, "state": self.state,
                "wave": self.wave + 1, "waves": len(self.waves), "halt_reason": self.halt_reason,
                "sites": counts}


# ------------------------------------------------------------------ storage

metadata = MetaData()

rollout_campaigns = Table(
    "rollout_campaigns", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("wave", Integer, nullable=False),
    Column("waves", JSON, nullable=False),
    Column("halt_reason", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

rollout_sites = Table(
    "rollout_sites", metadata,
    Column("campaign_id", Integer, primary_key=True),
    Column("site_id", String(64), primary_key=True),
    Column("wave", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("started_at", Float),
    Column("done_at", Float),
    Column("failed_check", String(32), nullable=False, server_default=""),
)


class RolloutStore:
    """Campaigns on the fleet store's engine (tables created here; no fleet/store edit)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.lock = asyncio.Lock()
        """Held around load-change-save by everyone in this process (API and control loop)."""

    async def create_tables(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def create(self, campaign: Campaign, now: float | None = None) -> int:
        now = time.time() if now is None else now
        spec = json.loads(json.dumps(campaign.spec.__dict__))
        async with self.engine.begin() as conn:
            result = await conn.execute(rollout_campaigns.insert().values(
                name=campaign.spec.name, spec=spec, state=campaign.state, wave=campaign.wave,
                waves=campaign.waves, halt_reason="", created_at=now, updated_at=now))
            pk = result.inserted_primary_key
            assert pk is not None
            cid = int(pk[0])
            await conn.execute(rollout_sites.insert(), [
                {"campaign_id": cid, "site_id": s, "wave": p.wave, "state": p.state, "reason": ""}
                for s, p in campaign.sites.items()])
        return cid

    async def save(self, cid: int, campaign: Campaign, now: float | None = None) -> None:
        now = time.time() if now is None else now
        async with self.engine.begin() as conn:
            await conn.execute(update(rollout_campaigns).where(rollout_campaigns.c.id == cid).values(
                state=campaign.state, wave=campaign.wave, halt_reason=campaign.halt_reason, updated_at=now))
            for site, p in campaign.sites.items():
                await conn.execute(update(rollout_sites).where(
                    (rollout_sites.c.campaign_id == cid) & (rollout_sites.c.site_id == site)).values(
                    state=p.state, reason=p.reason, started_at=p.started_at, done_at=p.done_at, failed_check=p.check))

    async def load(self, cid: int) -> Campaign:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(rollout_campaigns).where(rollout_campaigns.c.id == cid))).one()
            sites = (await conn.execute(select(rollout_sites).where(rollout_sites.c.campaign_id == cid))).all()
        spec = CampaignSpec(**{**row.spec, "waves": tuple(row.spec["waves"])})
        campaign = Campaign(spec, state=row.state, wave=row.wave, halt_reason=row.halt_reason,
                            waves=[list(w) for w in row.waves])
        for s in sites:
            campaign.sites[s.site_id] = SiteProgress(s.state, s.reason, s.wave, s.started_at, s.done_at, s.failed_check)
        return campaign

    async def exists(self, cid: int) -> bool:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(rollout_campaigns.c.id).where(rollout_campaigns.c.id == cid))).first()
        return row is not None

    async def list_campaigns(self, *, states: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """Every campaign's row (id, name, spec, state, wave, halt_reason, times), newest first."""
        stmt = select(rollout_campaigns).order_by(rollout_campaigns.c.id.desc())
        if states is not None:
            stmt = stmt.where(rollout_campaigns.c.state.in_(states))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [dict(r._mapping) for r in rows]

    async def site_rows(self, cid: int) -> list[dict[str, Any]]:
        """Per-site state with every rollback reason (for the API and dashboard)."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(rollout_sites).where(rollout_sites.c.campaign_id == cid)
                                       .order_by(rollout_sites.c.wave, rollout_sites.c.site_id))).all()
        return [dict(r._mapping) for r in rows]

"""Read-only queries over the fleet store: what the NOC API, dashboard and reports build on.

Every function takes the filters a screen needs as keyword arguments, returns frozen
dataclasses from ``rows.py``, and runs in its own short read transaction. Lists are
newest first unless said otherwise, and bounded by ``limit`` (with ``offset`` for pages).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from fleet.store import schema
from fleet.store.rows import (
    AlarmRow,
    AuditRow,
    CdrRow,
    ConfigVersionRow,
    LayerVersionRow,
    MetricsRow,
    RecordRow,
    SiteDetail,
    SiteRow,
)

s, a, cv = schema.sites, schema.alarms, schema.config_versions


def _site_select() -> Select[Any]:
    desired = (
        select(cv.c.site_id, func.max(cv.c.version).label("desired")).group_by(cv.c.site_id).subquery()
    )
    active = (
        select(a.c.site_id, func.count().label("n")).where(a.c.active.is_(True)).group_by(a.c.site_id).subquery()
    )
    return (
        select(s, desired.c.desired, func.coalesce(active.c.n, 0).label("n_alarms"))
        .outerjoin(desired, desired.c.site_id == s.c.id)
        .outerjoin(active, active.c.site_id == s.c.id)
    )


def _site_row(r: Any) -> SiteRow:
    return SiteRow(
        id=r.id, status=r.status, status_at=r.status_at, last_seen=r.last_seen, version=r.version,
        mode=r.mode, mode_since=r.mode_since, config_version=r.config_version,
        desired_version=r.desired, config_rejected_version=r.config_rejected_version,
        config_rejection=r.config_rejection, contiguous_seq=r.contiguous_seq, region=r.region,
        site_type=r.site_type, kernels=dict(r.kernels or {}), started_at=r.started_at,
        active_alarms=int(r.n_alarms),
    )


def _alarm_row(r: Any) -> AlarmRow:
    return AlarmRow(
        id=r.id, site_id=r.site_id, kind=r.kind, subject=r.subject, severity=r.severity,
        message=r.message, raised_at=r.raised_at, last_seen_at=r.last_seen_at, count=r.count,
        active=bool(r.active), acked_by=r.acked_by, acked_at=r.acked_at, cleared_at=r.cleared_at,
    )


def _metrics_row(r: Any) -> MetricsRow:
    return MetricsRow(site_id=r.site_id, at=r.at, gauges=r.gauges, queues=r.queues, trunks=r.trunks)


def _config_row(r: Any) -> ConfigVersionRow:
    return ConfigVersionRow(
        site_id=r.site_id, version=r.version, body=r.body, sources=r.sources, author=r.author,
        reason=r.reason, created_at=r.created_at, published_at=r.published_at,
    )


class StoreQueries:
    """The read API; ``FleetStore`` inherits it. Needs ``self.engine``."""

    engine: AsyncEngine

    async def _all(self, stmt: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list(await conn.execute(stmt))

    # -- sites ---------------------------------------------------------------------

    async def list_sites(
        self, *, status: str | None = None, mode: str | None = None, region: str | None = None,
        site_type: str | None = None, drift: bool | None = None,
    ) -> list[SiteRow]:
        """Every site (ordered by id) with registry fields, desired vs reported config
        version and its count of active alarms. Filters combine with AND."""
        stmt = _site_select().order_by(s.c.id)
        for col, value in ((s.c.status, status), (s.c.mode, mode), (s.c.region, region), (s.c.site_type, site_type)):
            if value is not None:
                stmt = stmt.where(col == value)
        rows = [_site_row(r) for r in await self._all(stmt)]
        return rows if drift is None else [r for r in rows if r.drift == drift]

    async def get_site(self, site_id: str) -> SiteRow | None:
        rows = await self._all(_site_select().where(s.c.id == site_id))
        return _site_row(rows[0]) if rows else None

    async def site_detail(self, site_id: str) -> SiteDetail | None:
        """A site, its latest metrics and its active alarms."""
        site = await self.get_site(site_id)
        if site is None:
            return None
        latest = await self._all(select(schema.metrics_latest).where(schema.metrics_latest.c.site_id == site_id))
        alarms = await self.list_alarms(site_id=site_id, active=True)
        return SiteDetail(site=site, metrics=_metrics_row(latest[0]) if latest else None, alarms=alarms)

    async def fleet_summary(self) -> dict[str, int]:
        """Counts for a header bar: sites, online, offline, survivable, active alarms."""
        async with self.engine.connect() as conn:
            by_status: dict[str, int] = {
                row[0]: int(row[1]) for row in await conn.execute(select(s.c.status, func.count()).group_by(s.c.status))
            }
            survivable = (await conn.execute(
                select(func.count()).where(s.c.mode == "survivable", s.c.status == "online"))).scalar()
            alarms = (await conn.execute(select(func.count()).where(a.c.active.is_(True)))).scalar()
        return {
            "sites": sum(by_status.values()),
            "online": by_status.get("online", 0),
            "offline": by_status.get("offline", 0),
            "survivable": int(survivable or 0),
            "active_alarms": int(alarms or 0),
        }

    # -- metrics -------------------------------------------------------------------

    async def latest_metrics(self, site_ids: list[str] | None = None) -> list[MetricsRow]:
        """The newest metrics of each site (or of ``site_ids``), ordered by site."""
        ml = schema.metrics_latest
        stmt = select(ml).order_by(ml.c.site_id)
        if site_ids is not None:
            stmt = stmt.where(ml.c.site_id.in_(site_ids))
        return [_metrics_row(r) for r in await self._all(stmt)]

    async def metrics_history(
        self, site_id: str, *, since: float | None = None, until: float | None = None, limit: int = 1000
    ) -> list[MetricsRow]:
        """A site's metrics over time, OLDEST first (for charts)."""
        mh = schema.metrics_history
        stmt = select(mh).where(mh.c.site_id == site_id).order_by(mh.c.at).limit(limit)
        if since is not None:
            stmt = stmt.where(mh.c.at >= since)
        if until is not None:
            stmt = stmt.where(mh.c.at < until)
        return [_metrics_row(r) for r in await self._all(stmt)]

    # -- records and CDRs ----------------------------------------------------------

    async def search_cdrs(
        self, *, site_id: str | None = None, since: float | None = None, until: float | None = None,
        caller: str | None = None, callee: str | None = None, queue: str | None = None,
        disposition: str | None = None, limit: int = 100, offset: int = 0,
    ) -> list[CdrRow]:
        """CDRs newest first by start time. ``since``/``until`` bound ``start_time``
        (inclusive / exclusive); ``caller`` / ``callee`` match exactly, or as a prefix
        when they end with ``*``."""
        c, r = schema.cdrs, schema.records
        stmt = (
            select(c, r.c.body)
            .join(r, (r.c.site_id == c.c.site_id) & (r.c.seq == c.c.seq))
            .order_by(c.c.start_time.desc(), c.c.site_id, c.c.seq)
            .limit(limit)
            .offset(offset)
        )
        if site_id is not None:
            stmt = stmt.where(c.c.site_id == site_id)
        if since is not None:
            stmt = stmt.where(c.c.start_time >= since)
        if until is not None:
            stmt = stmt.where(c.c.start_time < until)
        for col, value in ((c.c.caller, caller), (c.c.callee, callee)):
            if value is not None:
                if value.endswith("*"):
                    prefix = value[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                    stmt = stmt.where(col.like(prefix + "%", escape="\\"))
                else:
                    stmt = stmt.where(col == value)
        if queue is not None:
            stmt = stmt.where(c.c.queue == queue)
        if disposition is not None:
            stmt = stmt.where(c.c.disposition == disposition)
        return [
            CdrRow(site_id=x.site_id, seq=x.seq, call_id=x.call_id, start_time=x.start_time,
                   caller=x.caller, callee=x.callee, queue=x.queue, disposition=x.disposition,
                   duration_s=x.duration_s, body=x.body)
            for x in await self._all(stmt)
        ]

    async def list_records(
        self, *, site_id: str | None = None, kind: str | None = None, since: float | None = None,
        until: float | None = None, after_seq: int | None = None, limit: int = 1000,
    ) -> list[RecordRow]:
        """Stored outbox records (intervals, tasks, events, voicemail, CDRs) in ``(site,
        seq)`` order; ``since``/``until`` bound the record's ``at``; ``after_seq`` pages
        through one site's stream (an incremental exporter's watermark)."""
        r = schema.records
        stmt = select(r).order_by(r.c.site_id, r.c.seq).limit(limit)
        if site_id is not None:
            stmt = stmt.where(r.c.site_id == site_id)
        if kind is not None:
            stmt = stmt.where(r.c.kind == kind)
        if since is not None:
            stmt = stmt.where(r.c.at >= since)
        if until is not None:
            stmt = stmt.where(r.c.at < until)
        if after_seq is not None:
            stmt = stmt.where(r.c.seq > after_seq)
        return [RecordRow(x.site_id, x.seq, x.kind, x.at, x.body) for x in await self._all(stmt)]

    async def count_records(self, *, site_id: str | None = None, kind: str | None = None) -> int:
        r = schema.records
        stmt = select(func.count()).select_from(r)
        if site_id is not None:
            stmt = stmt.where(r.c.site_id == site_id)
        if kind is not None:
            stmt = stmt.where(r.c.kind == kind)
        async with self.engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar() or 0)

    # -- alarms --------------------------------------------------------------------

    async def list_alarms(
        self, *, site_id: str | None = None, active: bool | None = True, severity: str | None = None,
        acked: bool | None = None, kind: str | None = None, limit: int = 500, offset: int = 0,
    ) -> list[AlarmRow]:
        """Alarms newest first (by ``raised_at``); ``active=None`` includes cleared ones."""
        stmt = select(a).order_by(a.c.raised_at.desc(), a.c.id.desc()).limit(limit).offset(offset)
        if site_id is not None:
            stmt = stmt.where(a.c.site_id == site_id)
        if active is not None:
            stmt = stmt.where(a.c.active.is_(active))
        if severity is not None:
            stmt = stmt.where(a.c.severity == severity)
        if kind is not None:
            stmt = stmt.where(a.c.kind == kind)
        if acked is not None:
            stmt = stmt.where(a.c.acked_at.is_not(None) if acked else a.c.acked_at.is_(None))
        return [_alarm_row(r) for r in await self._all(stmt)]

    # -- configuration -------------------------------------------------------------

    async def list_config_versions(self, site_id: str, *, limit: int = 100) -> list[ConfigVersionRow]:
        """A site's desired-config versions, newest first."""
        stmt = select(cv).where(cv.c.site_id == site_id).order_by(cv.c.version.desc()).limit(limit)
        return [_config_row(r) for r in await self._all(stmt)]

    async def get_config_version(self, site_id: str, version: int | None = None) -> ConfigVersionRow | None:
        """One version, or the latest (the desired config) when ``version`` is None."""
        stmt = select(cv).where(cv.c.site_id == site_id).order_by(cv.c.version.desc()).limit(1)
        if version is not None:
            stmt = stmt.where(cv.c.version == version)
        rows = await self._all(stmt)
        return _config_row(rows[0]) if rows else None

    async def list_layer_versions(self, scope: str, *, limit: int = 100) -> list[LayerVersionRow]:
        """Versions of one composition layer (``base``, ``region:X``, ``type:X``, ``site:X``), newest first."""
        cl = schema.config_layers
        stmt = select(cl).where(cl.c.scope == scope).order_by(cl.c.version.desc()).limit(limit)
        return [LayerVersionRow(r.scope, r.version, r.body, r.author, r.reason, r.created_at)
                for r in await self._all(stmt)]

    async def list_scopes(self) -> list[str]:
        cl = schema.config_layers
        return [r[0] for r in await self._all(select(cl.c.scope).distinct().order_by(cl.c.scope))]

    # -- audit ---------------------------------------------------------------------

    async def list_audit(
        self, *, actor: str | None = None, target: str | None = None, since: float | None = None,
        limit: int = 200, offset: int = 0,
    ) -> list[AuditRow]:
        """The audit log, newest first."""
        al = schema.audit_log
        stmt = select(al).order_by(al.c.id.desc()).limit(limit).offset(offset)
        if actor is not None:
            stmt = stmt.where(al.c.actor == actor)
        if target is not None:
            stmt = stmt.where(al.c.target == target)
        if since is not None:
            stmt = stmt.where(al.c.at >= since)
        return [AuditRow(r.id, r.at, r.actor, r.action, r.target, r.detail) for r in await self._all(stmt)]

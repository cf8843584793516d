"""Queue reports per site and interval, Erlang C staffing, and their HTTP routes.

Sources: the edges' 15-minute queue interval rows (outbox records of kind ``interval``
with ``body.kind == "queue"``, fields of ``edge_core.acd.stats.QueueIntervalRow``) and
the CDRs (the ``cdrs`` projection joined to the record body for ``transfers`` and
``survey_score``). Definitions, over the calls of a bucket:

* offered, answered, abandoned, answered within the queue's threshold: sums of the
  interval rows (the edge applies the queue's ``service_level_s``; an answer counts in
  the interval of the answer, see ``edge_core/acd/stats.py``);
* ``service_level = answered_in_sl / offered`` (calls answered within the threshold over
  every call that joined the queue, short abandons and overflows included in the
  denominator); ``service_level_edge`` is the edge's own definition,
  ``answered_in_sl / (answered + abandoned - abandoned_in_sl)``;
* ``asa_s = wait_answered_s / answered``; ``aht_s = (talk_s + wrap_s) / handled``;
  ``abandon_rate = abandoned / offered``;
* from the CDRs of the queue whose call STARTED in the bucket: ``transfer_rate`` =
  answered calls with ``transfers > 0`` / answered calls; ``csat`` = scores 4 or 5 /
  calls with a survey score. A CDR's queue is the projection's (``queue`` or
  ``destination: queue:NAME``); CDRs without one report under the queue ``""``.

Each ratio is None when its denominator is 0. When an edge re-sent an interval row,
the one with the highest seq wins (the edge's ``INSERT OR REPLACE``).

The SQL (one statement for the interval rows, one for the CDRs, portable between
SQLite and PostgreSQL) sums per site, queue and 15-minute UTC slot. Python then rolls
the slots up into buckets of the report's time zone — the site's own zone (from its
desired config, ``site.timezone``) or one the operator names — with ``zoneinfo``, so a
DST day has 23 or 25 hourly buckets and a +05:30 zone's hours start at :30 UTC. Sums
are additive; ratios are taken once at the end. Every zone in use today is offset from
UTC by a multiple of 15 minutes, so 15-minute slots are local 15-minute intervals too.

HTTP: ``router`` (prefix ``/api/v1/reports``) reads the store from
``request.app.state.store`` through the dependency :func:`get_store`; the app sets
``app.state.store = store`` and ``app.include_router(router, dependencies=[...auth...])``
(or overrides ``get_store`` with ``app.dependency_overrides``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from sqlalchemy import BigInteger, and_, case, cast, func, select
from sqlalchemy.sql.elements import ColumnElement

from edge_core.acd.stats import QueueFigures
from fleet import erlang
from fleet.store import schema
from fleet.store.queries import StoreQueries

Granularity = Literal["15min", "hour", "day"]
SLOT_S = 900
_MAX_INTERVAL_S = 86400.0  # an interval row's ``at`` is its end: look this far past ``until``


@dataclass
class _Sums(QueueFigures):
    """Counters summed over intervals; ASA, AHT and abandon rate are the edge's own
    (``QueueFigures``); the report's service level counts every offered call."""

    offered: int = 0
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0
    abandoned_in_sl: int = 0
    overflowed: int = 0
    handled: int = 0
    wait_answered_s: float = 0.0
    talk_s: float = 0.0
    wrap_s: float = 0.0
    cdr_calls: int = 0
    cdr_answered: int = 0
    transferred: int = 0
    scored: int = 0
    satisfied: int = 0

    def add(self, other: _Sums) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


@dataclass
class QueueInterval(_Sums):
    """One report row: a site's queue over ``[start, end)``."""

    site_id: str = ""
    queue: str = ""
    start: float = 0.0
    end: float = 0.0
    tz: str = "UTC"
    """The zone the bucket is aligned to."""

    @property
    def start_local(self) -> str:
        return datetime.fromtimestamp(self.start, ZoneInfo(self.tz)).isoformat()

    @property
    def service_level(self) -> float | None:  # type: ignore[override]
        """Answered within the threshold / offered (the NOC's stricter definition)."""
        return _ratio(self.answered_in_sl, self.offered)

    @property
    def service_level_edge(self) -> float | None:
        """The edge's definition (``QueueFigures.service_level``)."""
        return QueueFigures.service_level.fget(self)  # type: ignore[attr-defined,no-any-return]

    @property
    def transfer_rate(self) -> float | None:
        return _ratio(self.transferred, self.cdr_answered)

    @property
    def csat(self) -> float | None:
        return _ratio(self.satisfied, self.scored)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"site_id": self.site_id, "queue": self.queue, "start": self.start,
                               "end": self.end, "start_local": self.start_local}
        out.update({k: v for k, v in asdict(self).items() if k not in out and k != "tz"})
        for name in ("service_level", "service_level_edge", "asa_s", "aht_s", "abandon_rate",
                     "transfer_rate", "csat"):
            out[name] = getattr(self, name)
        return out


# -- SQL --------------------------------------------------------------------------------


def _slot(expr: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """The start of the 15-minute UTC slot holding epoch ``expr`` (epochs are positive:
    SQLite's CAST truncates, PostgreSQL's rounds, so PostgreSQL gets floor())."""
    if dialect == "postgresql":
        return cast(func.floor(expr / SLOT_S), BigInteger) * SLOT_S
    return cast(expr / SLOT_S, BigInteger) * SLOT_S


async def _interval_slots(store: StoreQueries, dialect: str, sites: list[str] | None, queue: str | None,
                          since: float, until: float) -> list[tuple[str, str, int, _Sums]]:
    r = schema.records
    body = r.c.body
    name, start = body["name"].as_string(), body["start"].as_float()
    where = [r.c.kind == "interval", body["kind"].as_string() == "queue",
             r.c.at > since, r.c.at <= until + _MAX_INTERVAL_S, start >= since, start < until]
    if sites is not None:
        where.append(r.c.site_id.in_(sites))
    if queue is not None:
        where.append(name == queue)
    newest = (
        select(r.c.site_id, name.label("name"), start.label("start"), func.max(r.c.seq).label("seq"))
        .where(*where).group_by(r.c.site_id, name, start).subquery()
    )
    ints = ("offered", "answered", "answered_in_sl", "abandoned", "abandoned_in_sl", "overflowed", "handled")
    floats = ("wait_answered_s", "talk_s", "wrap_s")
    slot = _slot(newest.c.start, dialect).label("slot")
    stmt = (
        select(newest.c.site_id, newest.c.name, slot,
               *[func.sum(func.coalesce(body[k].as_integer(), 0)).label(k) for k in ints],
               *[func.sum(func.coalesce(body[k].as_float(), 0.0)).label(k) for k in floats])
        .join(r, and_(r.c.site_id == newest.c.site_id, r.c.seq == newest.c.seq))
        .group_by(newest.c.site_id, newest.c.name, slot)
    )
    out = []
    for row in await store._all(stmt):
        values: dict[str, Any] = {k: int(getattr(row, k) or 0) for k in ints}
        values.update({k: float(getattr(row, k) or 0.0) for k in floats})
        sums = _Sums(**values)
        out.append((row.site_id, row.name or "", int(row.slot), sums))
    return out


async def _cdr_slots(store: StoreQueries, dialect: str, sites: list[str] | None, queue: str | None,
                     since: float, until: float) -> list[tuple[str, str, int, _Sums]]:
    c, r = schema.cdrs, schema.records
    answered = c.c.disposition == "answered"
    transfers = func.coalesce(r.c.body["transfers"].as_integer(), 0)
    score = r.c.body["survey_score"].as_integer()
    slot = _slot(c.c.start_time, dialect).label("slot")
    stmt = (
        select(c.c.site_id, c.c.queue, slot, func.count().label("cdr_calls"),
               func.sum(case((answered, 1), else_=0)).label("cdr_answered"),
               func.sum(case((and_(answered, transfers > 0), 1), else_=0)).label("transferred"),
               func.sum(case((score.is_not(None), 1), else_=0)).label("scored"),
               func.sum(case((score.between(4, 5), 1), else_=0)).label("satisfied"))
        .join(r, and_(r.c.site_id == c.c.site_id, r.c.seq == c.c.seq))
        .where(c.c.start_time >= since, c.c.start_time < until)
        .group_by(c.c.site_id, c.c.queue, slot)
    )
    if sites is not None:
        stmt = stmt.where(c.c.site_id.in_(sites))
    if queue is not None:
        stmt = stmt.where(c.c.queue == queue)
    keys = ("cdr_calls", "cdr_answered", "transferred", "scored", "satisfied")
    return [(row.site_id, row.queue, int(row.slot), _Sums(**{k: int(getattr(row, k) or 0) for k in keys}))
            for row in await store._all(stmt)]


# -- time zones and buckets -------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def bucket(t: float, granularity: Granularity, tz: ZoneInfo) -> tuple[float, float]:
    """``(start, end)`` epoch seconds of the ``granularity`` bucket of ``tz`` holding ``t``."""
    if granularity == "15min":
        start = math.floor(t / SLOT_S) * SLOT_S
        return float(start), float(start + SLOT_S)
    # fromtimestamp rounds to the nearest microsecond: a time a fraction of a microsecond
    # before a boundary would land in the next bucket; truncate to whole microseconds
    utc = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=math.floor(t * 1_000_000))
    local = utc.astimezone(tz)
    if granularity == "hour":
        begin = local.replace(minute=0, second=0, microsecond=0)
        return begin.timestamp(), begin.timestamp() + 3600.0
    day = local.date()
    begin_day = datetime.combine(day, time(0), tz)
    end_day = datetime.combine(day + timedelta(days=1), time(0), tz)
    return begin_day.timestamp(), end_day.timestamp()


async def site_timezones(store: StoreQueries, site_ids: Iterable[str]) -> dict[str, str]:
    """Each site's ``site.timezone`` from its desired config (``UTC`` without one)."""
    cv = schema.config_versions
    latest = select(cv.c.site_id, func.max(cv.c.version).label("v")).group_by(cv.c.site_id).subquery()
    rows = await store._all(
        select(cv.c.site_id, cv.c.body)
        .join(latest, and_(latest.c.site_id == cv.c.site_id, latest.c.v == cv.c.version))
    )
    found = {r.site_id: str((r.body or {}).get("site", {}).get("timezone") or "UTC") for r in rows}
    return {s: found.get(s, "UTC") for s in site_ids}


async def queue_thresholds(store: StoreQueries, site_id: str) -> dict[str, float]:
    """``{queue: service_level_s}`` from the site's desired config (empty without one)."""
    cfg = await store.get_config_version(site_id)
    if cfg is None:
        return {}
    return {q["name"]: float(q.get("service_level_s", 30.0)) for q in cfg.body.get("queues", []) if "name" in q}


# -- the report -------------------------------------------------------------------------


async def queue_report(
    store: StoreQueries, *, since: float, until: float, site_id: str | None = None,
    queue: str | None = None, granularity: Granularity = "15min", tz: str | None = None,
) -> list[QueueInterval]:
    """Report rows for calls in ``[since, until)`` ordered by site, queue, start. ``tz``
    None aligns each site's buckets to its own zone; otherwise to ``tz`` for all."""
    if granularity not in ("15min", "hour", "day"):
        raise ValueError(f"granularity must be 15min, hour or day, not {granularity!r}")
    if tz is not None:
        zone(tz)
    dialect = store.engine.dialect.name
    sites = [site_id] if site_id is not None else None
    slots = (await _interval_slots(store, dialect, sites, queue, since, until)
             + await _cdr_slots(store, dialect, sites, queue, since, until))
    zones = await site_timezones(store, {s for s, _, _, _ in slots}) if tz is None else {}
    acc: dict[tuple[str, str, float], tuple[float, _Sums, str]] = {}
    for site, q, slot, sums in slots:
        zname = tz or zones[site]
        start, end = bucket(slot, granularity, zone(zname))
        key = (site, q, start)
        if key not in acc:
            acc[key] = (end, _Sums(), zname)
        acc[key][1].add(sums)
    return [
        QueueInterval(**asdict(sums), site_id=site, queue=q, start=start, end=end, tz=zname)
        for (site, q, start), (end, sums, zname) in sorted(acc.items())
    ]


@dataclass(frozen=True)
class StaffingRow:
    site_id: str
    queue: str
    start: float
    end: float
    start_local: str
    offered: int
    aht_s: float | None
    threshold_s: float
    target_sl: float
    agents: int | None
    """None when the AHT is unknown (no handled call and no ``aht_s`` given)."""
    traffic_erlangs: float | None
    predicted_sl: float | None
    predicted_asa_s: float | None
    observed_sl: float | None


async def staffing_report(
    store: StoreQueries, *, since: float, until: float, site_id: str, queue: str | None = None,
    granularity: Granularity = "15min", tz: str | None = None, target_sl: float = 0.8,
    threshold_s: float | None = None, aht_s: float | None = None,
) -> list[StaffingRow]:
    """Erlang C agents per bucket for the observed offered calls and AHT (or ``aht_s``);
    ``threshold_s`` None takes each queue's ``service_level_s`` (20 s without a config)."""
    rows = await queue_report(store, since=since, until=until, site_id=site_id, queue=queue,
                              granularity=granularity, tz=tz)
    thresholds = await queue_thresholds(store, site_id) if threshold_s is None else {}
    out = []
    for row in rows:
        t = threshold_s if threshold_s is not None else thresholds.get(row.queue, 20.0)
        aht = aht_s if aht_s is not None else row.aht_s
        plan = erlang.staffing(row.offered, aht, period_s=row.end - row.start, target_sl=target_sl,
                               threshold_s=t) if aht else None
        out.append(StaffingRow(
            site_id=row.site_id, queue=row.queue, start=row.start, end=row.end, start_local=row.start_local,
            offered=row.offered, aht_s=aht, threshold_s=t, target_sl=target_sl,
            agents=plan.agents if plan else None, traffic_erlangs=plan.traffic_erlangs if plan else None,
            predicted_sl=plan.service_level if plan else None, predicted_asa_s=plan.asa_s if plan else None,
            observed_sl=row.service_level,
        ))
    return out


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


# -- HTTP -------------------------------------------------------------------------------

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])


def get_store(request: Request) -> StoreQueries:
    """The fleet store the app keeps in ``app.state.store``."""
    store: StoreQueries = request.app.state.store
    return store


def parse_time(value: str, tz: str | None) -> float:
    """Epoch seconds, or an ISO 8601 time (without an offset: in ``tz``, else UTC)."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not a time: {value!r} (epoch seconds or ISO 8601)") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(tz) if tz else UTC)
    return moment.timestamp()


Store = Annotated[StoreQueries, Depends(get_store)]
Since = Annotated[str, Query(description="epoch seconds or ISO 8601 (no offset: in tz)")]
Tz = Annotated[str | None, Query(description="IANA zone; omitted: each site's own zone")]


def _range(since: str, until: str, tz: str | None) -> tuple[float, float]:
    try:
        lo, hi = parse_time(since, tz), parse_time(until, tz)
        if tz is not None:
            zone(tz)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    if hi <= lo:
        raise HTTPException(422, "until must be after since")
    if hi - lo > 366 * 86400:
        raise HTTPException(422, "at most 366 days per report")
    return lo, hi


async def _queues(store: StoreQueries, site_id: str | None, since: str, until: str, granularity: Granularity,
                  tz: str | None, queue: str | None) -> list[dict[str, Any]]:
    lo, hi = _range(since, until, tz)
    rows = await queue_report(store, since=lo, until=hi, site_id=site_id, queue=queue,
                              granularity=granularity, tz=tz)
    return [r.as_dict() for r in rows]


@router.get("/queues")
async def queues_report(store: Store, since: Since, until: Since, site_id: str | None = None,
                        granularity: Granularity = "15min", tz: Tz = None,
                        queue: str | None = None) -> list[dict[str, Any]]:
    """Per site, queue and bucket: volumes, service level, ASA, AHT, transfer rate, CSAT."""
    return await _queues(store, site_id, since, until, granularity, tz, queue)


@router.get("/queues.csv", response_class=Response)
async def queues_report_csv(store: Store, since: Since, until: Since, site_id: str | None = None,
                            granularity: Granularity = "15min", tz: Tz = None,
                            queue: str | None = None) -> Response:
    rows = await _queues(store, site_id, since, until, granularity, tz, queue)
    return Response(to_csv(rows), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="queue-report.csv"'})


async def _staffing(store: StoreQueries, site_id: str, since: str, until: str, granularity: Granularity,
                    tz: str | None, queue: str | None, target_sl: float, threshold_s: float | None,
                    aht_s: float | None) -> list[dict[str, Any]]:
    lo, hi = _range(since, until, tz)
    rows = await staffing_report(store, since=lo, until=hi, site_id=site_id, queue=queue,
                                 granularity=granularity, tz=tz, target_sl=target_sl,
                                 threshold_s=threshold_s, aht_s=aht_s)
    return [asdict(r) for r in rows]


TargetSl = Annotated[float, Query(ge=0.0, lt=1.0, description="e.g. 0.8 for 80 %")]
Threshold = Annotated[float | None, Query(ge=0.0, le=3600.0, description="seconds; omitted: the queue's")]
Aht = Annotated[float | None, Query(gt=0.0, le=86400.0, description="seconds; omitted: the observed AHT")]


@router.get("/staffing")
async def staffing(store: Store, site_id: str, since: Since, until: Since, granularity: Granularity = "15min",
                   tz: Tz = None, queue: str | None = None, target_sl: TargetSl = 0.8,
                   threshold_s: Threshold = None, aht_s: Aht = None) -> list[dict[str, Any]]:
    """Erlang C: the fewest agents per bucket reaching ``target_sl`` within the threshold."""
    return await _staffing(store, site_id, since, until, granularity, tz, queue, target_sl, threshold_s, aht_s)


@router.get("/staffing.csv", response_class=Response)
async def staffing_csv(store: Store, site_id: str, since: Since, until: Since, granularity: Granularity = "15min",
                       tz: Tz = None, queue: str | None = None, target_sl: TargetSl = 0.8,
                       threshold_s: Threshold = None, aht_s: Aht = None) -> Response:
    rows = await _staffing(store, site_id, since, until, granularity, tz, queue, target_sl, threshold_s, aht_s)
    return Response(to_csv(rows), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="staffing.csv"'})

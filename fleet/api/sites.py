"""Sites, their live metrics and their day in intervals (read-only, any role)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request

from fleet.api.auth import Viewer
from fleet.api.models import (
    AlarmOut,
    IntervalOut,
    IntervalsOut,
    MetricsHistoryOut,
    MetricsOut,
    SiteDetailOut,
    SiteOut,
    SitesOut,
)
from fleet.api.times import TZ_PATTERN, day_bounds, parse_time, zone
from fleet.store import FleetStore

SITE_PATTERN = r"^[^\x00-\x1f/+#]{1,64}$"
"""What an MQTT topic level can carry as a site id (no control characters)."""

SiteId = Annotated[str, Path(pattern=SITE_PATTERN, max_length=64, description="the site id")]
Group = Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00]*$")]
Tz = Annotated[str | None, Query(pattern=TZ_PATTERN, description="IANA time zone for times without an offset")]
TimeParam = Annotated[str | None, Query(max_length=40, description="ISO 8601 (offset, or local in tz) or epoch")]

router = APIRouter(tags=["sites"])


def store_of(request: Request) -> FleetStore:
    return request.app.state.ctx.store  # type: ignore[no-any-return]


async def site_or_404(store: FleetStore, site_id: str) -> None:
    if await store.get_site(site_id) is None:
        raise HTTPException(404, f"no site {site_id!r}")


@router.get("/summary", summary="Fleet counts: sites, online, offline, survivable, active alarms")
async def summary(principal: Viewer, request: Request) -> dict[str, int]:
    return await store_of(request).fleet_summary()


@router.get("/sites", summary="Every site with status, last seen, version, mode, drift and alarm count")
async def list_sites(
    principal: Viewer,
    request: Request,
    status: Annotated[str | None, Query(pattern=r"^(online|offline|unknown)$")] = None,
    mode: Annotated[str | None, Query(pattern=r"^(normal|survivable)$")] = None,
    region: Group = None,
    site_type: Group = None,
    drift: bool | None = None,
) -> SitesOut:
    store = store_of(request)
    rows = await store.list_sites(status=status, mode=mode, region=region, site_type=site_type, drift=drift)
    return SitesOut(summary=await store.fleet_summary(), sites=[SiteOut.of(r) for r in rows])


@router.get("/sites/{site_id}", summary="One site: registry, latest metrics, agents, active alarms",
            responses={404: {"description": "no such site"}})
async def site_detail(principal: Viewer, request: Request, site_id: SiteId) -> SiteDetailOut:
    detail = await store_of(request).site_detail(site_id)
    if detail is None:
        raise HTTPException(404, f"no site {site_id!r}")
    gauges = detail.metrics.gauges if detail.metrics else {}
    agents = {k.removeprefix("agents."): v for k, v in gauges.items() if k.startswith("agents.")}
    return SiteDetailOut(
        site=SiteOut.of(detail.site),
        metrics=MetricsOut.model_validate(detail.metrics) if detail.metrics else None,
        agents=agents,
        alarms=[AlarmOut.model_validate(a) for a in detail.alarms],
    )


@router.get("/metrics/latest", summary="The newest metrics of every site")
async def latest_metrics(principal: Viewer, request: Request) -> list[MetricsOut]:
    return [MetricsOut.model_validate(m) for m in await store_of(request).latest_metrics()]


@router.get("/sites/{site_id}/metrics", summary="A site's latest metrics",
            responses={404: {"description": "no such site, or no metrics yet"}})
async def site_metrics(principal: Viewer, request: Request, site_id: SiteId) -> MetricsOut:
    rows = await store_of(request).latest_metrics([site_id])
    if not rows:
        await site_or_404(store_of(request), site_id)
        raise HTTPException(404, f"site {site_id!r} has sent no metrics yet")
    return MetricsOut.model_validate(rows[0])


@router.get("/sites/{site_id}/metrics/history", summary="A site's metrics over time, oldest first",
            responses={404: {"description": "no such site"}})
async def site_metrics_history(
    principal: Viewer,
    request: Request,
    site_id: SiteId,
    since: TimeParam = None,
    until: TimeParam = None,
    tz: Tz = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> MetricsHistoryOut:
    zi = zone(tz)
    store = store_of(request)
    await site_or_404(store, site_id)
    rows = await store.metrics_history(site_id, since=parse_time(since, zi, "since"),
                                       until=parse_time(until, zi, "until"), limit=limit)
    return MetricsHistoryOut(site_id=site_id, points=[MetricsOut.model_validate(m) for m in rows])


@router.get("/sites/{site_id}/intervals",
            summary="A site's queue intervals of one local day, summed over queues (charts)",
            responses={404: {"description": "no such site"}})
async def site_intervals(
    principal: Viewer,
    request: Request,
    site_id: SiteId,
    date: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD; today by default")] = None,
    tz: Tz = None,
) -> IntervalsOut:
    zi = zone(tz)
    store = store_of(request)
    await site_or_404(store, site_id)
    start, end = day_bounds(date, zi, request.app.state.ctx.clock())
    records = await store.list_records(site_id=site_id, kind="interval", since=start, until=end + 1, limit=100_000)
    slots: dict[tuple[float, float], dict[str, float]] = {}
    for rec in records:
        body = rec.body
        if body.get("kind") != "queue":
            continue
        try:
            key = (float(body["start"]), float(body["end"]))
        except (KeyError, TypeError, ValueError):
            continue
        if not start <= key[0] < end:
            continue
        acc = slots.setdefault(key, dict.fromkeys(
            ("offered", "answered", "abandoned", "answered_in_sl", "abandoned_in_sl"), 0.0))
        for name in acc:
            value = body.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                acc[name] += value
    intervals = []
    for (s, e), acc in sorted(slots.items()):
        counted = acc["answered"] + acc["abandoned"] - acc["abandoned_in_sl"]
        intervals.append(IntervalOut(
            start=s, end=e, offered=int(acc["offered"]), answered=int(acc["answered"]),
            abandoned=int(acc["abandoned"]),
            service_level=acc["answered_in_sl"] / counted if counted > 0 else None))
    return IntervalsOut(site_id=site_id, tz=str(zi.key), day_start=start, day_end=end, intervals=intervals)

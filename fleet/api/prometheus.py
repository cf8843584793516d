"""``GET /metrics``: the fleet in the Prometheus text format (any role's token).

Built per scrape from the store with ``prometheus_client``'s metric families and its
exposition writer (no process-global registry: the numbers live in the database,
and several API processes would each count differently). Fleet-wide: sites by status,
active alarms by severity, stored records by kind (a counter: records are never
deleted). Per site (label ``site``): online, survivable, last seen, active alarms,
config drift, records acknowledged, and from its latest metrics active calls,
waiting calls, registrations; per queue waiting calls and service level; per trunk up.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import func, select

from fleet.alarms import SEVERITIES
from fleet.api.auth import Viewer
from fleet.api.sites import store_of
from fleet.store import FleetStore, schema

router = APIRouter(tags=["metrics"])


class _Snapshot:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


async def families(store: FleetStore) -> list[Metric]:
    sites = await store.list_sites()
    latest = {m.site_id: m for m in await store.latest_metrics()}
    async with store.engine.connect() as conn:
        a, r = schema.alarms, schema.records
        by_severity: dict[str, int] = {row[0]: int(row[1]) for row in await conn.execute(
            select(a.c.severity, func.count()).where(a.c.active.is_(True)).group_by(a.c.severity))}
        by_kind: dict[str, int] = {row[0]: int(row[1]) for row in await conn.execute(
            select(r.c.kind, func.count()).group_by(r.c.kind))}

    out: list[Metric] = []
    by_status = _gauge("branchline_fleet_sites", "Sites by registry status", ["status"])
    for status in ("online", "offline", "unknown"):
        by_status.add_metric([status], sum(s.status == status for s in sites))
    out.append(by_status)
    alarms = _gauge("branchline_fleet_alarms_active", "Active alarms by severity", ["severity"])
    for severity in SEVERITIES:
        alarms.add_metric([severity], int(by_severity.get(severity, 0)))
    out.append(alarms)
    records = CounterMetricFamily("branchline_fleet_records", "Outbox records stored, by kind", labels=["kind"])
    for kind in ("cdr", "interval", "task", "event", "voicemail"):
        records.add_metric([kind], int(by_kind.get(kind, 0)))
    out.append(records)

    per_site: dict[str, tuple[str, Any]] = {
        "online": ("1 when the site is online", lambda s: s.status == "online"),
        "survivable": ("1 when the site runs in survivable mode (WAN lost)", lambda s: s.mode == "survivable"),
        "last_seen_timestamp_seconds": ("When the fleet last heard from the site", lambda s: s.last_seen),
        "alarms_active": ("Active alarms of the site", lambda s: s.active_alarms),
        "config_drift": ("1 when desired and reported config versions differ", lambda s: s.drift),
    }
    for suffix, (doc, value_of) in per_site.items():
        g = _gauge(f"branchline_site_{suffix}", doc, ["site"])
        for s in sites:
            value = value_of(s)
            if value is not None:
                g.add_metric([s.id], float(value))
        out.append(g)
    acked = CounterMetricFamily("branchline_site_records_acked", "Highest contiguous record seq stored", labels=["site"])
    for s in sites:
        acked.add_metric([s.id], s.contiguous_seq)
    out.append(acked)

    gauges = {"active_calls": "calls_active", "waiting_calls": "calls_waiting", "registrations": "registrations"}
    for name, key in gauges.items():
        g = _gauge(f"branchline_site_{name}", f"The site's {key} gauge from its latest metrics", ["site"])
        for site_id, m in sorted(latest.items()):
            if key in m.gauges:
                g.add_metric([site_id], m.gauges[key])
        out.append(g)
    waiting = _gauge("branchline_site_queue_waiting", "Calls waiting in a queue", ["site", "queue"])
    level = _gauge("branchline_site_queue_service_level", "Service level of a queue (ratio 0..1)", ["site", "queue"])
    trunks = _gauge("branchline_site_trunk_up", "1 when the trunk is up", ["site", "trunk"])
    for site_id, m in sorted(latest.items()):
        for queue, stats in sorted(m.queues.items()):
            if stats.get("waiting") is not None:
                waiting.add_metric([site_id, queue], float(stats["waiting"] or 0))
            if stats.get("service_level") is not None:
                level.add_metric([site_id, queue], float(stats["service_level"] or 0))
        for trunk, up in sorted(m.trunks.items()):
            trunks.add_metric([site_id, trunk], 1.0 if up else 0.0)
    out += [waiting, level, trunks]
    return out


@router.get("/metrics", summary="Fleet and per-site metrics in the Prometheus text format",
            response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(principal: Viewer, request: Request) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(await families(store_of(request))))  # type: ignore[arg-type]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

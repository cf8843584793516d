"""Queue reports and staffing over a real fleet store (SQLite always, PostgreSQL when
a server answers), filled through the store's own ingest with a scripted day whose
figures are worked out by hand below.

The day is Sunday 2024-11-03 at a site in America/New_York: clocks go back at 02:00
EDT, so the local day has 25 hours and 01:00-02:00 happens twice.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from edge_core.telemetry.protocol import Record
from fleet.reports import queue_report, router, staffing_report
from fleet.store import FleetStore, IngestBatch, schema

SITE = "b1"
T0900 = 1730642400.0  # 2024-11-03 09:00 EST = 14:00 UTC
MIDNIGHT = 1730606400.0  # 2024-11-03 00:00 EDT
NEXT_MIDNIGHT = 1730696400.0  # 2024-11-04 00:00 EST (25 h later)
T0130_EDT = 1730611800.0  # the first 01:30 (05:30 UTC)
T0130_EST = 1730615400.0  # the second 01:30 (06:30 UTC)


def queue_row(start: float, queue: str, **counts: float) -> dict[str, Any]:
    """An ``edge_core.acd.stats.QueueIntervalRow`` as the edge's outbox sends it."""
    row: dict[str, Any] = dict(
        start=start, end=start + 900, queue=queue, offered=0, answered=0, answered_in_sl=0, abandoned=0,
        abandoned_in_sl=0, overflowed=0, rejected=0, wait_answered_s=0.0, longest_wait_s=0.0, handled=0,
        talk_s=0.0, wrap_s=0.0, service_level=None, asa_s=None, aht_s=None, abandon_rate=None,
    )
    row.update(counts)
    return {"kind": "queue", "name": queue, **row}


def cdr_body(n: int, start: float, queue: str, disposition: str = "answered", transfers: int = 0,
             score: int | None = None, caller: str = "+442079460001") -> dict[str, Any]:
    return {
        "call_id": f"call-{n}", "a_call_id": f"a{n}", "b_call_id": None, "from_uri": f"sip:{caller}@b1",
        "from_number": caller, "to_number": "100", "destination": f"queue:{queue}" if queue else "flow:main",
        "start_time": start, "answer_time": start + 10 if disposition == "answered" else None,
        "end_time": start + 200, "disposition": disposition, "hangup_side": "caller", "sip_status": 200,
        "sip_reason": "OK", "transfers": transfers, "survey_score": score,
    }


def scripted_day() -> list[Record]:
    bodies: list[tuple[str, float, dict[str, Any]]] = [
        # sales, 09:00: 10 offered, 8 answered (6 within 20 s), 2 abandoned (1 within)
        ("interval", T0900 + 900, queue_row(T0900, "sales", offered=10, answered=8, answered_in_sl=6,
                                            abandoned=2, abandoned_in_sl=1, handled=8, wait_answered_s=80.0,
                                            talk_s=1200.0, wrap_s=80.0)),
        # sales, 09:15, first version (replaced below by a re-sent row with a higher seq)
        ("interval", T0900 + 1800, queue_row(T0900 + 900, "sales", offered=5, answered=5, answered_in_sl=5,
                                             handled=5, wait_answered_s=25.0, talk_s=700.0)),
        ("interval", T0900 + 900, queue_row(T0900, "support", offered=4, answered=4, answered_in_sl=4,
                                            handled=4, wait_answered_s=8.0, talk_s=600.0)),
        ("interval", T0900 + 900, {"kind": "agent", "name": "alice", "start": T0900, "end": T0900 + 900,
                                   "agent": "alice", "calls": 3, "talk_s": 500.0, "wrap_s": 10.0,
                                   "paused_s": 0.0, "logged_in_s": 900.0, "occupancy": 0.57}),
        # sales, 09:30: 3 offered, 2 answered late, 1 abandoned late
        ("interval", T0900 + 2700, queue_row(T0900 + 1800, "sales", offered=3, answered=2, answered_in_sl=0,
                                             abandoned=1, handled=2, wait_answered_s=90.0, talk_s=400.0,
                                             wrap_s=20.0)),
        # sales in both 01:30s of the night
        ("interval", T0130_EDT + 900, queue_row(T0130_EDT, "sales", offered=1, answered=1, answered_in_sl=1,
                                                handled=1, wait_answered_s=2.0, talk_s=100.0)),
        ("interval", T0130_EST + 900, queue_row(T0130_EST, "sales", offered=2, answered=1, answered_in_sl=1,
                                                abandoned=1, abandoned_in_sl=1, handled=1,
                                                wait_answered_s=4.0, talk_s=200.0)),
        # the evening before (23:45 EDT on the 2nd): outside the local day
        ("interval", MIDNIGHT, queue_row(MIDNIGHT - 900, "sales", offered=7, answered=7, answered_in_sl=7,
                                         handled=7, talk_s=700.0)),
        # sales, 09:15 re-sent: this one counts
        ("interval", T0900 + 1800, queue_row(T0900 + 900, "sales", offered=6, answered=6, answered_in_sl=6,
                                             handled=5, wait_answered_s=30.0, talk_s=900.0, wrap_s=50.0)),
    ]
    # sales CDRs starting 09:05: 5 answered (transfers 0,1,0,0,2; scores 5,4,-,2,3), 1 abandoned
    cdrs = [cdr_body(1, T0900 + 300, "sales", transfers=0, score=5),
            cdr_body(2, T0900 + 310, "sales", transfers=1, score=4),
            cdr_body(3, T0900 + 320, "sales", transfers=0),
            cdr_body(4, T0900 + 330, "sales", transfers=0, score=2),
            cdr_body(5, T0900 + 340, "sales", transfers=2, score=3),
            cdr_body(6, T0900 + 350, "sales", disposition="cancelled"),
            cdr_body(7, T0900 + 1850, "sales", transfers=0, score=5),  # 09:30 slot
            cdr_body(8, T0900 + 400, "", transfers=0, score=1)]  # an IVR-only call: no queue
    bodies += [("cdr", b["end_time"], b) for b in cdrs]
    return [Record(seq=i + 1, kind=kind, at=at, body=body) for i, (kind, at, body) in enumerate(bodies)]  # type: ignore[arg-type]


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[FleetStore]:
    store = await FleetStore.open(db_url)
    records = scripted_day()
    # two batches, the way the worker stores what arrived in a transaction each
    await store.ingest(IngestBatch(now=time.time(), records=[(SITE, r) for r in records[:5]]))
    await store.ingest(IngestBatch(now=time.time(), records=[(SITE, r) for r in records[5:]]))
    async with store.transaction() as conn:
        await conn.execute(schema.config_versions.insert().values(
            site_id=SITE, version=1, sources={}, author="t", reason="t", created_at=0.0,
            body={"site": {"id": SITE, "timezone": "America/New_York"},
                  "queues": [{"name": "sales", "service_level_s": 20}, {"name": "support", "service_level_s": 30}]},
        ))
    yield store
    await store.close()


def pick(rows: list[Any], queue: str) -> list[Any]:
    return [r for r in rows if r.queue == queue]


async def test_hourly_report_in_the_site_zone(store: FleetStore) -> None:
    rows = await queue_report(store, since=MIDNIGHT, until=NEXT_MIDNIGHT, site_id=SITE, granularity="hour")
    sales = pick(rows, "sales")
    assert [r.start_local for r in sales] == [
        "2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00", "2024-11-03T09:00:00-05:00"]
    night1, night2, nine = sales
    assert (night1.offered, night1.answered, night1.service_level) == (1, 1, 1.0)
    assert (night2.offered, night2.abandoned, night2.service_level) == (2, 1, 0.5)
    assert night2.service_level_edge == 1.0  # its abandon was a short one: 1 / (1 + 1 - 1)
    assert nine.end - nine.start == 3600
    # 09:00 + 09:15 (re-sent version) + 09:30
    assert (nine.offered, nine.answered, nine.answered_in_sl, nine.abandoned) == (19, 16, 12, 3)
    assert nine.service_level == pytest.approx(12 / 19)
    assert nine.service_level_edge == pytest.approx(12 / (16 + 3 - 1))
    assert nine.asa_s == pytest.approx((80 + 30 + 90) / 16)
    assert nine.aht_s == pytest.approx((1200 + 80 + 900 + 50 + 400 + 20) / (8 + 5 + 2))
    assert nine.abandon_rate == pytest.approx(3 / 19)
    # CDRs 1-7: 6 answered, transfers on 2 of them; scores 5,4,2,3,5 -> 3 satisfied of 5
    assert (nine.cdr_calls, nine.cdr_answered, nine.transferred) == (7, 6, 2)
    assert nine.transfer_rate == pytest.approx(2 / 6)
    assert (nine.scored, nine.satisfied, nine.csat) == (5, 3, pytest.approx(3 / 5))
    (support,) = pick(rows, "support")
    assert (support.offered, support.service_level, support.asa_s, support.aht_s) == (4, 1.0, 2.0, 150.0)
    assert support.transfer_rate is None and support.csat is None
    (ivr,) = pick(rows, "")
    assert (ivr.offered, ivr.cdr_calls, ivr.csat) == (0, 1, 0.0)


async def test_fifteen_minute_rows(store: FleetStore) -> None:
    rows = pick(await queue_report(store, since=T0900, until=T0900 + 3600, site_id=SITE), "sales")
    assert [(r.start - T0900, r.offered, r.cdr_answered) for r in rows] == [(0, 10, 5), (900, 6, 0), (1800, 3, 1)]
    first = rows[0]
    assert first.service_level == pytest.approx(6 / 10)
    assert first.transfer_rate == pytest.approx(2 / 5)
    assert first.csat == pytest.approx(2 / 4)  # 5 and 4 of 5, 4, 2, 3
    assert rows[2].csat == 1.0 and rows[1].csat is None


async def test_day_in_the_site_zone_and_in_utc(store: FleetStore) -> None:
    (day,) = pick(await queue_report(store, since=MIDNIGHT, until=NEXT_MIDNIGHT, site_id=SITE,
                                     granularity="day"), "sales")
    assert (day.start, day.end) == (MIDNIGHT, NEXT_MIDNIGHT)  # 25 hours
    assert (day.offered, day.answered, day.answered_in_sl) == (1 + 2 + 19, 1 + 1 + 16, 1 + 1 + 12)
    # the same calls by UTC day: the evening before (03:45 UTC) now falls on the 3rd as well
    utc = pick(await queue_report(store, since=1730592000.0, until=1730678400.0, site_id=SITE,
                                  granularity="day", tz="UTC"), "sales")
    assert [(r.start, r.offered) for r in utc] == [(1730592000.0, 7 + 22)]


async def test_operator_zone_half_hour_offset(store: FleetStore) -> None:
    """Asia/Kolkata is UTC+05:30: its 19:00 hour holds 09:00 and 09:15 New York, its
    20:00 hour 09:30."""
    rows = pick(await queue_report(store, since=T0900, until=T0900 + 3600, site_id=SITE,
                                   granularity="hour", tz="Asia/Kolkata"), "sales")
    assert [(r.start_local, r.offered) for r in rows] == [
        ("2024-11-03T19:00:00+05:30", 16), ("2024-11-03T20:00:00+05:30", 3)]


async def test_staffing_per_interval(store: FleetStore) -> None:
    rows = await staffing_report(store, since=T0900, until=T0900 + 1800, site_id=SITE, queue="sales")
    assert [r.offered for r in rows] == [10, 6]
    first = rows[0]
    # 10 calls in 900 s with AHT 160 s: 1.78 Erlangs; 20 s threshold from the queue config
    assert first.threshold_s == 20 and first.aht_s == pytest.approx(160.0)
    assert first.traffic_erlangs == pytest.approx(10 * 160 / 900)
    assert first.agents == 4 and first.predicted_sl is not None and first.predicted_sl >= 0.8
    fixed = await staffing_report(store, since=T0900, until=T0900 + 900, site_id=SITE, queue="sales",
                                  aht_s=900.0, threshold_s=20.0, target_sl=0.9)
    assert fixed[0].traffic_erlangs == pytest.approx(10.0) and fixed[0].agents == 15


async def test_http_routes_and_csv(store: FleetStore) -> None:
    app = FastAPI()
    app.state.store = store
    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        got = await client.get("/api/v1/reports/queues", params={
            "site_id": SITE, "since": "2024-11-03T09:00", "until": "2024-11-03T10:00",
            "granularity": "hour", "tz": "America/New_York", "queue": "sales"})
        assert got.status_code == 200, got.text
        (row,) = got.json()
        assert row["offered"] == 19 and row["start_local"] == "2024-11-03T09:00:00-05:00"
        assert row["service_level"] == pytest.approx(12 / 19)
        text = await client.get("/api/v1/reports/queues.csv", params={
            "site_id": SITE, "since": str(T0900), "until": str(T0900 + 3600)})
        assert text.status_code == 200 and text.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(text.text)))
        assert [(r["queue"], r["offered"]) for r in table] == [
            ("", "0"), ("sales", "10"), ("sales", "6"), ("sales", "3"), ("support", "4")]
        staff = await client.get("/api/v1/reports/staffing", params={
            "site_id": SITE, "since": str(T0900), "until": str(T0900 + 900), "queue": "sales"})
        assert staff.status_code == 200 and staff.json()[0]["agents"] == 4
        staff_csv = await client.get("/api/v1/reports/staffing.csv", params={
            "site_id": SITE, "since": str(T0900), "until": str(T0900 + 900), "queue": "sales"})
        assert staff_csv.text.splitlines()[0].startswith("site_id,queue,start,end")
        for bad in ({"tz": "Mars/Base"}, {"since": "yesterday"}, {"granularity": "week"},
                    {"until": str(T0900 - 1)}):
            params = {"since": str(T0900), "until": str(T0900 + 900), **bad}
            assert (await client.get("/api/v1/reports/queues", params=params)).status_code == 422

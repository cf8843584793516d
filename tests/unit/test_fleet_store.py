"""FleetStore on SQLite and PostgreSQL: migrations, idempotent ingest, the ack
watermark, the registry, metrics, config reports and the query API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import inspect

from edge_core.telemetry.protocol import CommandResult, ConfigReport, Metrics, Record, State
from fleet.store import FleetStore, IngestBatch, schema
from fleet.store.migrations import LATEST, current_version, migrate

NOW = 1_700_000_000.0


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[FleetStore]:
    store = await FleetStore.open(db_url)
    yield store
    await store.close()


def rec(seq: int, kind: str = "event", **body: object) -> Record:
    return Record(seq=seq, kind=kind, at=NOW + seq, body=dict(body) or {"n": seq})  # type: ignore[arg-type]


def cdr(seq: int, caller: str, queue: str, disposition: str, start: float) -> Record:
    body = {"call_id": f"c{seq}", "from_number": caller, "to_number": "100", "destination": f"queue:{queue}",
            "start_time": start, "answer_time": start + 5, "end_time": start + 65, "disposition": disposition}
    return Record(seq=seq, kind="cdr", at=start + 65, body=body)


async def test_migrations_build_exactly_the_declared_schema(store: FleetStore) -> None:
    assert await current_version(store.engine) == LATEST
    assert await migrate(store.engine) == LATEST  # a second run is a no-op
    async with store.engine.connect() as conn:
        def columns(sync_conn: object) -> dict[str, set[str]]:
            insp = inspect(sync_conn)
            return {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names()}

        actual = await conn.run_sync(columns)
    declared = {t.name: {c.name for c in t.columns} for t in schema.metadata.sorted_tables}
    assert actual == declared


async def test_batch_stored_once_and_ack_is_highest_contiguous(store: FleetStore) -> None:
    batch = [("s1", rec(i)) for i in (1, 2, 3)]
    result = await store.ingest(IngestBatch(NOW, records=batch))
    assert result.acks == {"s1": 3}
    again = await store.ingest(IngestBatch(NOW, records=batch))  # redelivered
    assert again.acks == {"s1": 3}
    assert await store.count_records(site_id="s1") == 3

    gap = await store.ingest(IngestBatch(NOW, records=[("s1", rec(5)), ("s1", rec(6))]))
    assert gap.acks == {"s1": 3}  # 4 is missing: the ack stops before it
    filled = await store.ingest(IngestBatch(NOW, records=[("s1", rec(4))]))
    assert filled.acks == {"s1": 6}
    assert (await store.get_site("s1")).contiguous_seq == 6  # type: ignore[union-attr]
    assert [r.seq for r in await store.list_records(site_id="s1")] == [1, 2, 3, 4, 5, 6]


async def test_sites_are_independent_and_first_gap_holds(store: FleetStore) -> None:
    result = await store.ingest(
        IngestBatch(NOW, records=[("a", rec(2)), ("b", rec(1)), ("b", rec(2)), ("a", rec(3))])
    )
    assert result.acks == {"a": 0, "b": 2}


async def test_state_registry_and_last_will_keeps_fields(store: FleetStore) -> None:
    state = State(status="online", version="1.2.3", mode="survivable", config_version=4,
                  kernels={"rtp": "cython"}, at=NOW)
    await store.ingest(IngestBatch(NOW, states=[("s1", state)]))
    site = await store.get_site("s1")
    assert site is not None
    assert (site.status, site.version, site.mode, site.config_version) == ("online", "1.2.3", "survivable", 4)
    assert site.kernels == {"rtp": "cython"} and site.last_seen == NOW
    await store.ingest(IngestBatch(NOW + 5, states=[("s1", State.from_bytes(b'{"status":"offline"}'))]))
    site = await store.get_site("s1")
    assert site is not None and site.status == "offline" and site.version == "1.2.3"
    older = State(status="online", version="1.2.2", at=NOW - 10)
    await store.ingest(IngestBatch(NOW + 6, states=[("s1", older)]))  # a stale state arriving late
    site = await store.get_site("s1")
    assert site is not None and site.version == "1.2.3"
    assert (await store.fleet_summary())["offline"] == 1


async def test_metrics_latest_and_history(store: FleetStore) -> None:
    m1 = Metrics(at=NOW, gauges={"cpu": 0.5}, trunks={"wan": True})
    m2 = Metrics(at=NOW + 10, gauges={"cpu": 0.7}, queues={"sales": {"service_level": 0.9}})
    await store.ingest(IngestBatch(NOW, metrics=[("s1", m2)]))
    await store.ingest(IngestBatch(NOW, metrics=[("s1", m1)]))  # older, arrives later
    latest = await store.latest_metrics()
    assert [m.gauges for m in latest] == [{"cpu": 0.7}]
    assert [m.at for m in await store.metrics_history("s1")] == [NOW, NOW + 10]
    detail = await store.site_detail("s1")
    assert detail is not None and detail.metrics is not None and detail.metrics.queues["sales"]["service_level"] == 0.9


async def test_config_report_and_command_result(store: FleetStore) -> None:
    await store.ingest(IngestBatch(NOW, reports=[("s1", ConfigReport(version=3, status="rejected", reason="routes[0].match: bad"))]))
    site = await store.get_site("s1")
    assert site is not None and site.config_rejected_version == 3 and "routes[0]" in site.config_rejection
    await store.ingest(IngestBatch(NOW, reports=[("s1", ConfigReport(version=3, status="applied"))]))
    site = await store.get_site("s1")
    assert site is not None and site.config_version == 3 and site.config_rejected_version is None
    await store.ingest(IngestBatch(NOW, results=[("s1", CommandResult(id="x1", ok=True, result={"pong": 1}))]))


async def test_cdr_search(store: FleetStore) -> None:
    records = [
        ("s1", cdr(1, "0611111111", "sales", "answered", NOW)),
        ("s1", cdr(2, "0622222222", "support", "no-answer", NOW + 100)),
        ("s2", cdr(1, "0611111111", "sales", "cancelled", NOW + 200)),
        ("s2", rec(2, "interval", queue="sales")),
    ]
    await store.ingest(IngestBatch(NOW, records=records))
    assert [(c.site_id, c.seq) for c in await store.search_cdrs()] == [("s2", 1), ("s1", 2), ("s1", 1)]
    assert [c.seq for c in await store.search_cdrs(caller="0611111111", site_id="s1")] == [1]
    assert len(await store.search_cdrs(caller="06*")) == 3
    assert len(await store.search_cdrs(caller="06%")) == 0  # % is not a wildcard
    assert [c.disposition for c in await store.search_cdrs(queue="sales")] == ["cancelled", "answered"]
    assert [c.site_id for c in await store.search_cdrs(since=NOW + 50, until=NOW + 150)] == ["s1"]
    found = await store.search_cdrs(disposition="answered")
    assert found[0].duration_s == 65 and found[0].body["call_id"] == "c1"
    assert [r.kind for r in await store.list_records(kind="interval")] == ["interval"]


async def test_ack_alarm_is_audited(store: FleetStore) -> None:
    from fleet.alarms import Raise

    await store.ingest(IngestBatch(NOW, alarms=[Raise("s1", "trunk_down", "wan", "major", "down")]))
    [alarm] = await store.list_alarms()
    assert await store.ack_alarm(alarm.id, "alice")
    assert not await store.ack_alarm(alarm.id, "bob")
    [alarm] = await store.list_alarms()
    assert alarm.acked_by == "alice"
    [entry] = await store.list_audit()
    assert (entry.actor, entry.action, entry.target) == ("alice", "alarm.ack", str(alarm.id))

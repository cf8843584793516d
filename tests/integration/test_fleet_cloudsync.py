"""Cloud sync from a real fleet store (filled through its ingest) to a real cloud store:
SQLite to SQLite always; SQLite to PostgreSQL and PostgreSQL to PostgreSQL when a
server answers. Incremental runs, the contiguous-seq boundary, a crash inside the
destination transaction (the ``fault_hook`` test seam), a transient error retried,
alarm history, masking of every number, and the command line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import String, Text, delete, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from edge_core.telemetry.protocol import Record
from fleet.alarms import Clear, Raise
from fleet.cloudsync import (
    CloudSync,
    MaskPolicy,
    SyncSettings,
    cloud,
    cloud_alarms,
    cloud_cdrs,
    cloud_intervals,
    cloud_tasks,
    run_forever,
    sync_watermarks,
)
from fleet.store import FleetStore, IngestBatch
from fleet.store.engine import make_engine
from tests.brokers import postgres_url

CALLERS = ["+442079461234", "+14155550123", "07700900123", "+4930123456789"]
T = 1_730_000_000.0


@pytest.fixture(params=["sqlite-sqlite", "sqlite-postgresql", "postgresql-postgresql"])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    src_kind, dst_kind = request.param.split("-")
    with ExitStack() as stack:
        def url(kind: str, name: str) -> str:
            if kind == "sqlite":
                return f"sqlite+aiosqlite:///{tmp_path}/{name}.db"
            pg = stack.enter_context(postgres_url(f"bl_{name}"))
            if pg is None:
                pytest.skip("no PostgreSQL server")
            return pg

        yield url(src_kind, "fleet"), url(dst_kind, "cloud")


@pytest.fixture
async def fleet(urls: tuple[str, str]) -> AsyncIterator[FleetStore]:
    store = await FleetStore.open(urls[0])
    yield store
    await store.close()


@pytest.fixture
async def dest(urls: tuple[str, str]) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(urls[1])
    yield engine
    await engine.dispose()


def cdr(seq: int, caller: str, *, queue: str = "sales", score: int | None = None) -> Record:
    start = T + seq * 60
    body = {"call_id": f"call-{seq}", "a_call_id": f"{seq}@phone", "b_call_id": None,
            "from_uri": f"sip:{caller}@192.0.2.10", "from_number": caller, "to_number": "+442079460100",
            "destination": f"queue:{queue}", "start_time": start, "answer_time": start + 5,
            "end_time": start + 65, "disposition": "answered", "hangup_side": "caller", "sip_status": 200,
            "sip_reason": "OK", "dtmf": "31415926", "survey_score": score, "transfers": 0}
    return Record(seq=seq, kind="cdr", at=start + 65, body=body)  # type: ignore[arg-type]


def interval(seq: int) -> Record:
    body = {"kind": "queue", "name": "sales", "queue": "sales", "start": T, "end": T + 900, "offered": 3}
    return Record(seq=seq, kind="interval", at=T + 900, body=body)  # type: ignore[arg-type]


def task(seq: int, caller: str) -> Record:
    body = {"id": seq, "kind": "survey-followup", "call_id": f"call-{seq - 1}", "caller": caller,
            "detail": "survey score 1", "created_at": T + seq, "due_at": T + seq + 86400}
    return Record(seq=seq, kind="task", at=T + seq, body=body)  # type: ignore[arg-type]


def event(seq: int) -> Record:
    return Record(seq=seq, kind="event", at=T + seq, body={"what": "boot"})  # type: ignore[arg-type]


def day_one() -> list[Record]:
    """seq 1..8: 4 CDRs, a task, an interval row, an event (not exported), a CDR."""
    return [cdr(1, CALLERS[0], score=5), cdr(2, CALLERS[1]), task(3, CALLERS[1]), interval(4),
            event(5), cdr(6, CALLERS[2], score=1), task(7, CALLERS[2]), cdr(8, CALLERS[3])]


async def ingest(fleet: FleetStore, site: str, records: list[Record], **extra: Any) -> None:
    await fleet.ingest(IngestBatch(now=time.time(), records=[(site, r) for r in records], **extra))


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar() or 0)


async def counts(engine: AsyncEngine) -> tuple[int, int, int]:
    return (await count(engine, cloud_cdrs), await count(engine, cloud_intervals), await count(engine, cloud_tasks))


async def test_incremental_export_moves_only_new_rows(fleet: FleetStore, dest: AsyncEngine) -> None:
    await ingest(fleet, "b1", day_one())
    await ingest(fleet, "b2", [cdr(1, CALLERS[0]), cdr(2, CALLERS[1])])
    sync = CloudSync(fleet.engine, dest, SyncSettings(batch_size=3))
    first = await sync.run_once()
    assert first.exported == {"cdr": 6, "interval": 1, "task": 2, "alarm": 0}
    assert await counts(dest) == (6, 1, 2)
    async with dest.connect() as conn:
        before = dict(list(await conn.execute(select(cloud_cdrs.c.seq, cloud_cdrs.c.exported_at)
                                              .where(cloud_cdrs.c.site_id == "b1"))))
    assert (await sync.run_once()).exported == {"cdr": 0, "interval": 0, "task": 0, "alarm": 0}

    await ingest(fleet, "b1", [cdr(9, CALLERS[0]), interval(10), cdr(11, CALLERS[1])])
    third = await CloudSync(fleet.engine, dest, SyncSettings(batch_size=3)).run_once()  # a fresh process
    assert third.exported == {"cdr": 2, "interval": 1, "task": 0, "alarm": 0}
    assert await counts(dest) == (8, 2, 2)
    async with dest.connect() as conn:
        after = dict(list(await conn.execute(select(cloud_cdrs.c.seq, cloud_cdrs.c.exported_at)
                                             .where(cloud_cdrs.c.site_id == "b1"))))
        row = (await conn.execute(select(cloud_cdrs).where(cloud_cdrs.c.site_id == "b1",
                                                           cloud_cdrs.c.seq == 6))).one()
        marks = dict(list(await conn.execute(select(sync_watermarks.c.stream, sync_watermarks.c.seq))))
    assert {k: after[k] for k in before} == before  # the old rows were not rewritten
    assert (row.queue, row.survey_score, row.caller, row.start_time) == ("sales", 1, "077xxxx0123", T + 360)
    assert marks == {"records:b1": 11, "records:b2": 2}


async def test_records_above_a_gap_wait_for_it(fleet: FleetStore, dest: AsyncEngine) -> None:
    records = day_one()
    await ingest(fleet, "b1", records[:2] + records[3:])  # seq 3 missing: the fleet acks 2
    sync = CloudSync(fleet.engine, dest)
    assert (await sync.run_once()).exported["cdr"] == 2
    await ingest(fleet, "b1", [records[2]])
    assert (await sync.run_once()).exported == {"cdr": 2, "interval": 1, "task": 2, "alarm": 0}
    assert await counts(dest) == (4, 1, 2)


class InjectedCrash(Exception):
    pass


async def test_crash_before_commit_then_rerun_is_exactly_once(fleet: FleetStore, dest: AsyncEngine) -> None:
    await ingest(fleet, "b1", day_one())
    calls: list[str] = []

    def crash_on_second_batch(stream: str) -> None:
        calls.append(stream)
        if len(calls) == 2:
            raise InjectedCrash(stream)

    crashing = CloudSync(fleet.engine, dest, SyncSettings(batch_size=2), fault_hook=crash_on_second_batch)
    with pytest.raises(InjectedCrash):
        await crashing.run_once()
    # the first batch (seq 1-2) committed with its watermark; the second rolled back whole
    assert await counts(dest) == (2, 0, 0)
    async with dest.connect() as conn:
        assert (await conn.execute(select(sync_watermarks.c.seq))).scalar() == 2

    again = await CloudSync(fleet.engine, dest, SyncSettings(batch_size=2)).run_once()
    assert again.exported == {"cdr": 2, "interval": 1, "task": 2, "alarm": 0}
    assert await counts(dest) == (4, 1, 2)

    # the watermark lost altogether: everything is copied again, onto the same keys
    async with dest.begin() as conn:
        await conn.execute(delete(sync_watermarks))
    repeat = await CloudSync(fleet.engine, dest).run_once()
    assert repeat.exported["cdr"] == 4
    assert await counts(dest) == (4, 1, 2)


async def test_transient_errors_are_retried(fleet: FleetStore, dest: AsyncEngine) -> None:
    await ingest(fleet, "b1", day_one())
    failures = [ConnectionResetError("connection reset by peer"), TimeoutError()]

    def flaky(stream: str) -> None:
        if failures:
            raise failures.pop(0)

    settings = SyncSettings(backoff_min_s=0.01, backoff_max_s=0.02)
    result = await CloudSync(fleet.engine, dest, settings, fault_hook=flaky).run_once()
    assert result.retries == 2
    assert await counts(dest) == (4, 1, 2)

    always = CloudSync(fleet.engine, dest, SyncSettings(retries=2, backoff_min_s=0.01),
                       fault_hook=lambda s: (_ for _ in ()).throw(ConnectionRefusedError("refused")))
    await ingest(fleet, "b1", [cdr(9, CALLERS[0])])
    with pytest.raises(ConnectionRefusedError):
        await always.run_once()
    assert await counts(dest) == (4, 1, 2)


async def test_alarm_history_follows_ack_and_clear(fleet: FleetStore, dest: AsyncEngine) -> None:
    raise_ = Raise("b1", "trunk_down", "pstn", "major", "trunk pstn down")
    await ingest(fleet, "b1", [], alarms=[raise_])
    sync = CloudSync(fleet.engine, dest, SyncSettings(alarm_overlap_s=0.0))
    assert (await sync.run_once()).exported["alarm"] == 1
    assert (await sync.run_once()).exported["alarm"] == 0
    (alarm,) = await fleet.list_alarms(site_id="b1")
    assert await fleet.ack_alarm(alarm.id, "olivia")
    await ingest(fleet, "b1", [], alarms=[raise_])  # seen again: count 2
    await ingest(fleet, "b1", [], alarms=[Clear("b1", "trunk_down", "pstn")])
    await ingest(fleet, "b1", [], alarms=[raise_])  # a new alarm
    assert (await sync.run_once()).exported["alarm"] == 2
    async with dest.connect() as conn:
        rows = list(await conn.execute(select(cloud_alarms).order_by(cloud_alarms.c.id)))
    assert [(r.active, r.acked_by, r.count, r.cleared_at is not None) for r in rows] == [
        (False, "olivia", 2, True), (True, None, 1, False)]
    # with the default overlap, recent changes are copied again, onto the same rows
    await CloudSync(fleet.engine, dest).run_once()
    assert await count(dest, cloud_alarms) == 2


async def scan_text(engine: AsyncEngine) -> list[str]:
    """Every text and JSON value in every table of the cloud store, as text."""
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        values: list[str] = []
        for name in tables:
            table = next(t for t in (cloud_cdrs, cloud_intervals, cloud_tasks, cloud_alarms, sync_watermarks)
                         if t.name == name)
            for row in await conn.execute(select(table)):
                for col, value in zip(table.columns, row, strict=True):
                    if isinstance(col.type, String | Text) and value is not None:
                        values.append(str(value))
                    elif isinstance(value, dict | list):
                        values.append(json.dumps(value))
    return values


@pytest.mark.parametrize("policy", [MaskPolicy(), MaskPolicy("keep", keep_last=2, keep_first=0),
                                    MaskPolicy("hash", salt="pepper"), MaskPolicy("drop")],
                         ids=["keep4", "keep2", "hash", "drop"])
async def test_no_full_number_leaves_the_fleet(fleet: FleetStore, dest: AsyncEngine, policy: MaskPolicy) -> None:
    await ingest(fleet, "b1", day_one())
    await CloudSync(fleet.engine, dest, SyncSettings(mask=policy)).run_once()
    texts = await scan_text(dest)
    assert texts
    secrets = [*CALLERS, "+442079460100", "31415926"]
    for secret in secrets:
        for variant in (secret, secret.lstrip("+"), secret.lstrip("+0")):
            assert not any(variant in t for t in texts), (variant, [t for t in texts if variant in t][:3])
    async with dest.connect() as conn:
        callers = sorted((await conn.execute(select(cloud_cdrs.c.caller))).scalars())
        uri = (await conn.execute(select(cloud_cdrs.c.body).where(cloud_cdrs.c.seq == 1))).scalar_one()["from_uri"]
    assert callers == sorted(policy.number(c) for c in CALLERS[:4])
    if policy == MaskPolicy():
        assert "+4420xxxx1234" in callers and uri == "sip:+4420xxxx1234@192.0.2.10"


async def test_command_line_once(fleet: FleetStore, urls: tuple[str, str], dest: AsyncEngine) -> None:
    await ingest(fleet, "b1", day_one())
    done = subprocess.run([sys.executable, "-m", "fleet.cloudsync", "--from", urls[0], "--to", urls[1],
                           "--once", "--mask", "keep:4"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["exported"] == {"cdr": 4, "interval": 1, "task": 2, "alarm": 0}
    assert await counts(dest) == (4, 1, 2)
    bad = subprocess.run([sys.executable, "-m", "fleet.cloudsync", "--from", urls[0], "--mask", "hash"],
                         capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin"})
    assert bad.returncode == 2 and "salt" in bad.stderr


async def test_run_forever_exports_until_stopped(fleet: FleetStore, urls: tuple[str, str],
                                                 dest: AsyncEngine) -> None:
    if not urls[0].startswith("sqlite") or not urls[1].startswith("sqlite"):
        pytest.skip("the loop is dialect-neutral; once is enough")
    await ingest(fleet, "b1", day_one())
    async with dest.begin() as conn:  # so the polling below never races the exporter's create_all
        await conn.run_sync(cloud.create_all)
    stop = asyncio.Event()
    loop = asyncio.create_task(run_forever(urls[0], urls[1], stop, every_s=0.05))
    async with asyncio.timeout(10):
        while await count(dest, cloud_tasks) < 2:
            await asyncio.sleep(0.02)
        await ingest(fleet, "b1", [cdr(9, CALLERS[0])])
        while await count(dest, cloud_cdrs) < 5:
            await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(loop, 5)
    assert await counts(dest) == (5, 1, 2)

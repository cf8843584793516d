"""The edge store's outbox on a real SQLite file: written in the source row's
transaction, gapless sequence, batches after a seq, acked deletes, survives reopen
and a killed process."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_core.acd.stats import QueueIntervalRow
from edge_core.store.db import AppliedConfig, CdrRow, EdgeStore, StoreError, TaskRow
from tests.sipp import REPO_ROOT

NOW = 1_700_000_000.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "edge.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[EdgeStore]:
    store = await EdgeStore.open(db_path)
    yield store
    await store.close()


def cdr(**changes: object) -> CdrRow:
    row = CdrRow(
        call_id=str(uuid.uuid4()), a_call_id="a@x", b_call_id=None, from_uri="sip:1001@branch",
        from_number="1001", to_number="1002", destination="extension:1002", start_time=NOW,
        answer_time=None, end_time=NOW + 3, disposition="no-answer", hangup_side="caller",
        sip_status=487, sip_reason="Request Terminated",
    )  # fmt: skip
    return dataclasses.replace(row, **changes)  # type: ignore[arg-type]


def interval_row(queue: str) -> QueueIntervalRow:
    fields: dict[str, object] = {f.name: 0 for f in dataclasses.fields(QueueIntervalRow)}
    fields.update(start=NOW, end=NOW + 900, queue=queue)
    return QueueIntervalRow(**fields)  # type: ignore[arg-type]


async def test_every_source_row_gets_an_outbox_record_in_order(store: EdgeStore) -> None:
    first, second = cdr(), cdr()
    await store.insert_cdrs([first, second])
    await store.insert_cdr(third := cdr())
    await store.insert_intervals([interval_row("sales")])
    await store.insert_task(TaskRow("survey-followup", first.call_id, "1001", "survey score 1", NOW, NOW + 86400))
    await store.insert_voicemail("call-9", "2001", "1001", "/var/vm/2001/call-9.wav", NOW, 4.5)
    await store.insert_event(NOW + 5, {"type": "mode", "mode": "survivable"})

    records = await store.outbox_after(0, 100)
    assert [r.seq for r in records] == [1, 2, 3, 4, 5, 6, 7]
    assert [r.kind for r in records] == ["cdr", "cdr", "cdr", "interval", "task", "voicemail", "event"]
    assert [r.body["call_id"] for r in records[:3]] == [first.call_id, second.call_id, third.call_id]
    assert records[0].body == dataclasses.asdict(first)
    assert records[0].at == first.end_time
    assert records[3].body["queue"] == "sales" and records[3].body["kind"] == "queue"
    assert records[4].body["call_id"] == first.call_id and records[4].body["id"] == 1
    assert records[5].body["mailbox"] == "2001"
    assert records[6].body == {"type": "mode", "mode": "survivable"}
    assert await store.outbox_backlog() == 7
    assert await store.outbox_last_seq() == 7


async def test_a_failed_source_write_leaves_no_outbox_record(store: EdgeStore) -> None:
    row = cdr()
    await store.insert_cdrs([row])
    with pytest.raises(StoreError):
        await store.insert_cdrs([cdr(), row])  # the duplicate fails the whole batch
    assert [r.seq for r in await store.outbox_after(0, 10)] == [1]
    assert len(await store.list_cdrs()) == 1
    await store.insert_cdr(cdr())
    assert [r.seq for r in await store.outbox_after(0, 10)] == [1, 2]  # no gap


async def test_outbox_row_is_in_the_source_rows_transaction(store: EdgeStore, db_path: Path) -> None:
    """Both or neither, as a second connection sees them (the TUI, a crash recovery):
    a source row that fails takes its outbox row and the seq it took back with it."""
    await store.insert_cdrs([cdr()])
    other = sqlite3.connect(db_path)
    try:
        (cdrs,) = other.execute("SELECT count(*) FROM cdrs").fetchone()
        (queued,) = other.execute("SELECT count(*) FROM outbox WHERE kind = 'cdr'").fetchone()
        assert (cdrs, queued) == (1, 1)
        # a CDR row rejected by the table's CHECK rolls the outbox row back with it
        with pytest.raises(sqlite3.IntegrityError):
            await store._db.execute("BEGIN IMMEDIATE")
            try:
                from edge_core.store.db import _outbox_add

                await _outbox_add(store._db, [("cdr", NOW, {"x": 1})])
                await store._db.execute("INSERT INTO cdrs (call_id) VALUES ('broken')")
            finally:
                await store._db.execute("ROLLBACK")
        assert other.execute("SELECT count(*) FROM outbox").fetchone() == (1,)
        assert other.execute("SELECT last FROM outbox_seq").fetchone() == (1,)
    finally:
        other.close()


async def test_batches_after_a_seq_and_acked_deletes(store: EdgeStore) -> None:
    for i in range(10):
        await store.insert_event(NOW + i, {"type": "tick", "n": i})
    batch = await store.outbox_after(0, 4)
    assert [r.seq for r in batch] == [1, 2, 3, 4]
    assert [r.seq for r in await store.outbox_after(4, 4)] == [5, 6, 7, 8]
    assert [r.seq for r in await store.outbox_after(8, 4)] == [9, 10]
    assert await store.outbox_after(10, 4) == []

    assert await store.outbox_delete_upto(4) == 4
    assert await store.outbox_backlog() == 6
    assert [r.seq for r in await store.outbox_after(0, 100)] == [5, 6, 7, 8, 9, 10]
    assert await store.outbox_delete_upto(3) == 0  # an old ack deletes nothing more
    assert await store.outbox_delete_upto(10) == 6
    assert await store.outbox_backlog() == 0
    # an empty outbox does not restart the sequence: the fleet stores (site, seq) once
    await store.insert_event(NOW, {"type": "tick", "n": 10})
    assert [r.seq for r in await store.outbox_after(0, 10)] == [11]


async def test_outbox_and_applied_config_survive_reopen(db_path: Path) -> None:
    store = await EdgeStore.open(db_path)
    await store.insert_cdrs([cdr(), cdr()])
    await store.outbox_delete_upto(1)
    await store.save_applied_config(AppliedConfig(7, "fleet", {"site": {"id": "b7"}}, NOW))
    await store.close()

    store = await EdgeStore.open(db_path)
    try:
        assert [r.seq for r in await store.outbox_after(0, 10)] == [2]
        await store.insert_event(NOW, {"type": "x"})
        assert await store.outbox_last_seq() == 3
        assert await store.load_applied_config() == AppliedConfig(7, "fleet", {"site": {"id": "b7"}}, NOW)
        assert await store.integrity_check() == ["ok"]
    finally:
        await store.close()


async def test_a_commit_survives_kill_9(db_path: Path) -> None:
    """A child process commits records then SIGKILLs itself, without closing the
    database: every committed record is there, none half-written."""
    script = textwrap.dedent(f"""
        import asyncio, os, signal
        from edge_core.store.db import EdgeStore

        async def main():
            store = await EdgeStore.open({str(db_path)!r})
            for i in range(50):
                await store.insert_event(float(i), {{"type": "tick", "n": i}})
            await store.sync()
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    store = await EdgeStore.open(db_path)
    try:
        records = await store.outbox_after(0, 100)
        assert [r.body["n"] for r in records] == list(range(50))
        assert [r.seq for r in records] == list(range(1, 51))
    finally:
        await store.close()


async def test_durability_settings_are_wal_and_normal(store: EdgeStore) -> None:
    assert await store.journal_mode() == "wal"
    assert int(await store._pragma("synchronous")) == 1  # NORMAL; the drain fsyncs (sync())


async def test_a_write_cancelled_half_way_leaves_the_store_usable(store: EdgeStore) -> None:
    """The drain's tasks are cancelled when a connection drops, possibly inside a
    transaction: the store must not stay "within a transaction" after that."""
    import asyncio

    for _ in range(20):
        task = asyncio.ensure_future(store.insert_event(NOW, {"type": "x"}))
        await asyncio.sleep(0)  # let it reach BEGIN
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        deleting = asyncio.ensure_future(store.outbox_delete_upto(10**9))
        await asyncio.sleep(0)
        deleting.cancel()
    await store.insert_event(NOW, {"type": "after"})
    records = await store.outbox_after(0, 100)
    assert records and records[-1].body == {"type": "after"}
    assert [r.seq for r in records] == list(range(records[0].seq, records[-1].seq + 1))

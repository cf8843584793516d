"""The worker's pipeline and the store's fast records path.

Pipeline (a fake connection and a store whose commit the test holds open): messages
arriving during a commit are parsed then, form the next transaction, and nothing is
acknowledged — neither the PUBACK nor the edge's ``ack`` — before its own commit; PUBACKs
go out in arrival order; on stop the commit in flight finishes and is acknowledged while
the batch behind it is left unacknowledged for redelivery.

Store (SQLite and PostgreSQL): bodies read back as sent, the CDR projection, and the
known-sites shortcut surviving a site row that went away.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import delete

from edge_core.telemetry import protocol as p
from fleet.store import FleetStore, IngestBatch, IngestResult, schema
from fleet.worker import IngestWorker, WorkerSettings


class FakeMessage:
    def __init__(self, mid: int, topic: str, payload: bytes) -> None:
        self.mid, self.topic, self.payload, self.qos = mid, topic, payload, 1


class FakeConnection:
    """What ``IngestWorker._consume`` uses of an ``MqttConnection``."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[FakeMessage] = asyncio.Queue()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent: list[tuple[str, Any]] = []
        """("ack", site, upto) publishes and ("puback", mid) in the order they went out."""
        self.mid = 0

    def deliver(self, site: str, seq: int) -> None:
        self.mid += 1
        body = {"records": [{"seq": seq, "kind": "event", "at": 1.0, "body": {"n": seq}}]}
        self.messages.put_nowait(FakeMessage(self.mid, p.topic(site, "outbox"), json.dumps(body).encode()))

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        self.sent.append(("ack", (p.parse_topic(topic)[0], p.Ack.from_bytes(payload).upto)))
        return 0

    def ack(self, message: FakeMessage) -> None:
        self.sent.append(("puback", message.mid))


class GatedStore:
    """Each ``ingest`` waits until the test opens its gate; acks the batch's last seq."""

    def __init__(self) -> None:
        self.batches: list[IngestBatch] = []
        self.gates: list[asyncio.Event] = []
        self.started = asyncio.Event()

    async def ingest(self, batch: IngestBatch) -> IngestResult:
        gate = asyncio.Event()
        self.batches.append(batch)
        self.gates.append(gate)
        self.started.set()
        await gate.wait()
        return IngestResult({s: max(r.seq for t, r in batch.records if t == s) for s, _ in batch.records}, [])


async def until(predicate: Any, what: str) -> None:
    async with asyncio.timeout(5):
        while not predicate():
            await asyncio.sleep(0.001)


async def test_parsing_overlaps_the_commit_and_acks_wait_for_it() -> None:
    mqtt, store = FakeConnection(), GatedStore()
    w = IngestWorker(store, WorkerSettings("mqtt://127.0.0.1:1", "pipe"))  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(w._consume(mqtt, stop))  # type: ignore[arg-type]
    mqtt.deliver("a", 1)
    await until(lambda: len(store.batches) == 1, "first commit")
    for seq in (2, 3):
        mqtt.deliver("a", seq)
    mqtt.deliver("b", 1)
    await until(lambda: w.stats.messages == 4, "parsed during the commit")
    assert len(store.batches) == 1 and mqtt.sent == []  # nothing acknowledged before its commit
    store.gates[0].set()
    await until(lambda: len(store.batches) == 2, "second commit")
    assert mqtt.sent == [("ack", ("a", 1)), ("puback", 1)]
    assert [(s, r.seq) for s, r in store.batches[1].records] == [("a", 2), ("a", 3), ("b", 1)]
    mqtt.deliver("a", 4)  # arrives during the second commit; stop comes before it is stored
    await until(lambda: w.stats.messages == 5, "parsed")
    stop.set()
    await asyncio.sleep(0.01)
    assert not task.done()  # the commit in flight is waited for
    store.gates[1].set()
    await asyncio.wait_for(task, 5)
    assert len(store.batches) == 2  # the batch behind it was never stored ...
    pubacks = [x for kind, x in mqtt.sent if kind == "puback"]
    assert pubacks == [1, 2, 3, 4]  # ... nor acknowledged: its message 5 is redelivered
    assert ("ack", ("a", 3)) in mqtt.sent and ("ack", ("b", 1)) in mqtt.sent


async def test_a_lost_connection_finishes_the_commit_without_acking() -> None:
    mqtt, store = FakeConnection(), GatedStore()
    w = IngestWorker(store, WorkerSettings("mqtt://127.0.0.1:1", "pipe"))  # type: ignore[arg-type]
    task = asyncio.create_task(w._consume(mqtt, asyncio.Event()))  # type: ignore[arg-type]
    mqtt.deliver("a", 1)
    await store.started.wait()
    mqtt.lost.set_result(None)
    await asyncio.sleep(0.01)
    store.gates[0].set()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(task, 5)
    assert mqtt.sent == []  # the broker redelivers; the insert-or-ignore makes that harmless


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[FleetStore]:
    store = await FleetStore.open(db_url)
    yield store
    await store.close()


async def test_bodies_read_back_as_sent_with_the_cdr_projection(store: FleetStore) -> None:
    w = IngestWorker(store, WorkerSettings("mqtt://127.0.0.1:1", "store"))
    cdr = {"call_id": "c1", "from_number": "0612345678", "to_number": "100", "destination": "queue:sales",
           "start_time": 100.0, "end_time": 160.5, "disposition": "answered", "note": "é – 日本 \u2028"}
    event = {"big": 2**62, "tiny": 1e-300, "nested": [{"a": None, "b": [True, False]}], "": ""}
    payload = json.dumps({"records": [{"seq": 1, "kind": "cdr", "at": 160.5, "body": cdr},
                                      {"seq": 2, "kind": "event", "at": 161.0, "body": event}]}).encode()
    parsed = w.parse([FakeMessage(1, "bl/v1/site/s1/outbox", payload)], 1.0)  # type: ignore[list-item]
    result = await store.ingest(parsed.batch)
    assert result.acks == {"s1": 2}
    assert [r.body for r in await store.list_records(site_id="s1")] == [cdr, event]
    [row] = await store.search_cdrs(site_id="s1")
    assert (row.caller, row.queue, row.duration_s, row.disposition) == ("0612345678", "sales", 60.5, "answered")


async def test_a_known_site_whose_row_went_away_is_recreated(store: FleetStore) -> None:
    def rec(seq: int) -> p.Record:
        return p.Record(seq=seq, kind="event", at=1.0, body={"n": seq})

    assert (await store.ingest(IngestBatch(1.0, records=[("s1", rec(1))]))).acks == {"s1": 1}
    async with store.transaction() as conn:  # behind the store's back: its cache still says "known"
        await conn.execute(delete(schema.sites).where(schema.sites.c.id == "s1"))
    result = await store.ingest(IngestBatch(2.0, records=[("s1", rec(2)), ("s2", rec(1))]))
    assert result.acks == {"s1": 2, "s2": 1}
    assert sorted(result.new_sites) == ["s1", "s2"]
    assert (await store.get_site("s1")).contiguous_seq == 2  # type: ignore[union-attr]

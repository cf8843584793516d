"""The outbox's disk quota: what is shed first, that order and sequence survive, and
the alarm that says so (issue 6, store-and-forward)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_core.store.db import TOMBSTONE, EdgeStore, OutboxQuota
from tests.unit.test_outbox import cdr


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EdgeStore]:
    s = await EdgeStore.open(tmp_path / "edge.db")
    yield s
    await s.close()


async def test_events_go_first_then_cdrs_never_and_seq_stays_contiguous(store: EdgeStore) -> None:
    for i in range(20):
        await store.insert_event(float(i), {"type": "trunk", "pad": "x" * 400})
    await store.insert_cdrs([cdr() for _ in range(5)])
    full = store.outbox_bytes
    assert full == sum(len(json.dumps(r.body, separators=(",", ":"))) for r in await store.outbox_after(0, 1000))
    store.quota = OutboxQuota(max_bytes=full - 2000)  # a little too small: some events go
    await store.insert_event(99.0, {"type": "mode", "new": "survivable"})
    records = await store.outbox_after(0, 1000)
    assert [r.seq for r in records] == list(range(1, len(records) + 1))  # no gap for the fleet's ack
    shed = [r for r in records if r.body == TOMBSTONE]
    assert shed and all(r.kind == "event" for r in shed)
    assert [r.seq for r in shed] == list(range(1, len(shed) + 1))  # the oldest first
    assert all(r.body != TOMBSTONE for r in records if r.kind == "cdr")
    assert store.outbox_bytes <= store.quota.max_bytes
    alarms = [r.body for r in records if r.body.get("alarm") == "outbox-shedding"]
    assert len(alarms) == 1 and alarms[0]["active"] is True and alarms[0]["severity"] == "major"


async def test_the_alarm_clears_once_the_fleet_has_drained_the_backlog(store: EdgeStore) -> None:
    store.quota = OutboxQuota(max_bytes=3000)
    for i in range(20):
        await store.insert_event(float(i), {"type": "trunk", "pad": "y" * 300})
    assert store.shedding
    last = await store.outbox_last_seq()
    await store.outbox_delete_upto(last)  # the fleet acked everything
    assert not store.shedding and store.outbox_bytes == await store._outbox_size()
    (clear,) = await store.outbox_after(last, 10)
    assert clear.body["alarm"] == "outbox-shedding" and clear.body["active"] is False


async def test_cdrs_are_shed_only_when_the_site_says_so(store: EdgeStore) -> None:
    store.quota = OutboxQuota(max_bytes=1500, shed_order=("event",))
    await store.insert_cdrs([cdr() for _ in range(10)])
    assert all(r.body != TOMBSTONE for r in await store.outbox_after(0, 100) if r.kind == "cdr")
    assert store.outbox_bytes > 1500  # over quota: kept, the alarm says what is wrong
    store.quota = OutboxQuota(max_bytes=1500, shed_order=("event", "cdr"))
    await store.insert_cdrs([cdr()])
    assert any(r.body == TOMBSTONE for r in await store.outbox_after(0, 100) if r.kind == "cdr")
    # the CDR table itself keeps every call: only the copy waiting for the fleet is given up
    assert len(await store.list_cdrs(100)) == 11


async def test_the_byte_count_is_right_after_a_reopen(tmp_path: Path) -> None:
    first = await EdgeStore.open(tmp_path / "edge.db")
    await first.insert_event(1.0, {"type": "x", "pad": "z" * 100})
    size = first.outbox_bytes
    await first.close()
    again = await EdgeStore.open(tmp_path / "edge.db")
    assert again.outbox_bytes == size
    await again.close()

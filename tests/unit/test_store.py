"""EdgeStore v0 on a real SQLite file: WAL, migrations, bindings, CDRs."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_core.store.db import MIGRATIONS, BindingRow, CdrRow, EdgeStore, StoreError

NOW = 1_700_000_000.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "lib" / "branchline" / "edge.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[EdgeStore]:
    store = await EdgeStore.open(db_path)
    yield store
    await store.close()


def binding(
    contact: str = "sip:1001@192.0.2.10:5060",
    *,
    expires_at: float = NOW + 3600,
    aor: str = "sip:1001@branch",
    cseq: int = 1,
) -> BindingRow:
    return BindingRow(
        aor=aor,
        contact=contact,
        expires_at=expires_at,
        call_id="reg-1@192.0.2.10",
        cseq=cseq,
        source="udp:192.0.2.10:5060",
        user_agent="Yealink SIP-T46U 108.86.0.20",
    )


def cdr(**changes: object) -> CdrRow:
    row = CdrRow(
        call_id=str(uuid.uuid4()),
        a_call_id="a84b4c76e66710@pc33.branch",
        b_call_id="edge-b-1@branch",
        from_uri="sip:1001@branch",
        from_number="1001",
        to_number="1002",
        destination="extension:1002",
        start_time=NOW,
        answer_time=NOW + 4.5,
        end_time=NOW + 64.5,
        disposition="answered",
        hangup_side="caller",
        sip_status=200,
        sip_reason="OK",
        a_rtp_port=40000,
        b_rtp_port=40002,
        packets_a_to_b=3000,
        packets_b_to_a=2998,
    )
    return dataclasses.replace(row, **changes)  # type: ignore[arg-type]


async def test_open_creates_parent_dirs_and_uses_wal(db_path: Path, store: EdgeStore) -> None:
    assert db_path.exists()
    assert await store.journal_mode() == "wal"
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent
    finally:
        raw.close()


async def test_migrations_are_idempotent(db_path: Path) -> None:
    first = await EdgeStore.open(db_path)
    await first.upsert_binding(binding())
    assert await first.schema_version() == len(MIGRATIONS)
    await first.close()
    second = await EdgeStore.open(db_path)
    assert await second.schema_version() == len(MIGRATIONS)
    assert await second.load_bindings(NOW) == [binding()]
    await second.close()


async def test_database_from_newer_software_is_refused(db_path: Path) -> None:
    await (await EdgeStore.open(db_path)).close()
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    raw.close()
    with pytest.raises(StoreError, match="newer than this software"):
        await EdgeStore.open(db_path)


async def test_binding_upsert_refreshes_in_place(store: EdgeStore) -> None:
    await store.upsert_binding(binding())
    refreshed = binding(expires_at=NOW + 7200, cseq=2)
    await store.upsert_binding(refreshed)
    await store.upsert_binding(binding("sip:1001@192.0.2.11:5060"))
    assert await store.load_bindings(NOW) == [refreshed, binding("sip:1001@192.0.2.11:5060")]


async def test_expired_bindings_are_dropped_and_deleted(store: EdgeStore) -> None:
    await store.upsert_binding(binding("sip:a@h", expires_at=NOW - 1))
    await store.upsert_binding(binding("sip:b@h", expires_at=NOW))
    await store.upsert_binding(binding("sip:c@h", expires_at=NOW + 1))
    assert [b.contact for b in await store.load_bindings(NOW)] == ["sip:c@h"]
    # Deleted, not just filtered: an earlier "now" does not bring them back.
    assert [b.contact for b in await store.load_bindings(NOW - 100)] == ["sip:c@h"]


async def test_delete_binding_and_all_bindings_of_an_aor(store: EdgeStore) -> None:
    for contact in ("sip:a@h", "sip:b@h"):
        await store.upsert_binding(binding(contact))
    await store.upsert_binding(binding("sip:x@h", aor="sip:1002@branch"))
    await store.delete_binding("sip:1001@branch", "sip:a@h")
    assert [b.contact for b in await store.load_bindings(NOW)] == ["sip:b@h", "sip:x@h"]
    await store.delete_bindings("sip:1001@branch")
    assert [b.aor for b in await store.load_bindings(NOW)] == ["sip:1002@branch"]


async def test_cdr_round_trip_newest_first(store: EdgeStore) -> None:
    answered = cdr()
    missed = cdr(
        b_call_id=None,
        destination=None,
        answer_time=None,
        disposition="no-answer",
        hangup_side="edge",
        sip_status=480,
        sip_reason="Temporarily Unavailable",
        a_rtp_port=None,
        b_rtp_port=None,
        packets_a_to_b=0,
        packets_b_to_a=0,
    )
    first_id = await store.insert_cdr(answered)
    second_id = await store.insert_cdr(missed)
    assert second_id > first_id
    assert await store.list_cdrs() == [missed, answered]
    assert await store.list_cdrs(limit=1) == [missed]


async def test_duplicate_cdr_is_refused(store: EdgeStore) -> None:
    row = cdr()
    await store.insert_cdr(row)
    with pytest.raises(StoreError, match=f"CDR for call {row.call_id} is already stored"):
        await store.insert_cdr(row)
    assert await store.list_cdrs() == [row]


def test_cdr_row_validates_its_enumerations() -> None:
    with pytest.raises(ValueError, match="disposition 'hung'"):
        cdr(disposition="hung")
    with pytest.raises(ValueError, match="hangup_side"):
        cdr(hangup_side="nobody")
    with pytest.raises(ValueError, match="sip_status 99"):
        cdr(sip_status=99)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cdr().sip_status = 486  # type: ignore[misc]


async def test_data_survives_close_and_reopen(db_path: Path) -> None:
    store = await EdgeStore.open(db_path)
    row = cdr(disposition="busy", sip_status=486, sip_reason="Busy Here", answer_time=None)
    await store.insert_cdr(row)
    await store.upsert_binding(binding())
    await store.close()
    reopened = await EdgeStore.open(db_path)
    assert await reopened.list_cdrs() == [row]
    assert await reopened.load_bindings(NOW) == [binding()]
    await reopened.close()


async def test_concurrent_inserts_from_tasks(store: EdgeStore) -> None:
    rows = [cdr(to_number=str(2000 + i)) for i in range(50)]

    async def end_call(row: CdrRow) -> int:
        await store.upsert_binding(binding(f"sip:{row.to_number}@h"))
        return await store.insert_cdr(row)

    ids = await asyncio.gather(*(end_call(row) for row in rows))
    assert len(set(ids)) == 50
    stored = await store.list_cdrs(limit=100)
    assert sorted(r.to_number for r in stored) == sorted(r.to_number for r in rows)
    assert len(await store.load_bindings(NOW)) == 50


async def test_failed_transaction_changes_nothing(store: EdgeStore) -> None:
    await store.insert_cdr(cdr())
    with pytest.raises(StoreError):
        # Same call id twice inside one gather: exactly one wins, the other rolls back.
        row = cdr()
        await asyncio.gather(store.insert_cdr(row), store.insert_cdr(row))
    assert len(await store.list_cdrs()) == 2
    await store.upsert_binding(binding())  # the connection is usable afterwards

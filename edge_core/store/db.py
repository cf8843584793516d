"""The edge's SQLite store: registrar bindings, call detail records, interval stats,
tasks, the voicemail and recordings indexes, the outbox and the applied config.

One aiosqlite connection in WAL mode, schema versioned with ``PRAGMA user_version``
and an ordered list of migrations. Writes are serialised by an asyncio lock so one
task's transaction never interleaves with another task's statements on the shared
connection.

The outbox (principle 4): every CDR, interval row, task, voicemail index entry and
event is written to ``outbox`` in the same transaction as its source row, under the
next number of a per-site, gapless sequence kept in ``outbox_seq`` (never reused, even
once the outbox is empty: the fleet stores ``(site, seq)`` once). Rows leave the outbox
only when the fleet's ack covers them (:meth:`EdgeStore.outbox_delete_upto`).

Durability: WAL with ``synchronous=NORMAL``. A commit is in the WAL file (the OS page
cache) when it returns, so it survives the process being killed (kill -9); on power
loss the last commits may be lost, never half-applied. Because the fleet dedups on
``seq``, a record that reached the fleet must never be lost and its seq reused: the
outbox drain calls :meth:`EdgeStore.sync` (an fsync of the WAL) before it publishes,
so everything sent is on disk, at the cost of one fsync per batch instead of one per
commit on the call path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, astuple, dataclass, fields
from pathlib import Path
from typing import Any

import aiosqlite

__all__ = [
    "DISPOSITIONS",
    "HANGUP_SIDES",
    "MIGRATIONS",
    "BindingRow",
    "CdrRow",
    "RecordingRow",
    "TaskRow",
    "OutboxRecord",
    "AppliedConfig",
    "OUTBOX_KINDS",
    "EdgeStore",
    "StoreError",
]

OUTBOX_KINDS = ("cdr", "interval", "task", "event", "voicemail")
"""What the outbox carries (``edge_core.telemetry.protocol.OUTBOX_KINDS``, kept in step)."""

DISPOSITIONS = ("answered", "no-answer", "busy", "failed", "cancelled", "rejected")
HANGUP_SIDES = ("caller", "callee", "edge")

# How long a statement waits for another connection's write lock (the TUI or a
# maintenance tool may open the database too) before failing with "database is locked".
_BUSY_TIMEOUT_MS = 5000


def _sql_in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


# Ordered schema migrations: applying MIGRATIONS[i] brings user_version to i + 1.
# Append only — a migration that has shipped is never edited.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE bindings (
            aor         TEXT NOT NULL,
            contact     TEXT NOT NULL,
            expires_at  REAL NOT NULL,
            call_id     TEXT NOT NULL,
            cseq        INTEGER NOT NULL,
            source      TEXT NOT NULL,
            user_agent  TEXT,
            PRIMARY KEY (aor, contact)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX bindings_by_expiry ON bindings (expires_at)",
        f"""
        CREATE TABLE cdrs (
            id              INTEGER PRIMARY KEY,
            call_id         TEXT NOT NULL UNIQUE,
            a_call_id       TEXT NOT NULL,
            b_call_id       TEXT,
            from_uri        TEXT NOT NULL,
            from_number     TEXT NOT NULL,
            to_number       TEXT NOT NULL,
            destination     TEXT,
            start_time      REAL NOT NULL,
            answer_time     REAL,
            end_time        REAL NOT NULL,
            disposition     TEXT NOT NULL CHECK (disposition IN ({_sql_in(DISPOSITIONS)})),
            hangup_side     TEXT NOT NULL CHECK (hangup_side IN ({_sql_in(HANGUP_SIDES)})),
            sip_status      INTEGER NOT NULL CHECK (sip_status BETWEEN 100 AND 699),
            sip_reason      TEXT NOT NULL,
            a_rtp_port      INTEGER,
            b_rtp_port      INTEGER,
            packets_a_to_b  INTEGER NOT NULL DEFAULT 0,
            packets_b_to_a  INTEGER NOT NULL DEFAULT 0
        )
        """,
    ),
    (
        # the media engine: why a call ended, per-leg quality, the recordings index
        "ALTER TABLE cdrs ADD COLUMN cause TEXT NOT NULL DEFAULT 'normal'",
        "ALTER TABLE cdrs ADD COLUMN a_lost INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE cdrs ADD COLUMN b_lost INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE cdrs ADD COLUMN a_jitter_ms REAL",
        "ALTER TABLE cdrs ADD COLUMN b_jitter_ms REAL",
        "ALTER TABLE cdrs ADD COLUMN mos REAL",
        "ALTER TABLE cdrs ADD COLUMN recording TEXT",
        "ALTER TABLE cdrs ADD COLUMN dtmf TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE cdrs ADD COLUMN survey_score INTEGER",
        "ALTER TABLE cdrs ADD COLUMN transfers INTEGER NOT NULL DEFAULT 0",
        """
        CREATE TABLE interval_stats (
            start   REAL NOT NULL,
            end     REAL NOT NULL,
            kind    TEXT NOT NULL CHECK (kind IN ('queue', 'agent')),
            name    TEXT NOT NULL,
            data    TEXT NOT NULL,
            PRIMARY KEY (start, end, kind, name)
        )
        """,
        """
        CREATE TABLE voicemails (
            call_id      TEXT PRIMARY KEY,
            mailbox      TEXT NOT NULL,
            caller       TEXT NOT NULL,
            path         TEXT NOT NULL,
            received_at  REAL NOT NULL,
            duration_s   REAL NOT NULL,
            heard        INTEGER NOT NULL DEFAULT 0
        )
        """,
        """
        CREATE TABLE tasks (
            id          INTEGER PRIMARY KEY,
            kind        TEXT NOT NULL,
            call_id     TEXT NOT NULL,
            caller      TEXT NOT NULL,
            detail      TEXT NOT NULL,
            created_at  REAL NOT NULL,
            due_at      REAL NOT NULL,
            status      TEXT NOT NULL DEFAULT 'open'
        )
        """,
        """
        CREATE TABLE recordings (
            call_id     TEXT PRIMARY KEY,
            path        TEXT NOT NULL,
            started_at  REAL NOT NULL,
            duration_s  REAL NOT NULL,
            bytes       INTEGER NOT NULL
        )
        """,
    ),
    (
        # the outbox to the fleet (principle 4) and the last applied config (principle 3)
        f"""
        CREATE TABLE outbox (
            seq     INTEGER PRIMARY KEY,
            kind    TEXT NOT NULL CHECK (kind IN ({_sql_in(OUTBOX_KINDS)})),
            at      REAL NOT NULL,
            body    TEXT NOT NULL
        )
        """,
        # the last seq handed out: seq is never reused, even after the outbox emptied
        "CREATE TABLE outbox_seq (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL)",
        "INSERT INTO outbox_seq (id, last) VALUES (1, 0)",
        """
        CREATE TABLE applied_config (
            id          INTEGER PRIMARY KEY CHECK (id = 1),
            version     INTEGER,
            origin      TEXT NOT NULL,
            config      TEXT NOT NULL,
            applied_at  REAL NOT NULL
        )
        """,
    ),
    (
        # the ACD queue a call went through (reports per queue at the fleet)
        "ALTER TABLE cdrs ADD COLUMN queue TEXT",
    ),
)


class StoreError(Exception):
    """The store cannot do what was asked (not WAL-capable, duplicate CDR...)."""


@dataclass(frozen=True)
class BindingRow:
    """One registrar binding of a contact to an address-of-record (RFC 3261 §10)."""

    aor: str
    """Address-of-record, e.g. ``sip:1001@branch``."""
    contact: str
    """The registered Contact URI."""
    expires_at: float
    """Unix epoch seconds after which the binding is gone."""
    call_id: str
    """Call-ID of the REGISTER that created or refreshed it (§10.3 step 7)."""
    cseq: int
    """CSeq number of that REGISTER."""
    source: str
    """Transport and address it came from, e.g. ``udp:192.0.2.10:5060``."""
    user_agent: str | None = None
    """The phone's User-Agent header, if it sent one."""


@dataclass(frozen=True)
class CdrRow:
    """One call detail record, written when the call ends."""

    call_id: str
    """The edge's own call id (a UUID string)."""
    a_call_id: str
    """SIP Call-ID of the caller's leg."""
    b_call_id: str | None
    """SIP Call-ID of the callee's leg, None if no outgoing leg was created."""
    from_uri: str
    """The caller's From URI."""
    from_number: str
    """The caller's number (From user part)."""
    to_number: str
    """The dialled number."""
    destination: str | None
    """Where routing sent the call, e.g. ``extension:1001`` or ``trunk:pstn``."""
    start_time: float
    """Unix epoch seconds the INVITE arrived."""
    answer_time: float | None
    """Unix epoch seconds the call was answered, None if unanswered."""
    end_time: float
    """Unix epoch seconds the call ended."""
    disposition: str
    """One of ``DISPOSITIONS``."""
    hangup_side: str
    """One of ``HANGUP_SIDES``: who ended the call."""
    sip_status: int
    """Final SIP status of the call (200, 486, 487, 408, 404, 480...)."""
    sip_reason: str
    """Reason phrase that went with ``sip_status``."""
    a_rtp_port: int | None = None
    """The edge's RTP port for the caller's leg, None without media."""
    b_rtp_port: int | None = None
    """The edge's RTP port for the callee's leg, None without media."""
    packets_a_to_b: int = 0
    """RTP packets relayed from caller to callee."""
    packets_b_to_a: int = 0
    """RTP packets relayed from callee to caller."""
    cause: str = "normal"
    """Why the call ended, beyond the SIP status: ``normal``, ``rtp-timeout``,
    ``no-answer``, ``cancelled``, ``busy``, ``rejected``, ``no-ack``, ``shutdown``..."""
    a_lost: int = 0
    """RTP packets lost on the caller's leg (RFC 3550 sequence gaps)."""
    b_lost: int = 0
    """RTP packets lost on the callee's leg."""
    a_jitter_ms: float | None = None
    """Interarrival jitter of the caller's stream (RFC 3550 estimator), ms."""
    b_jitter_ms: float | None = None
    """Interarrival jitter of the callee's stream, ms."""
    mos: float | None = None
    """Estimated MOS (simplified ITU-T G.107 E-model), the worse of the two legs."""
    recording: str | None = None
    """Path of the call's stereo WAV recording, None when not recorded."""
    dtmf: str = ""
    """The digits the caller sent during the call (RFC 4733 or in-band), in order."""
    survey_score: int | None = None
    """The caller's post-call survey answer, None when not asked or not answered."""
    transfers: int = 0
    """How often the call was transferred (REFER)."""
    queue: str | None = None
    """The ACD queue the call waited in last (or the callback's queue), None if none."""

    def __post_init__(self) -> None:
        if self.disposition not in DISPOSITIONS:
            raise ValueError(f"disposition {self.disposition!r} is not one of {DISPOSITIONS}")
        if self.hangup_side not in HANGUP_SIDES:
            raise ValueError(f"hangup_side {self.hangup_side!r} is not one of {HANGUP_SIDES}")
        if not 100 <= self.sip_status <= 699:
            raise ValueError(f"sip_status {self.sip_status} is not a SIP status code")


@dataclass(frozen=True)
class RecordingRow:
    """One call recording in the recordings index."""

    call_id: str
    """The edge's call id (the CDR's ``call_id``); also the file's name."""
    path: str
    """Where the stereo WAV is (caller left, callee right)."""
    started_at: float
    """Unix epoch seconds recording started (the answer)."""
    duration_s: float
    """Length of the audio, seconds."""
    bytes: int
    """Size of the file."""


@dataclass(frozen=True)
class TaskRow:
    """A follow-up for a person: e.g. call back a caller who rated the service low."""

    kind: str
    """``survey-followup`` ..."""
    call_id: str
    """The call that gave rise to it (the CDR's ``call_id``)."""
    caller: str
    """Who to call back."""
    detail: str
    """What happened, for the supervisor (e.g. ``survey score 1``)."""
    created_at: float
    """Unix epoch seconds."""
    due_at: float
    """When it must be done by (a low survey score: within 24 h)."""


@dataclass(frozen=True)
class OutboxRecord:
    """One record waiting in the outbox for the fleet's ack."""

    seq: int
    """Per-site sequence number: gapless, increasing, never reused."""
    kind: str
    """One of ``OUTBOX_KINDS``."""
    at: float
    """Unix epoch seconds the source row was written."""
    body: dict[str, Any]
    """The source row as JSON (a CDR's fields, an interval row...)."""


@dataclass(frozen=True)
class AppliedConfig:
    """The site config last applied, which a restart comes back on."""

    version: int | None
    """The fleet's config version; None when it came from elsewhere (the local API)."""
    origin: str
    """Who applied it: ``fleet``, ``api``..."""
    config: dict[str, Any]
    """The SiteConfig as a mapping."""
    applied_at: float
    """Unix epoch seconds."""


async def _outbox_add(db: aiosqlite.Connection, items: list[tuple[str, float, dict[str, Any]]]) -> int:
    """Queue ``(kind, at, body)`` items for the fleet; call inside the source rows'
    transaction, so both commit or neither does. Returns the bytes of bodies added."""
    if not items:
        return 0
    async with db.execute("SELECT last FROM outbox_seq WHERE id = 1") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    last = int(row[0])
    rows = [(last + i, kind, at, json.dumps(body, separators=(",", ":"))) for i, (kind, at, body) in enumerate(items, 1)]
    await db.executemany("INSERT INTO outbox (seq, kind, at, body) VALUES (?, ?, ?, ?)", rows)
    await db.execute("UPDATE outbox_seq SET last = ? WHERE id = 1", (last + len(items),))
    return sum(len(r[3]) for r in rows)


_RECORDING_COLUMNS = ", ".join(f.name for f in fields(RecordingRow))
_TASK_COLUMNS = ", ".join(f.name for f in fields(TaskRow))
_BINDING_COLUMNS = ", ".join(f.name for f in fields(BindingRow))
_CDR_COLUMNS = ", ".join(f.name for f in fields(CdrRow))


def _placeholders(row_type: type) -> str:
    return ", ".join("?" for _ in fields(row_type))


TOMBSTONE = {"shed": True}
"""What a shed record's body becomes: its seq and kind stay, so the fleet's
contiguous-ack and the order survive; only the content is given up."""
_TOMBSTONE_JSON = json.dumps(TOMBSTONE, separators=(",", ":"))


@dataclass
class OutboxQuota:
    """How much the outbox may hold while the fleet is unreachable, and what goes first.

    Metrics are never queued (they are published live and dropped when offline): they
    are shed first by design. Then, oldest first within each kind, the kinds in
    ``shed_order``; CDRs only if listed there. Shedding raises an ``outbox-shedding``
    alarm event (once), cleared when the backlog is back under ``clear_at`` of the quota."""

    max_bytes: int
    shed_order: tuple[str, ...] = ("event", "interval", "voicemail", "task")
    clear_at: float = 0.8


class EdgeStore:
    """The edge's database. Open with ``await EdgeStore.open(path)``."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self._lock = asyncio.Lock()
        self.outbox_written = asyncio.Event()
        """Set after a commit that added outbox rows (the drain waits on it)."""
        self.quota: OutboxQuota | None = None
        self.outbox_bytes = 0
        """Bytes of record bodies in the outbox (kept up to date; summed at open)."""
        self.shedding = False
        self.shed_records = 0
        """Records shed since the store was opened."""

    @classmethod
    async def open(cls, path: str | Path) -> EdgeStore:
        """Open (creating if needed) the database at ``path`` and migrate it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; we BEGIN/COMMIT explicitly.
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            async with db.execute("PRAGMA journal_mode=WAL") as cursor:
                row = await cursor.fetchone()
            mode = row[0] if row else None
            if mode != "wal":
                raise StoreError(f"{path}: cannot use WAL journal (got {mode!r})")
            # WAL + synchronous=NORMAL: a commit survives the process being killed (the
            # WAL is in the OS page cache); on power loss the last few transactions may
            # be lost, never corrupted. Revisited in the survivable-mode issue.
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            store = cls(db, path)
            await store._migrate()
            store.outbox_bytes = await store._outbox_size()
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    async def schema_version(self) -> int:
        """``PRAGMA user_version``: how many ``MIGRATIONS`` are applied."""
        return int(await self._pragma("user_version"))

    async def journal_mode(self) -> str:
        return str(await self._pragma("journal_mode"))

    async def _pragma(self, name: str) -> Any:
        async with self._lock, self._db.execute(f"PRAGMA {name}") as cursor:
            row = await cursor.fetchone()
        assert row is not None
        return row[0]

    @asynccontextmanager
    async def _outbox_transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A transaction that writes outbox rows: wakes the drain once it committed;
        sheds within the same transaction when the quota is passed."""
        try:
            async with self._transaction() as db:
                yield db
                if self.quota is not None and self.outbox_bytes > self.quota.max_bytes:
                    await self._shed(db, self.quota)
        except BaseException:
            self.outbox_bytes = await self._outbox_size()  # a rollback: count again
            raise
        self.outbox_written.set()

    async def _outbox_size(self) -> int:
        async with self._db.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM outbox") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def _shed(self, db: aiosqlite.Connection, quota: OutboxQuota) -> None:
        """Raise the shedding alarm (the first time), then turn the oldest records of the
        sheddable kinds into tombstones until the outbox fits (or nothing sheddable is left)."""
        if not self.shedding:  # first, so the alarm's own bytes are counted in what fits
            self.shedding = True
            await self._alarm_event(db, True, f"outbox over {quota.max_bytes} bytes: shedding {', '.join(quota.shed_order)}")
        shed = 0
        for kind in quota.shed_order:
            while self.outbox_bytes > quota.max_bytes:
                async with db.execute(
                    "SELECT seq, LENGTH(body) FROM outbox WHERE kind = ? AND body != ? ORDER BY seq LIMIT 500",
                    (kind, _TOMBSTONE_JSON),
                ) as cursor:
                    rows = list(await cursor.fetchall())
                if not rows:
                    break
                chosen = []  # the oldest, just enough of them
                for seq, length in rows:
                    chosen.append(seq)
                    self.outbox_bytes -= int(length) - len(_TOMBSTONE_JSON)
                    if self.outbox_bytes <= quota.max_bytes:
                        break
                await db.executemany("UPDATE outbox SET body = ? WHERE seq = ?", [(_TOMBSTONE_JSON, q) for q in chosen])
                shed += len(chosen)
        self.shed_records += shed

    async def _alarm_event(self, db: aiosqlite.Connection, active: bool, detail: str) -> None:
        body = {"type": "alarm", "alarm": "outbox-shedding", "subject": "outbox", "severity": "major",
                "active": active, "detail": detail, "shed_records": self.shed_records}  # fmt: skip
        self.outbox_bytes += await _outbox_add(db, [("event", time.time(), body)])

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front, so a concurrent writer in
        # another process waits (busy_timeout) instead of failing half-way through.
        # Cancellation-safe: aiosqlite runs statements in order on its thread even when
        # the awaiting task is cancelled, so a cancelled BEGIN (or body) still opened the
        # transaction: the ROLLBACK queued behind it, shielded, closes it; a cancelled
        # COMMIT still commits. Otherwise the connection stays "within a transaction".
        async with self._lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                yield self._db
            except BaseException:
                with contextlib.suppress(sqlite3.OperationalError):  # no transaction open
                    await asyncio.shield(self._db.execute("ROLLBACK"))
                raise
            await self._db.execute("COMMIT")

    async def _migrate(self) -> None:
        async with self._transaction() as db:
            # Re-read inside the write lock: another process may have just migrated.
            async with db.execute("PRAGMA user_version") as cursor:
                row = await cursor.fetchone()
            current = int(row[0]) if row else 0
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path}: schema version {current} is newer than this software "
                    f"({len(MIGRATIONS)})"
                )
            for version, statements in enumerate(MIGRATIONS[current:], start=current + 1):
                for statement in statements:
                    await db.execute(statement)
                # user_version lives in the database header, so it commits atomically
                # with the migration's DDL.
                await db.execute(f"PRAGMA user_version={version}")

    # -- registrar bindings (RFC 3261 §10) -----------------------------------------
    async def upsert_binding(self, b: BindingRow) -> None:
        """Insert or refresh the binding of ``b.contact`` to ``b.aor``."""
        async with self._transaction() as db:
            await db.execute(
                f"INSERT INTO bindings ({_BINDING_COLUMNS}) "
                f"VALUES ({_placeholders(BindingRow)}) "
                "ON CONFLICT (aor, contact) DO UPDATE SET "
                "expires_at=excluded.expires_at, call_id=excluded.call_id, "
                "cseq=excluded.cseq, source=excluded.source, user_agent=excluded.user_agent",
                astuple(b),
            )

    async def delete_binding(self, aor: str, contact: str) -> None:
        async with self._transaction() as db:
            await db.execute("DELETE FROM bindings WHERE aor=? AND contact=?", (aor, contact))

    async def delete_bindings(self, aor: str) -> None:
        """Remove every binding of an AOR (REGISTER with ``Contact: *``, §10.2.2)."""
        async with self._transaction() as db:
            await db.execute("DELETE FROM bindings WHERE aor=?", (aor,))

    async def load_bindings(self, now: float) -> list[BindingRow]:
        """Delete bindings expired at ``now`` (unix epoch) and return the rest."""
        async with self._transaction() as db:
            await db.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))
            async with db.execute(
                f"SELECT {_BINDING_COLUMNS} FROM bindings ORDER BY aor, contact"
            ) as cursor:
                rows = await cursor.fetchall()
        return [BindingRow(*row) for row in rows]

    # -- call detail records -------------------------------------------------------
    async def insert_cdr(self, cdr: CdrRow) -> int:
        """Store a finished call's record; return its row id (increasing)."""
        try:
            async with self._outbox_transaction() as db:
                cursor = await db.execute(
                    f"INSERT INTO cdrs ({_CDR_COLUMNS}) VALUES ({_placeholders(CdrRow)})",
                    astuple(cdr),
                )
                row_id = cursor.lastrowid
                self.outbox_bytes += await _outbox_add(db, [("cdr", cdr.end_time, asdict(cdr))])
        except sqlite3.IntegrityError as exc:
            if "cdrs.call_id" in str(exc):
                raise StoreError(f"a CDR for call {cdr.call_id} is already stored") from exc
            raise
        assert row_id is not None
        return row_id

    async def insert_cdrs(self, cdrs: list[CdrRow]) -> None:
        """Store many records in one transaction (the daemon batches what piles up
        under load: one commit per call cost 15 % of its CPU at 300 calls/s)."""
        try:
            async with self._outbox_transaction() as db:
                await db.executemany(
                    f"INSERT INTO cdrs ({_CDR_COLUMNS}) VALUES ({_placeholders(CdrRow)})",
                    [astuple(cdr) for cdr in cdrs],
                )
                self.outbox_bytes += await _outbox_add(db, [("cdr", cdr.end_time, asdict(cdr)) for cdr in cdrs])
        except sqlite3.IntegrityError as exc:
            if "cdrs.call_id" in str(exc):
                raise StoreError(f"a CDR in this batch is already stored: {exc}") from exc
            raise

    async def insert_intervals(self, rows: list[Any]) -> None:
        """ACD interval rows (``acd.stats.QueueIntervalRow`` / ``AgentIntervalRow``),
        kept as JSON: the fleet ingests them as they are."""
        values = []
        records: list[tuple[str, float, dict[str, Any]]] = []
        for row in rows:
            data = asdict(row)
            kind, name = ("queue", data["queue"]) if "queue" in data else ("agent", data["agent"])
            values.append((row.start, row.end, kind, name, json.dumps(data)))
            records.append(("interval", row.end, {"kind": kind, "name": name, **data}))
        async with self._outbox_transaction() as db:
            await db.executemany(
                "INSERT OR REPLACE INTO interval_stats (start, end, kind, name, data) VALUES (?, ?, ?, ?, ?)",
                values,
            )
            self.outbox_bytes += await _outbox_add(db, records)

    async def list_intervals(self, kind: str) -> list[dict[str, Any]]:
        async with self._lock, self._db.execute(
            "SELECT data FROM interval_stats WHERE kind=? ORDER BY start, name", (kind,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [json.loads(r[0]) for r in rows]

    async def insert_voicemail(self, call_id: str, mailbox: str, caller: str, path: str,
                               received_at: float, duration_s: float) -> None:  # fmt: skip
        async with self._outbox_transaction() as db:
            await db.execute(
                "INSERT OR REPLACE INTO voicemails (call_id, mailbox, caller, path, received_at, duration_s) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (call_id, mailbox, caller, path, received_at, duration_s),
            )
            body = {"call_id": call_id, "mailbox": mailbox, "caller": caller, "path": path,
                    "received_at": received_at, "duration_s": duration_s}  # fmt: skip
            self.outbox_bytes += await _outbox_add(db, [("voicemail", received_at, body)])

    async def insert_task(self, task: TaskRow) -> None:
        async with self._outbox_transaction() as db:
            cursor = await db.execute(
                f"INSERT INTO tasks ({_TASK_COLUMNS}) VALUES ({_placeholders(TaskRow)})", astuple(task)
            )
            self.outbox_bytes += await _outbox_add(db, [("task", task.created_at, {"id": cursor.lastrowid, **asdict(task)})])

    async def insert_event(self, at: float, body: dict[str, Any]) -> None:
        """An event for the fleet (mode change, trunk down, alarm...): it has no table
        of its own, the outbox is its source row. ``body`` should carry a ``type``."""
        async with self._outbox_transaction() as db:
            self.outbox_bytes += await _outbox_add(db, [("event", at, body)])

    async def list_tasks(self, status: str = "open") -> list[TaskRow]:
        async with self._lock, self._db.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE status=? ORDER BY id", (status,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [TaskRow(*row) for row in rows]

    async def insert_recording(self, rec: RecordingRow) -> None:
        async with self._transaction() as db:
            await db.execute(
                f"INSERT OR REPLACE INTO recordings ({_RECORDING_COLUMNS}) "
                f"VALUES ({_placeholders(RecordingRow)})",
                astuple(rec),
            )

    async def list_recordings(self, limit: int = 100) -> list[RecordingRow]:
        async with self._lock, self._db.execute(
            f"SELECT {_RECORDING_COLUMNS} FROM recordings ORDER BY started_at DESC LIMIT ?", (limit,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [RecordingRow(*row) for row in rows]

    async def list_cdrs(self, limit: int = 100) -> list[CdrRow]:
        """The most recently stored CDRs, newest first."""
        async with (
            self._lock,
            self._db.execute(
                f"SELECT {_CDR_COLUMNS} FROM cdrs ORDER BY id DESC LIMIT ?", (limit,)
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return [CdrRow(*row) for row in rows]

    # -- the outbox to the fleet ---------------------------------------------------------
    async def outbox_after(self, seq: int, limit: int) -> list[OutboxRecord]:
        """Up to ``limit`` records with a sequence number above ``seq``, in order."""
        async with self._lock, self._db.execute(
            "SELECT seq, kind, at, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        ) as cursor:
            rows = await cursor.fetchall()
        return [OutboxRecord(int(r[0]), str(r[1]), float(r[2]), json.loads(r[3])) for r in rows]

    async def outbox_delete_upto(self, seq: int) -> int:
        """Delete the records the fleet acknowledged (``seq`` and below); how many went."""
        async with self._transaction() as db:
            async with db.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM outbox WHERE seq <= ?", (seq,)) as c:
                row = await c.fetchone()
            cursor = await db.execute("DELETE FROM outbox WHERE seq <= ?", (seq,))
            self.outbox_bytes -= int(row[0]) if row else 0
            quota = self.quota
            if self.shedding and quota is not None and self.outbox_bytes < quota.clear_at * quota.max_bytes:
                self.shedding = False
                await self._alarm_event(db, False, "the outbox fits again")
            return int(cursor.rowcount)

    async def outbox_backlog(self) -> int:
        """Records not yet acknowledged by the fleet."""
        async with self._lock, self._db.execute("SELECT count(*) FROM outbox") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def outbox_last_seq(self) -> int:
        """The last sequence number handed out (0: none yet)."""
        async with self._lock, self._db.execute("SELECT last FROM outbox_seq WHERE id = 1") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def sync(self) -> None:
        """Make every commit so far durable against power loss: fsync the WAL (what
        ``synchronous=FULL`` would do on every commit). The drain calls it before it
        publishes, so a record the fleet has seen is never lost and its seq reused."""
        wal = Path(f"{self.path}-wal")

        def fsync() -> None:
            try:
                fd = os.open(wal, os.O_RDONLY)
            except FileNotFoundError:  # checkpointed and removed: the main file is synced
                return
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        await asyncio.to_thread(fsync)

    async def integrity_check(self) -> list[str]:
        """``PRAGMA integrity_check``: ``["ok"]`` or the problems SQLite found."""
        async with self._lock, self._db.execute("PRAGMA integrity_check") as cursor:
            rows = await cursor.fetchall()
        return [str(r[0]) for r in rows]

    # -- the applied site config ---------------------------------------------------------
    async def save_applied_config(self, config: AppliedConfig) -> None:
        async with self._transaction() as db:
            await db.execute(
                "INSERT OR REPLACE INTO applied_config (id, version, origin, config, applied_at) "
                "VALUES (1, ?, ?, ?, ?)",
                (config.version, config.origin, json.dumps(config.config), config.applied_at),
            )

    async def load_applied_config(self) -> AppliedConfig | None:
        async with self._lock, self._db.execute(
            "SELECT version, origin, config, applied_at FROM applied_config WHERE id = 1"
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        return AppliedConfig(row[0], str(row[1]), json.loads(row[2]), float(row[3]))

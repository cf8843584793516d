"""One async engine for either database, and the dialect-specific insert it needs.

SQLite (``sqlite+aiosqlite:///path``, the default) gets three settings that make it a
correct multi-process store: WAL (readers do not block the writer), a busy timeout
(the other worker's write lock is waited for, not failed on), and ``BEGIN IMMEDIATE``
for every transaction. The last is the SQLAlchemy-documented recipe for pysqlite /
aiosqlite: the driver's own deferred ``BEGIN`` takes the write lock only at the first
write, so two workers that both read first (the ack watermark) and then write would
deadlock into ``database is locked``; taking the lock at ``BEGIN`` serialises them.

PostgreSQL (``postgresql+asyncpg://...``) needs nothing special: per-site row locks
(``SELECT ... FOR UPDATE``) in the ingest path do the serialising there.
"""

from __future__ import annotations

from typing import Any

import pydantic_core
from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

SQLITE_BUSY_TIMEOUT_S = 30.0


def _dumps(value: Any) -> str:
    """JSON columns' encoder: compact, UTF-8 kept as is (what ``json.dumps(separators=
    (",", ":"), ensure_ascii=False)`` writes), by pydantic-core's serializer, which is
    about ten times faster than the stdlib's for the metrics the ingest writes."""
    return pydantic_core.to_json(value).decode()


def make_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    """An engine for ``sqlite+aiosqlite://`` or ``postgresql+asyncpg://`` URLs."""
    if url.startswith("sqlite"):
        if not url.startswith("sqlite+aiosqlite"):
            raise ValueError(f"use sqlite+aiosqlite:///path for SQLite, not {url!r}")
        engine = create_async_engine(
            url, json_serializer=_dumps, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}
        )
        _sqlite_recipe(engine)
        return engine
    if url.startswith("postgresql"):
        if not url.startswith("postgresql+asyncpg"):
            raise ValueError(f"use postgresql+asyncpg://... for PostgreSQL, not {url!r}")
        return create_async_engine(url, json_serializer=_dumps, pool_size=pool_size, max_overflow=2)
    raise ValueError(f"unsupported database URL {url!r} (sqlite+aiosqlite or postgresql+asyncpg)")


def _sqlite_recipe(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # the driver must not emit its own BEGIN; ours comes in _on_begin
        dbapi_conn.isolation_level = None  # type: ignore[attr-defined]
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL, not NORMAL: an ack tells the edge it may delete, so a commit must survive power loss
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def insert_ignore(dialect_name: str, table: Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the dialect."""
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def upsert(dialect_name: str, table: Table, keys: list[str], update: list[str]) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE SET col = excluded.col`` for ``update``."""
    stmt = (postgresql.insert if dialect_name == "postgresql" else sqlite.insert)(table)
    return stmt.on_conflict_do_update(
        index_elements=keys, set_={name: stmt.excluded[name] for name in update}
    )


def dialect_insert(dialect_name: str, table: Table) -> Any:
    """The dialect's ``insert`` construct, for callers that build their own ON CONFLICT."""
    return (postgresql.insert if dialect_name == "postgresql" else sqlite.insert)(table)

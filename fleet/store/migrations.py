"""Schema migrations: a ``schema_version`` table and ordered, numbered functions.

Why not Alembic: the fleet has one schema owned by one package, shipped inside the
product, migrated by the service itself at start (no separate deploy step, no
autogenerate). What Alembic would add over that — a revision graph, branches, offline
SQL scripts — is not needed here, and its environment files would be one more thing to
keep in step. The scheme instead:

* ``MIGRATIONS`` is a list of ``(number, name, function)`` in order. A function takes a
  synchronous SQLAlchemy ``Connection`` and changes the schema with dialect-neutral
  SQLAlchemy constructs, so one function serves SQLite and PostgreSQL.
* A released migration never changes; a schema change appends the next number.
  ``schema.py`` describes the latest result, and ``tests/unit/test_fleet_store.py``
  checks that migrating an empty database yields exactly its columns.
* ``migrate()`` runs all pending functions in ONE transaction together with the
  ``schema_version`` rows (PostgreSQL and SQLite both have transactional DDL), so a
  crash leaves the old version intact. Two processes starting at once are serialised:
  PostgreSQL by a transaction-scoped advisory lock, SQLite by ``BEGIN IMMEDIATE``
  (see ``engine.py``); the second one then finds nothing to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from fleet.store import schema

_ADVISORY_LOCK_ID = 0x42_4C_46_4C  # "BLFL": serialises fleet migrations on PostgreSQL


def _v1_initial(conn: Connection) -> None:
    """Every table of the first release. Created from ``schema.py`` tables, which is
    sound only while those tables are unchanged since v1; the first change to one of
    them must come with a v2 that alters it (and v1 then keeps a frozen copy)."""
    tables = [t for t in schema.metadata.sorted_tables if t.name != "schema_version"]
    schema.metadata.create_all(conn, tables=tables)


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "initial: sites, records, cdrs, metrics, configs, alarms, commands, audit", _v1_initial),
]

LATEST = MIGRATIONS[-1][0]


def _migrate_sync(conn: Connection) -> int:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
    if not inspect(conn).has_table("schema_version"):
        schema.schema_version.create(conn)
    current = conn.execute(select(func.max(schema.schema_version.c.version))).scalar() or 0
    if current > LATEST:
        raise RuntimeError(f"database schema v{current} is newer than this fleet (v{LATEST})")
    for number, name, step in MIGRATIONS:
        if number > current:
            step(conn)
            conn.execute(
                schema.schema_version.insert().values(version=number, name=name, applied_at=time.time())
            )
    return LATEST


async def migrate(engine: AsyncEngine) -> int:
    """Bring the database to ``LATEST``; return the version it is at."""
    async with engine.begin() as conn:
        return await conn.run_sync(_migrate_sync)


async def current_version(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        has = await conn.run_sync(lambda c: inspect(c).has_table("schema_version"))
        if not has:
            return 0
        return (await conn.execute(select(func.max(schema.schema_version.c.version)))).scalar() or 0

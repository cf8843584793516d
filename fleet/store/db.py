"""``FleetStore``: the fleet's database, opened from a URL, migrated, read and written.

Reads are the methods of :class:`~fleet.store.queries.StoreQueries`; writes are the
worker's ``ingest`` (one transaction per batch, retried on a deadlock or a busy SQLite)
and the operator actions here (site groups, alarm acknowledgement), each of which
lands in the audit log in the same transaction. Configuration writes live in
``fleet/configs.py``, which uses :meth:`FleetStore.transaction` for the same guarantee.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fleet import alarms as alarm_rules
from fleet.store import schema
from fleet.store.engine import insert_ignore, make_engine
from fleet.store.ingest import IngestBatch, IngestResult, ingest
from fleet.store.migrations import migrate
from fleet.store.queries import StoreQueries

log = logging.getLogger(__name__)

DEFAULT_URL = "sqlite+aiosqlite:///var/fleet.db"
_RETRIES = 5


def _retryable(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return any(k in text for k in ("deadlock", "database is locked", "could not serialize"))


class FleetStore(StoreQueries):
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._known_sites: set[str] = set()
        """Site ids whose ``sites`` row a committed ingest of ours has made sure of."""

    @classmethod
    async def open(cls, url: str = DEFAULT_URL, *, migrate_schema: bool = True, pool_size: int = 5) -> FleetStore:
        """Connect and (by default) migrate to the latest schema."""
        engine = make_engine(url, pool_size=pool_size)
        if migrate_schema:
            await migrate(engine)
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    # -- the worker's write path ---------------------------------------------------

    async def ingest(self, batch: IngestBatch) -> IngestResult:
        """Store a batch in one transaction; see ``fleet/store/ingest.py``."""
        for attempt in range(_RETRIES):
            try:
                async with self.engine.begin() as conn:
                    result = await ingest(conn, batch, self._known_sites)
                # remembered only once committed: a rolled-back insert made no row
                self._known_sites.update(result.new_sites)
                return result
            except DBAPIError as exc:
                if attempt + 1 == _RETRIES or not _retryable(exc):
                    raise
                log.warning("ingest retried after %s", exc.orig)
                await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    # -- operator actions ----------------------------------------------------------

    async def audit(self, conn: AsyncConnection, actor: str, action: str, target: str = "",
                    detail: dict[str, Any] | None = None, now: float | None = None) -> None:
        """Append to the audit log inside ``conn``'s transaction."""
        await conn.execute(
            schema.audit_log.insert().values(
                at=time.time() if now is None else now, actor=actor, action=action, target=target,
                detail=detail or {},
            )
        )

    async def set_site_groups(self, site_id: str, *, actor: str, region: str | None = None,
                              site_type: str | None = None) -> None:
        """Put a site in a region and/or site type (creating the site row if needed).
        The config overlays follow on the next config push (``ConfigStore.recompose``)."""
        s = schema.sites
        values: dict[str, Any] = {}
        if region is not None:
            values["region"] = region
        if site_type is not None:
            values["site_type"] = site_type
        async with self.transaction() as conn:
            await conn.execute(insert_ignore(self.dialect, s).values(id=site_id, created_at=time.time()))
            if values:
                await conn.execute(update(s).where(s.c.id == site_id).values(**values))
            await self.audit(conn, actor, "site.groups", site_id, values)

    async def ack_alarm(self, alarm_id: int, operator: str) -> bool:
        """Acknowledge an alarm; False when it does not exist or was acknowledged already."""
        now = time.time()
        async with self.transaction() as conn:
            done = await alarm_rules.acknowledge(conn, alarm_id, operator, now)
            if done:
                await self.audit(conn, operator, "alarm.ack", str(alarm_id), now=now)
        return done

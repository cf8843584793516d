"""Cloud-tier sync: an incremental, idempotent export of the fleet store to a cloud store.

What moves: CDRs, interval rows and tasks (outbox records of those kinds) and the alarm
history, into a database of its own (SQLite file by default, PostgreSQL by URL) whose
tables are defined here (``cloud`` metadata, created at start if missing).

Exactly once, without a distributed transaction:

* Records are immutable and keyed by ``(site_id, seq)``. Per site the exporter copies
  ``watermark < seq <= sites.contiguous_seq``: below the fleet's ack watermark every
  record is stored, so nothing can still arrive behind the exporter's back.
* Alarms change (count, ack, clear). Their stream's watermark is the latest change time
  exported, ``max(raised_at, last_seen_at, acked_at, cleared_at)``; each run re-reads
  ``alarm_overlap_s`` before it, which covers a transaction that was in flight (or a
  worker's clock a little behind) when the previous run read.
* Every batch is ONE destination transaction: upsert the rows on their natural key and
  the stream's watermark (kept in the destination, ``sync_watermarks``). A crash before
  the commit loses the whole batch and the next run repeats it; a repeat (or a lost
  watermark) rewrites identical rows. Nothing is lost or duplicated.

Connection errors (a restarting PostgreSQL, a network cut, a locked SQLite) are retried
with exponential backoff; after ``retries`` the run fails and ``run_forever`` tries
again at the next tick, from the watermark.

Masking: every caller or dialled number leaving the fleet goes through
:class:`MaskPolicy` (CDR ``from_number``, ``to_number``, the user part of ``from_uri``,
``dtmf``, the projected ``caller`` / ``callee``, a task's ``caller``, and any other
top-level string that looks like a phone number).

Run: ``python -m fleet.cloudsync --from URL --to URL [--once | --every S]``, or
:func:`run_forever` / :class:`CloudSync` from the fleet service.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    func,
    or_,
    select,
)
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from fleet.store import schema
from fleet.store.engine import make_engine, upsert
from fleet.store.schema import Json

log = logging.getLogger(__name__)

# -- masking ----------------------------------------------------------------------------

_PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]{4,}[0-9]$")


@dataclass(frozen=True)
class MaskPolicy:
    """How a number is shown outside the fleet.

    ``keep``: digits other than the first ``keep_first`` and the last ``keep_last`` become
    ``x`` (``+442079461234`` -> ``+4420xxxx1234``), but at least ``min_hidden`` digits
    are always hidden (the last ones kept win), so a short number is never shown whole.
    ``hash``: ``h:`` and 16 hex digits of HMAC-SHA256(salt, number) — the same number
    gives the same token, so calls of one caller still group. ``drop``: empty string.
    """

    mode: Literal["keep", "hash", "drop"] = "keep"
    keep_last: int = 4
    keep_first: int = 4
    min_hidden: int = 4
    salt: str = ""

    def __post_init__(self) -> None:
        if min(self.keep_last, self.keep_first) < 0 or self.min_hidden < 1:
            raise ValueError("keep_last and keep_first must not be negative, min_hidden at least 1")
        if self.mode == "hash" and not self.salt:
            raise ValueError("hash masking needs a salt")

    def number(self, value: str) -> str:
        if not value:
            return value
        if self.mode == "drop":
            return ""
        if self.mode == "hash":
            return "h:" + hmac.new(self.salt.encode(), value.encode(), hashlib.sha256).hexdigest()[:16]
        digits = sum(c.isdigit() for c in value)
        hidden = min(digits, max(self.min_hidden, digits - self.keep_first - self.keep_last))
        last = min(self.keep_last, digits - hidden)
        first = digits - hidden - last
        out, i = [], 0
        for c in value:
            if c.isdigit():
                out.append(c if i < first or i >= first + hidden else "x")
                i += 1
            else:
                out.append(c)
        return "".join(out)

    def uri(self, value: str) -> str:
        """A SIP URI with its user part masked (``sip:+4420...@host``); the host stays."""
        scheme, sep, rest = value.partition(":")
        if not sep or scheme not in ("sip", "sips", "tel"):
            return self.number(value)
        user, at, host = rest.partition("@")
        return f"{scheme}:{self.number(user)}{at}{host}"

    def body(self, body: dict[str, Any]) -> dict[str, Any]:
        out = dict(body)
        for key, value in body.items():
            if not isinstance(value, str):
                continue
            if key in NUMBER_FIELDS or _PHONE.match(value):
                out[key] = self.number(value)
            elif key in URI_FIELDS:
                out[key] = self.uri(value)
        return out

    @classmethod
    def parse(cls, spec: str, *, salt: str = "", keep_first: int = 4) -> MaskPolicy:
        """``keep:N`` (the last N digits, and ``keep_first``), ``hash`` or ``drop``."""
        mode, _, n = spec.partition(":")
        if mode == "keep":
            return cls("keep", keep_last=int(n or 4), keep_first=keep_first)
        if mode in ("hash", "drop") and not n:
            return cls(mode, salt=salt)  # type: ignore[arg-type]
        raise ValueError(f"mask must be keep:N, hash or drop, not {spec!r}")


NUMBER_FIELDS = frozenset({"from_number", "to_number", "caller", "callee", "dtmf", "number"})
URI_FIELDS = frozenset({"from_uri", "to_uri", "contact"})

# -- the cloud store's tables -----------------------------------------------------------

cloud = MetaData()


def _key() -> list[Column[Any]]:
    return [Column("site_id", String(64), primary_key=True),
            Column("seq", BigInteger, primary_key=True, autoincrement=False)]


cloud_cdrs = Table(
    "cdrs", cloud, *_key(),
    Column("call_id", String(128), nullable=False), Column("start_time", Float),
    Column("answer_time", Float), Column("end_time", Float),
    Column("caller", String(64), nullable=False), Column("callee", String(64), nullable=False),
    Column("queue", String(64), nullable=False), Column("disposition", String(16), nullable=False),
    Column("transfers", Integer), Column("survey_score", Integer),
    Column("body", Json, nullable=False), Column("exported_at", Float, nullable=False),
)
cloud_intervals = Table(
    "intervals", cloud, *_key(),
    Column("kind", String(16), nullable=False), Column("name", String(64), nullable=False),
    Column("start", Float), Column("end", Float),
    Column("body", Json, nullable=False), Column("exported_at", Float, nullable=False),
)
cloud_tasks = Table(
    "tasks", cloud, *_key(),
    Column("kind", String(32), nullable=False), Column("call_id", String(128), nullable=False),
    Column("caller", String(64), nullable=False), Column("detail", Text, nullable=False),
    Column("created_at", Float), Column("due_at", Float),
    Column("body", Json, nullable=False), Column("exported_at", Float, nullable=False),
)
cloud_alarms = Table(
    "alarms", cloud,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    *[Column(c.name, c.type, nullable=c.nullable) for c in schema.alarms.columns if c.name != "id"],
    Column("exported_at", Float, nullable=False),
)
sync_watermarks = Table(
    "sync_watermarks", cloud,
    Column("stream", String(100), primary_key=True),
    # ``records:{site}`` (seq) or ``alarms`` (change time)
    Column("seq", BigInteger, nullable=False, server_default="0"),
    Column("at", Float, nullable=False, server_default="0"),
    Column("updated_at", Float, nullable=False),
)

KINDS = ("cdr", "interval", "task")

# -- the exporter -----------------------------------------------------------------------

FaultHook = Callable[[str], Awaitable[None] | None]
"""Test seam: called with the stream name inside each destination transaction, after
the batch's rows and watermark are written and before the commit."""


@dataclass
class SyncSettings:
    batch_size: int = 500
    mask: MaskPolicy = field(default_factory=MaskPolicy)
    retries: int = 5
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    alarm_overlap_s: float = 300.0


@dataclass
class SyncResult:
    exported: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*KINDS, "alarm"), 0))
    batches: int = 0
    retries: int = 0


_TRANSIENT_TEXT = ("database is locked", "connection", "could not connect", "server closed",
                   "terminating", "timeout", "unable to open", "the database system is")


def _transient(exc: BaseException) -> bool:
    """A lost or refused connection, a busy database: worth another try. A missing table
    or a constraint violation is not."""
    if isinstance(exc, OSError | TimeoutError):  # ConnectionError is an OSError
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, InterfaceError):
            return True
        text = str(exc.orig).lower()
        return any(k in text for k in _TRANSIENT_TEXT)
    return False


class CloudSync:
    """Copies what is new from ``source`` (a fleet store) to ``dest`` (the cloud store)."""

    def __init__(self, source: AsyncEngine, dest: AsyncEngine, settings: SyncSettings | None = None,
                 *, fault_hook: FaultHook | None = None) -> None:
        self.source = source
        self.dest = dest
        self.settings = settings or SyncSettings()
        self.fault_hook = fault_hook
        self._prepared = False

    async def prepare(self) -> None:
        """Create the cloud tables that are missing."""
        async with self.dest.begin() as conn:
            await conn.run_sync(cloud.create_all)
        self._prepared = True

    async def run_once(self) -> SyncResult:
        """Export everything new; returns what moved."""
        result = SyncResult()
        if not self._prepared:
            await self._retrying(result, self.prepare)
        sites = await self._retrying(result, self._sites)
        for site, contiguous in sites:
            while await self._retrying(result, partial(self._records_batch, site, contiguous, result)):
                pass
        cursor: tuple[float, int] | None = await self._retrying(result, self._alarm_cursor)
        while cursor is not None:
            cursor = await self._retrying(result, partial(self._alarms_batch, cursor, result))
        return result

    async def _retrying(self, result: SyncResult, step: Callable[[], Awaitable[Any]]) -> Any:
        delay = self.settings.backoff_min_s
        for attempt in range(self.settings.retries + 1):
            try:
                return await step()
            except Exception as exc:
                if not _transient(exc) or attempt == self.settings.retries:
                    raise
                result.retries += 1
                log.warning("cloud sync: %s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.backoff_max_s)
        raise AssertionError("unreachable")

    async def _sites(self) -> list[tuple[str, int]]:
        s = schema.sites
        async with self.source.connect() as conn:
            rows = await conn.execute(select(s.c.id, s.c.contiguous_seq).order_by(s.c.id))
            return [(r.id, int(r.contiguous_seq)) for r in rows]

    async def _watermark(self, conn: AsyncConnection, stream: str) -> tuple[int, float]:
        w = sync_watermarks
        row = (await conn.execute(select(w.c.seq, w.c.at).where(w.c.stream == stream))).first()
        return (int(row.seq), float(row.at)) if row else (0, 0.0)

    async def _commit_batch(self, conn: AsyncConnection, stream: str, seq: int, at: float) -> None:
        d = conn.dialect.name
        await conn.execute(upsert(d, sync_watermarks, ["stream"], ["seq", "at", "updated_at"]),
                           {"stream": stream, "seq": seq, "at": at, "updated_at": time.time()})
        if self.fault_hook is not None:
            maybe = self.fault_hook(stream)
            if maybe is not None:
                await maybe

    async def _records_batch(self, site: str, contiguous: int, result: SyncResult) -> bool:
        """Copy one batch of a site's records; True when there may be more."""
        stream = f"records:{site}"
        r = schema.records
        async with self.dest.begin() as dconn:
            done, _ = await self._watermark(dconn, stream)
            if done >= contiguous:
                return False
            async with self.source.connect() as sconn:
                rows = list(await sconn.execute(
                    select(r.c.seq, r.c.kind, r.c.at, r.c.body)
                    .where(r.c.site_id == site, r.c.kind.in_(KINDS), r.c.seq > done, r.c.seq <= contiguous)
                    .order_by(r.c.seq).limit(self.settings.batch_size)
                ))
            full = len(rows) == self.settings.batch_size
            upto = int(rows[-1].seq) if full else contiguous
            now = time.time()
            by_kind: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
            for row in rows:
                by_kind[row.kind].append(_CONVERT[row.kind](site, int(row.seq), row.body, self.settings.mask, now))
            d = dconn.dialect.name
            for kind, table in (("cdr", cloud_cdrs), ("interval", cloud_intervals), ("task", cloud_tasks)):
                if by_kind[kind]:
                    cols = [c.name for c in table.columns if c.name not in ("site_id", "seq")]
                    await dconn.execute(upsert(d, table, ["site_id", "seq"], cols), by_kind[kind])
            await self._commit_batch(dconn, stream, upto, 0.0)
        for kind in KINDS:
            result.exported[kind] += len(by_kind[kind])
        result.batches += 1
        return full

    def _changed_at(self) -> ColumnElement[Any]:
        a = schema.alarms
        parts = [a.c.raised_at, *(func.coalesce(c, a.c.raised_at) for c in (a.c.last_seen_at, a.c.acked_at,
                                                                             a.c.cleared_at))]
        if self.source.dialect.name == "postgresql":
            return func.greatest(*parts)
        return func.max(*parts)  # SQLite's scalar max() of several arguments

    async def _alarm_cursor(self) -> tuple[float, int]:
        """Where this run starts reading alarms: ``alarm_overlap_s`` before the last change exported."""
        async with self.dest.connect() as conn:
            last_id, last_at = await self._watermark(conn, "alarms")
        if self.settings.alarm_overlap_s <= 0:
            return last_at, last_id
        return last_at - self.settings.alarm_overlap_s, -1

    async def _alarms_batch(self, cursor: tuple[float, int], result: SyncResult) -> tuple[float, int] | None:
        """Copy one batch of alarms changed after ``cursor`` (change time, id); the next
        cursor, or None when there are no more."""
        a = schema.alarms
        changed = self._changed_at().label("changed_at")
        at, last_id = cursor
        async with self.dest.begin() as dconn:
            async with self.source.connect() as sconn:
                rows = list(await sconn.execute(
                    select(a, changed)
                    .where(or_(changed > at, and_(changed == at, a.c.id > last_id)))
                    .order_by(changed, a.c.id).limit(self.settings.batch_size)
                ))
            if not rows:
                return None
            now = time.time()
            values = [{**{c.name: getattr(r, c.name) for c in schema.alarms.columns}, "exported_at": now}
                      for r in rows]
            cols = [c.name for c in cloud_alarms.columns if c.name != "id"]
            await dconn.execute(upsert(dconn.dialect.name, cloud_alarms, ["id"], cols), values)
            stored = await self._watermark(dconn, "alarms")
            newest = float(rows[-1].changed_at)
            mark = (int(rows[-1].id), newest) if (newest, int(rows[-1].id)) > stored[::-1] else stored
            await self._commit_batch(dconn, "alarms", *mark)  # never moves back over an overlap re-read
        result.exported["alarm"] += len(rows)
        result.batches += 1
        return (newest, int(rows[-1].id)) if len(rows) == self.settings.batch_size else None


def _cdr(site: str, seq: int, body: dict[str, Any], mask: MaskPolicy, now: float) -> dict[str, Any]:
    masked = mask.body(body)
    queue = body.get("queue") or ""
    dest = body.get("destination") or ""
    if not queue and isinstance(dest, str) and dest.startswith("queue:"):
        queue = dest[6:]

    def num(key: str) -> float | None:
        v = body.get(key)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    score = body.get("survey_score")
    return {
        "site_id": site, "seq": seq, "call_id": str(body.get("call_id", ""))[:128],
        "start_time": num("start_time"), "answer_time": num("answer_time"), "end_time": num("end_time"),
        "caller": str(masked.get("from_number", masked.get("caller", "")))[:64],
        "callee": str(masked.get("to_number", masked.get("callee", "")))[:64],
        "queue": str(queue)[:64], "disposition": str(body.get("disposition", ""))[:16],
        "transfers": int(body.get("transfers") or 0),
        "survey_score": score if isinstance(score, int) and not isinstance(score, bool) else None,
        "body": masked, "exported_at": now,
    }


def _interval(site: str, seq: int, body: dict[str, Any], mask: MaskPolicy, now: float) -> dict[str, Any]:
    return {"site_id": site, "seq": seq, "kind": str(body.get("kind", ""))[:16],
            "name": str(body.get("name", ""))[:64], "start": body.get("start"), "end": body.get("end"),
            "body": body, "exported_at": now}


def _task(site: str, seq: int, body: dict[str, Any], mask: MaskPolicy, now: float) -> dict[str, Any]:
    masked = mask.body(body)
    return {"site_id": site, "seq": seq, "kind": str(body.get("kind", ""))[:32],
            "call_id": str(body.get("call_id", ""))[:128], "caller": str(masked.get("caller", ""))[:64],
            "detail": str(masked.get("detail", "")), "created_at": body.get("created_at"),
            "due_at": body.get("due_at"), "body": masked, "exported_at": now}


_CONVERT: dict[str, Callable[[str, int, dict[str, Any], MaskPolicy, float], dict[str, Any]]] = {
    "cdr": _cdr, "interval": _interval, "task": _task,
}


# -- entry points -----------------------------------------------------------------------


async def run_forever(source_url: str, dest_url: str, stop: asyncio.Event, *, every_s: float = 60.0,
                      settings: SyncSettings | None = None) -> None:
    """Export every ``every_s`` until ``stop`` is set; a failed run is logged and the
    next tick starts again from the watermarks."""
    source, dest = make_engine(source_url), make_engine(dest_url)
    sync = CloudSync(source, dest, settings)
    try:
        while not stop.is_set():
            try:
                result = await sync.run_once()
                log.info("cloud sync: %s", result.exported)
            except Exception:
                log.exception("cloud sync run failed")
            try:
                await asyncio.wait_for(stop.wait(), every_s)
            except TimeoutError:
                pass
    finally:
        await source.dispose()
        await dest.dispose()


async def sync_once(source_url: str, dest_url: str, settings: SyncSettings | None = None) -> SyncResult:
    source, dest = make_engine(source_url), make_engine(dest_url)
    try:
        return await CloudSync(source, dest, settings).run_once()
    finally:
        await source.dispose()
        await dest.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet.cloudsync", description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="source", required=True, help="the fleet store URL")
    parser.add_argument("--to", dest="dest", default="sqlite+aiosqlite:///var/cloud.db", help="the cloud store URL")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true", help="one run, then exit (the default)")
    when.add_argument("--every", type=float, metavar="S", help="a run every S seconds until SIGINT/SIGTERM")
    parser.add_argument("--batch", type=int, default=500, help="rows per destination transaction")
    parser.add_argument("--mask", default="keep:4", help="keep:N (last N digits), hash or drop")
    parser.add_argument("--keep-first", type=int, default=4, help="leading digits kept by keep:N")
    parser.add_argument("--salt-env", default="BRANCHLINE_MASK_SALT", help="environment variable holding the hash salt")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        mask = MaskPolicy.parse(args.mask, salt=os.environ.get(args.salt_env, ""), keep_first=args.keep_first)
    except ValueError as exc:
        parser.error(str(exc))
    settings = SyncSettings(batch_size=args.batch, mask=mask)
    if args.every is None:
        result = asyncio.run(sync_once(args.source, args.dest, settings))
        print(json.dumps({"exported": result.exported, "batches": result.batches, "retries": result.retries}))
        return 0

    async def forever() -> None:
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_forever(args.source, args.dest, stop, every_s=args.every, settings=settings)

    asyncio.run(forever())
    return 0


if __name__ == "__main__":
    sys.exit(main())

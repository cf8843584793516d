"""The write path of the workers: one transaction per batch of MQTT messages.

Order inside the transaction, and why:

1. insert-or-ignore a ``sites`` row for every site in the batch, then lock those rows
   (``SELECT ... ORDER BY id FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE``
   already holds the database). All later writes of the batch touch only rows that
   belong to these sites, so two workers serialise per site, and always lock in the
   same order: no deadlock between them.
2. insert-or-ignore the records on ``(site_id, seq)`` — a redelivered or re-sent batch
   changes nothing — and the CDR search projection the same way.
3. the new ack watermark per site, computed in SQL from what is stored, not from what
   this worker saw: with two workers each sees part of a site's stream, and the lock of
   step 1 guarantees the other worker's earlier batch is committed and visible. The
   query walks only rows above the old watermark (normally just this batch):
   ``seq - row_number() OVER (ORDER BY seq)`` equals the old watermark exactly for the
   run of rows that continues it without a gap.
4. registry (``state``), metrics, config reports, command results and alarm changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from edge_core.telemetry.protocol import CommandResult, ConfigReport, Metrics, Record, State
from fleet import alarms as alarm_rules
from fleet.store import schema
from fleet.store.engine import dialect_insert, insert_ignore


@dataclass
class IngestBatch:
    """Parsed messages of one batch, each with the site its topic named."""

    now: float
    records: list[tuple[str, Record]] = field(default_factory=list)
    states: list[tuple[str, State]] = field(default_factory=list)
    metrics: list[tuple[str, Metrics]] = field(default_factory=list)
    reports: list[tuple[str, ConfigReport]] = field(default_factory=list)
    results: list[tuple[str, CommandResult]] = field(default_factory=list)
    alarms: list[alarm_rules.AlarmChange] = field(default_factory=list)

    def site_ids(self) -> list[str]:
        ids = {s for s, _ in self.records} | {s for s, _ in self.states} | {s for s, _ in self.metrics}
        ids |= {s for s, _ in self.reports} | {s for s, _ in self.results} | {c.site_id for c in self.alarms}
        return sorted(ids)


@dataclass
class IngestResult:
    acks: dict[str, int]
    """Highest contiguous seq stored, for every site that sent records in the batch."""
    alarms: list[alarm_rules.AlarmChange]
    """Alarm changes that took effect (new raises, clears of active alarms)."""


def cdr_projection(site: str, record: Record) -> dict[str, Any]:
    """The searchable columns of a CDR body (``edge_core.store.db.CdrRow`` field names;
    a missing field projects to an empty value, the body keeps everything)."""
    body = record.body
    start = body.get("start_time")
    end = body.get("end_time")
    queue = body.get("queue") or ""
    destination = body.get("destination") or ""
    if not queue and isinstance(destination, str) and destination.startswith("queue:"):
        queue = destination[6:]
    numeric = isinstance(start, int | float) and isinstance(end, int | float)
    return {
        "site_id": site,
        "seq": record.seq,
        "call_id": str(body.get("call_id", ""))[:128],
        "start_time": float(start) if isinstance(start, int | float) else record.at,
        "caller": str(body.get("from_number", body.get("caller", "")))[:64],
        "callee": str(body.get("to_number", body.get("callee", "")))[:64],
        "queue": str(queue)[:64],
        "disposition": str(body.get("disposition", ""))[:16],
        "duration_s": float(end) - float(start) if numeric else None,  # type: ignore[arg-type]
    }


async def ingest(conn: AsyncConnection, batch: IngestBatch) -> IngestResult:
    """Store one batch inside the caller's transaction (see the module docstring)."""
    d = conn.dialect.name
    s = schema.sites
    now = batch.now
    site_ids = batch.site_ids()
    if not site_ids:
        return IngestResult({}, [])
    await conn.execute(insert_ignore(d, s), [{"id": i, "created_at": now} for i in site_ids])
    locked = await conn.execute(
        select(s.c.id, s.c.contiguous_seq).where(s.c.id.in_(site_ids)).order_by(s.c.id).with_for_update()
    )
    watermark = {row.id: row.contiguous_seq for row in locked}

    acks: dict[str, int] = {}
    if batch.records:
        acks = await _store_records(conn, batch.records, watermark)
    await conn.execute(
        update(s)
        .where(s.c.id == bindparam("b_id"))
        .values(last_seen=bindparam("b_seen"), contiguous_seq=bindparam("b_seq")),
        [{"b_id": i, "b_seen": now, "b_seq": acks.get(i, watermark[i])} for i in site_ids],
    )
    for site, state in batch.states:
        await _apply_state(conn, site, state, now)
    if batch.metrics:
        await _store_metrics(conn, batch.metrics)
    for site, report in batch.reports:
        await _apply_report(conn, site, report, now)
    if batch.results:
        await _store_results(conn, batch.results, now)
    effective = await alarm_rules.apply_changes(conn, batch.alarms, now)
    return IngestResult(acks, effective)


async def _store_records(
    conn: AsyncConnection, items: list[tuple[str, Record]], watermark: dict[str, int]
) -> dict[str, int]:
    d = conn.dialect.name
    unique: dict[tuple[str, int], Record] = {}
    for site, record in items:
        if record.seq > watermark[site]:  # at or below the watermark: stored already
            unique.setdefault((site, record.seq), record)
    keys = sorted(unique)
    sites_with_records = sorted({site for site, _ in items})
    if keys:
        await conn.execute(
            insert_ignore(d, schema.records),
            [
                {"site_id": k[0], "seq": k[1], "kind": r.kind, "at": r.at, "body": r.body}
                for k in keys
                for r in (unique[k],)
            ],
        )
        cdrs = [cdr_projection(k[0], unique[k]) for k in keys if unique[k].kind == "cdr"]
        if cdrs:
            await conn.execute(insert_ignore(d, schema.cdrs), cdrs)
    acks = {site: watermark[site] for site in sites_with_records}
    todo = sorted({k[0] for k in keys})
    if todo:
        r, s = schema.records, schema.sites
        run = (
            select(
                r.c.site_id,
                r.c.seq,
                (r.c.seq - func.row_number().over(partition_by=r.c.site_id, order_by=r.c.seq)).label("g"),
                s.c.contiguous_seq.label("w"),
            )
            .join(s, s.c.id == r.c.site_id)
            .where(r.c.site_id.in_(todo), r.c.seq > s.c.contiguous_seq)
            .subquery()
        )
        rows = await conn.execute(
            select(run.c.site_id, func.max(run.c.seq)).where(run.c.g == run.c.w).group_by(run.c.site_id)
        )
        for site, upto in rows:
            acks[site] = int(upto)
    return acks


async def _apply_state(conn: AsyncConnection, site: str, state: State, now: float) -> None:
    s = schema.sites
    if state.status == "offline":
        # the last-will says only "offline": keep version, mode and the rest as they were
        await conn.execute(update(s).where(s.c.id == site).values(status="offline", status_at=now))
        return
    stmt = (
        update(s)
        .where(s.c.id == site)
        .where((s.c.state_at.is_(None)) | (s.c.state_at <= state.at))  # an older state arriving late
        .values(
            status="online", status_at=now, version=state.version, mode=state.mode,
            mode_since=state.mode_since, started_at=state.started_at, state_at=state.at,
            kernels=dict(state.kernels),
        )
    )
    if state.config_version is not None:
        stmt = stmt.values(config_version=state.config_version)
    await conn.execute(stmt)


async def _store_metrics(conn: AsyncConnection, items: list[tuple[str, Metrics]]) -> None:
    d = conn.dialect.name
    rows: list[dict[str, Any]] = [
        {"site_id": site, "at": m.at, "gauges": m.gauges, "queues": m.queues, "trunks": m.trunks}
        for site, m in items
    ]
    await conn.execute(schema.metrics_history.insert(), rows)
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        site = row["site_id"]
        if site not in newest or row["at"] >= newest[site]["at"]:
            newest[site] = row
    ml = schema.metrics_latest
    stmt = dialect_insert(d, ml)
    stmt = stmt.on_conflict_do_update(
        index_elements=["site_id"],
        set_={c: stmt.excluded[c] for c in ("at", "gauges", "queues", "trunks")},
        where=ml.c.at <= stmt.excluded.at,
    )
    await conn.execute(stmt, [newest[k] for k in sorted(newest)])


async def _apply_report(conn: AsyncConnection, site: str, report: ConfigReport, now: float) -> None:
    s = schema.sites
    if report.status == "applied":
        values: dict[str, Any] = {"config_version": report.version, "config_report_at": now}
        await conn.execute(update(s).where(s.c.id == site).values(**values))
        await conn.execute(
            update(s)
            .where(s.c.id == site, s.c.config_rejected_version <= report.version)
            .values(config_rejected_version=None, config_rejection="")
        )
    else:
        await conn.execute(
            update(s)
            .where(s.c.id == site)
            .values(config_rejected_version=report.version, config_rejection=report.reason[:2000],
                    config_report_at=now)
        )


async def _store_results(conn: AsyncConnection, items: list[tuple[str, CommandResult]], now: float) -> None:
    c = schema.commands
    stmt = dialect_insert(conn.dialect.name, c)
    stmt = stmt.on_conflict_do_update(
        index_elements=["site_id", "id"],
        set_={k: stmt.excluded[k] for k in ("ok", "result", "error", "done_at")},
    )
    await conn.execute(
        stmt,
        [
            {"site_id": site, "id": r.id, "ok": r.ok, "result": r.result, "error": r.error[:2000], "done_at": now}
            for site, r in items
        ],
    )

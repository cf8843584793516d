"""Alarms: sans-I/O rules that turn what a site reports into raise/clear changes, and
their persistence (dedupe, acknowledgement, clearing) on the fleet store.

The rules are stateless on purpose: every observation carries the whole condition it
speaks for (a ``state`` says the mode, a ``metrics`` message lists every trunk and
queue), so each one yields a :class:`Raise` or a :class:`Clear` for every alarm it
covers, and any worker can evaluate any message — no memory shared between workers.

Dedupe: at most one *active* alarm per ``(site, kind, subject)`` (a partial unique
index). Raising it again bumps ``count`` and ``last_seen_at`` (and the severity if
higher); clearing ends it (``active`` false, ``cleared_at``), and a later raise opens a
new one. Acknowledgement is an operator's: it marks the alarm seen, it does not clear it.

What raises what (kinds):

* ``site_offline`` (critical) — ``state`` offline (the edge's last-will); cleared by online.
* ``survivable_mode`` (major) — ``state.mode`` is ``survivable`` (the WAN is down).
* ``trunk_down`` (major), subject the trunk — ``metrics.trunks[name]`` is false.
* ``service_level`` (minor), subject the queue — ``metrics.queues[q].service_level``
  (a ratio 0..1) below the queue's ``service_level_target`` if it reports one, else
  :attr:`AlarmThresholds.service_level_target`. A queue with no calls (None) clears it.
* ``disk_filling`` (major / critical), subject ``disk`` — gauge ``disk_used_pct``.
* Events (outbox records of kind ``event``) whose body is
  ``{"alarm": kind, "subject": s, "severity": sev, "active": bool, "message": m}``
  raise or clear that alarm: the edge's way to report a condition the fleet cannot
  see in metrics (UPS on battery, an MCU fault).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from edge_core.telemetry.protocol import Metrics, Record, State
from fleet.store import schema
from fleet.store.engine import insert_ignore

SEVERITIES = ("info", "minor", "major", "critical")


@dataclass(frozen=True)
class Raise:
    """The condition holds now."""

    site_id: str
    kind: str
    subject: str
    severity: str
    message: str


@dataclass(frozen=True)
class Clear:
    """The condition no longer holds."""

    site_id: str
    kind: str
    subject: str


AlarmChange = Raise | Clear


@dataclass(frozen=True)
class AlarmThresholds:
    service_level_target: float = 0.8
    """Ratio of calls answered within the queue's threshold, when the queue gives none."""
    disk_used_pct_major: float = 85.0
    disk_used_pct_critical: float = 95.0


class AlarmRules:
    """Observations in, :class:`Raise` / :class:`Clear` changes out. No I/O, no state."""

    def __init__(self, thresholds: AlarmThresholds | None = None) -> None:
        self.thresholds = thresholds or AlarmThresholds()

    def on_state(self, site: str, state: State) -> list[AlarmChange]:
        if state.status == "offline":
            # the last-will carries no mode: leave survivable_mode as it was
            return [Raise(site, "site_offline", "", "critical", "site is offline (last-will)")]
        changes: list[AlarmChange] = [Clear(site, "site_offline", "")]
        if state.mode == "survivable":
            changes.append(Raise(site, "survivable_mode", "", "major", "WAN lost: survivable mode"))
        else:
            changes.append(Clear(site, "survivable_mode", ""))
        return changes

    def on_metrics(self, site: str, metrics: Metrics) -> list[AlarmChange]:
        changes: list[AlarmChange] = []
        for trunk, up in metrics.trunks.items():
            if up:
                changes.append(Clear(site, "trunk_down", trunk))
            else:
                changes.append(Raise(site, "trunk_down", trunk, "major", f"trunk {trunk} is down"))
        for queue, stats in metrics.queues.items():
            level = stats.get("service_level")
            target = stats.get("service_level_target") or self.thresholds.service_level_target
            if level is not None and level < target:
                changes.append(
                    Raise(site, "service_level", queue, "minor",
                          f"queue {queue}: service level {level:.0%} below target {target:.0%}")
                )
            else:
                changes.append(Clear(site, "service_level", queue))
        disk = metrics.gauges.get("disk_used_pct")
        if disk is not None:
            t = self.thresholds
            if disk >= t.disk_used_pct_major:
                severity = "critical" if disk >= t.disk_used_pct_critical else "major"
                changes.append(Raise(site, "disk_filling", "disk", severity, f"disk {disk:.0f}% used"))
            else:
                changes.append(Clear(site, "disk_filling", "disk"))
        return changes

    def on_record(self, site: str, record: Record) -> list[AlarmChange]:
        if record.kind != "event" or not isinstance(record.body.get("alarm"), str):
            return []
        body = record.body
        kind = body["alarm"][:32]
        subject = str(body.get("subject", ""))[:100]
        if body.get("active", True):
            severity = body.get("severity") if body.get("severity") in SEVERITIES else "major"
            return [Raise(site, kind, subject, str(severity), str(body.get("message", ""))[:500])]
        return [Clear(site, kind, subject)]


# -- persistence ------------------------------------------------------------------------


def _worse(a: str, b: str) -> str:
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return a if rank.get(a, 0) >= rank.get(b, 0) else b


async def apply_changes(conn: AsyncConnection, changes: list[AlarmChange], now: float) -> list[AlarmChange]:
    """Apply changes inside the caller's transaction; return those that changed
    something (a new alarm raised, an active one cleared) — repeats are not returned.

    The caller holds the row locks of the sites involved (``FleetStore.ingest``), so
    reading the active alarms first and then writing is not racy on PostgreSQL; SQLite
    serialises writers anyway.
    """
    if not changes:
        return []
    a = schema.alarms
    sites = sorted({c.site_id for c in changes})
    rows = await conn.execute(
        select(a.c.id, a.c.site_id, a.c.kind, a.c.subject, a.c.severity).where(
            a.c.site_id.in_(sites), a.c.active.is_(True)
        )
    )
    active = {(r.site_id, r.kind, r.subject): (r.id, r.severity) for r in rows}
    effective: list[AlarmChange] = []
    for change in changes:
        key = (change.site_id, change.kind, change.subject)
        found = active.get(key)
        if isinstance(change, Raise):
            if found is None:
                await conn.execute(
                    insert_ignore(conn.dialect.name, a).values(
                        site_id=change.site_id, kind=change.kind, subject=change.subject,
                        severity=change.severity, message=change.message, raised_at=now,
                        last_seen_at=now, count=1, active=True,
                    )
                )
                active[key] = (-1, change.severity)
                effective.append(change)
            else:
                await conn.execute(
                    update(a)
                    .where(a.c.site_id == change.site_id, a.c.kind == change.kind,
                           a.c.subject == change.subject, a.c.active.is_(True))
                    .values(last_seen_at=now, count=a.c.count + 1, message=change.message,
                            severity=_worse(change.severity, found[1]))
                )
        elif found is not None:
            await conn.execute(
                update(a)
                .where(a.c.site_id == change.site_id, a.c.kind == change.kind,
                       a.c.subject == change.subject, a.c.active.is_(True))
                .values(active=False, cleared_at=now)
            )
            del active[key]
            effective.append(change)
    return effective


async def acknowledge(conn: AsyncConnection, alarm_id: int, operator: str, now: float) -> bool:
    """Mark an alarm acknowledged by ``operator``; False if there is no such alarm or it
    was already acknowledged. Audit logging is the caller's (``FleetStore.ack_alarm``)."""
    a = schema.alarms
    done = await conn.execute(
        update(a).where(a.c.id == alarm_id, a.c.acked_at.is_(None)).values(acked_by=operator, acked_at=now)
    )
    return bool(done.rowcount)


def changes_for(rules: AlarmRules, site: str, message: Any) -> list[AlarmChange]:
    """Dispatch one parsed message to the rule that reads it."""
    if isinstance(message, State):
        return rules.on_state(site, message)
    if isinstance(message, Metrics):
        return rules.on_metrics(site, message)
    if isinstance(message, Record):
        return rules.on_record(site, message)
    return []

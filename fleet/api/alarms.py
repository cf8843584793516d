"""Alarms: list with filters, one alarm, acknowledgement by an operator (audited by
``FleetStore.ack_alarm`` in the same transaction)."""

from __future__ import annotations

from dataclasses import fields
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from sqlalchemy import select

from fleet.alarms import SEVERITIES
from fleet.api.auth import Operator, Viewer
from fleet.api.models import AlarmOut
from fleet.api.sites import SITE_PATTERN, store_of
from fleet.store import FleetStore, schema
from fleet.store.rows import AlarmRow

AlarmId = Annotated[int, Path(ge=1, le=2**62, description="the alarm id")]

router = APIRouter(tags=["alarms"])


async def get_alarm(store: FleetStore, alarm_id: int) -> AlarmRow | None:
    """One alarm by id, active or not (the store's query API lists; this reads one)."""
    async with store.engine.connect() as conn:
        rows = list(await conn.execute(select(schema.alarms).where(schema.alarms.c.id == alarm_id)))
    if not rows:
        return None
    r = rows[0]._mapping
    values: dict[str, Any] = {f.name: r[f.name] for f in fields(AlarmRow)}
    return AlarmRow(**{**values, "active": bool(values["active"])})


@router.get("/alarms", summary="Alarms newest first; active only unless active=false or cleared=true")
async def list_alarms(
    principal: Viewer,
    request: Request,
    site_id: Annotated[str | None, Query(pattern=SITE_PATTERN)] = None,
    severity: Annotated[str | None, Query(pattern="^(" + "|".join(SEVERITIES) + ")$")] = None,
    active: bool | None = True,
    cleared: Annotated[bool, Query(description="include cleared alarms too (ignores active)")] = False,
    acked: bool | None = None,
    kind: Annotated[str | None, Query(max_length=32, pattern=r"^[^\x00]*$")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[AlarmOut]:
    rows = await store_of(request).list_alarms(
        site_id=site_id, active=None if cleared else active, severity=severity, acked=acked, kind=kind,
        limit=limit, offset=offset)
    return [AlarmOut.model_validate(r) for r in rows]


@router.get("/alarms/{alarm_id}", summary="One alarm", responses={404: {"description": "no such alarm"}})
async def alarm(principal: Viewer, request: Request, alarm_id: AlarmId) -> AlarmOut:
    row = await get_alarm(store_of(request), alarm_id)
    if row is None:
        raise HTTPException(404, f"no alarm {alarm_id}")
    return AlarmOut.model_validate(row)


@router.post("/alarms/{alarm_id}/ack", summary="Acknowledge an alarm (operator); audited",
             responses={404: {"description": "no such alarm"}, 409: {"description": "acknowledged already"}})
async def ack_alarm(principal: Operator, request: Request, alarm_id: AlarmId) -> AlarmOut:
    store = store_of(request)
    if not await store.ack_alarm(alarm_id, principal.name):
        row = await get_alarm(store, alarm_id)
        if row is None:
            raise HTTPException(404, f"no alarm {alarm_id}")
        raise HTTPException(409, f"alarm {alarm_id} was acknowledged by {row.acked_by} already")
    row = await get_alarm(store, alarm_id)
    assert row is not None
    return AlarmOut.model_validate(row)

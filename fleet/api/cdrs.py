"""CDR search (paged JSON) and CSV export (streamed), with the same filters.

Times are read and shown in the operator's zone: ``since`` / ``until`` accept ISO 8601
with an offset, or local times read in ``tz`` (see ``times.py``); each row carries
``start_local``. ``caller`` / ``callee`` match exactly, or as a prefix ending in ``*``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from fleet.api.auth import Viewer
from fleet.api.models import CdrOut, CdrPage
from fleet.api.sites import SITE_PATTERN, TimeParam, Tz, store_of
from fleet.api.times import parse_time, zone
from fleet.store import FleetStore
from fleet.store.rows import CdrRow

EXPORT_PAGE = 1000
CSV_COLUMNS = ("site_id", "seq", "call_id", "start_time", "start_local", "caller", "callee", "queue",
               "disposition", "duration_s")
_NUMBER = re.compile(r"^[+-]?[0-9][0-9 .]*$")

Text64 = Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00]+$")]

router = APIRouter(tags=["cdrs"])


@dataclass(frozen=True)
class CdrFilter:
    site_id: str | None
    since: float | None
    until: float | None
    caller: str | None
    callee: str | None
    queue: str | None
    disposition: str | None
    tz: ZoneInfo

    async def page(self, store: FleetStore, limit: int, offset: int) -> list[CdrRow]:
        return await store.search_cdrs(
            site_id=self.site_id, since=self.since, until=self.until, caller=self.caller, callee=self.callee,
            queue=self.queue, disposition=self.disposition, limit=limit, offset=offset)


def cdr_filter(
    site_id: Annotated[str | None, Query(pattern=SITE_PATTERN)] = None,
    since: TimeParam = None,
    until: TimeParam = None,
    tz: Tz = None,
    caller: Text64 = None,
    callee: Text64 = None,
    queue: Text64 = None,
    disposition: Annotated[str | None, Query(max_length=16, pattern=r"^[^\x00]+$")] = None,
) -> CdrFilter:
    zi = zone(tz)
    return CdrFilter(site_id, parse_time(since, zi, "since"), parse_time(until, zi, "until"), caller, callee,
                     queue, disposition, zi)


Filter = Annotated[CdrFilter, Depends(cdr_filter)]


def _out(row: CdrRow, tz: ZoneInfo) -> CdrOut:
    from fleet.api.times import local_iso

    return CdrOut.model_validate({**row.__dict__, "start_local": local_iso(row.start_time, tz)})


@router.get("/cdrs", summary="Search CDRs, newest first, paged")
async def search(
    principal: Viewer,
    request: Request,
    filters: Filter,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> CdrPage:
    rows = await filters.page(store_of(request), limit + 1, offset)
    more = len(rows) > limit
    return CdrPage(items=[_out(r, filters.tz) for r in rows[:limit]], limit=limit, offset=offset,
                   next_offset=offset + limit if more else None, tz=str(filters.tz.key))


def _cell(value: object) -> object:
    """A spreadsheet must not run a cell as a formula; phone numbers (+33...) stay as they are."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.match(value):
        return "'" + value
    return value


@router.get("/cdrs.csv", summary="Export the CDRs that match the filters as CSV (streamed)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}, "description": "CSV with a header row"}})
async def export(principal: Viewer, request: Request, filters: Filter) -> StreamingResponse:
    store = store_of(request)

    async def rows() -> AsyncIterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        offset = 0
        while True:
            page = await filters.page(store, EXPORT_PAGE, offset)
            for r in page:
                out = _out(r, filters.tz)
                writer.writerow([_cell(getattr(out, c)) if getattr(out, c) is not None else "" for c in CSV_COLUMNS])
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
            if len(page) < EXPORT_PAGE:
                return
            offset += EXPORT_PAGE

    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="cdrs.csv"'})

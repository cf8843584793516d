"""The live event stream: Server-Sent Events fed by polling the store.

Ingest runs in other processes (the workers), so the API cannot hook their commits;
it reads the store once per ``poll_interval_s`` while at least one client listens,
and sends what changed since the previous read. Events (``event:`` name, JSON ``data:``):

* ``sites`` — the whole site list, once when a client connects (so nothing that
  happened between its page load and its subscription is missed);
* ``site`` — one site whose row changed (status, mode, alarm count, config...);
* ``summary`` — the fleet counts, when they changed;
* ``alarms`` — ``{"active": n, "latest_id": id, "acked": n, "cleared_at": t}`` when the
  alarm table changed: the client re-reads the list it shows.

A comment line every ``KEEPALIVE_S`` keeps proxies from closing an idle stream. A
client that reads too slowly (its queue full) is dropped; its EventSource reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select

from fleet.api.auth import Viewer
from fleet.api.models import SiteOut
from fleet.store import FleetStore, schema

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
QUEUE_SIZE = 256

Event = tuple[str, Any]


class EventHub:
    def __init__(self, store: FleetStore, *, poll_interval_s: float = 1.0) -> None:
        self.store = store
        self.poll_interval_s = poll_interval_s
        self._subscribers: set[asyncio.Queue[Event | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._sites: dict[str, dict[str, Any]] = {}
        self._summary: dict[str, int] = {}
        self._alarms: dict[str, Any] = {}
        self.polls = 0

    async def snapshot(self) -> tuple[list[dict[str, Any]], dict[str, int], dict[str, Any]]:
        sites = [SiteOut.of(r).model_dump(mode="json") for r in await self.store.list_sites()]
        summary = await self.store.fleet_summary()
        a = schema.alarms
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(
                func.count().filter(a.c.active.is_(True)), func.max(a.c.id),
                func.count(a.c.acked_at), func.max(a.c.cleared_at)))).one()
        alarms = {"active": int(row[0] or 0), "latest_id": row[1], "acked": int(row[2] or 0), "cleared_at": row[3]}
        return sites, summary, alarms

    async def subscribe(self) -> asyncio.Queue[Event | None]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_SIZE)
        sites, summary, alarms = await self.snapshot()
        queue.put_nowait(("sites", {"sites": sites, "summary": summary}))
        queue.put_nowait(("alarms", alarms))
        if not self._subscribers:
            self._sites = {s["id"]: s for s in sites}
            self._summary, self._alarms = summary, alarms
        self._subscribers.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll_loop())
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        self._subscribers.discard(queue)

    def publish(self, name: str, data: Any) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait((name, data))
            except asyncio.QueueFull:
                self._subscribers.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(None)  # tells the stream to end

    async def poll_once(self) -> None:
        sites, summary, alarms = await self.snapshot()
        self.polls += 1
        current = {s["id"]: s for s in sites}
        for site_id, site in current.items():
            if self._sites.get(site_id) != site:
                self.publish("site", site)
        self._sites = current
        if summary != self._summary:
            self._summary = summary
            self.publish("summary", summary)
        if alarms != self._alarms:
            self._alarms = alarms
            self.publish("alarms", alarms)

    async def _poll_loop(self) -> None:
        while self._subscribers:
            await asyncio.sleep(self.poll_interval_s)  # a polling period, not a wait for an event
            try:
                await self.poll_once()
            except Exception:  # a busy or restarting database: try again next period
                log.warning("event poll failed", exc_info=True)

    def end_streams(self) -> None:
        """Tell every open stream to finish (a server shutting down); clients reconnect."""
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self._subscribers.clear()

    async def close(self) -> None:
        self.end_streams()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def format_event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


router = APIRouter(tags=["events"])


@router.get(
    "/events",
    summary="Live changes as Server-Sent Events (sites, site, summary, alarms)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "an endless event stream"}},
)
async def events(principal: Viewer, request: Request) -> StreamingResponse:
    hub: EventHub = request.app.state.ctx.hub
    queue = await hub.subscribe()

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 2000\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if item is None:
                    return
                yield format_event(*item)
        finally:
            hub.unsubscribe(queue)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

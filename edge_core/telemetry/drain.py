"""The outbox drain: records leave in seq order, QoS 1 batches, deleted only once acked.

Per connection the drain starts again from the last acked seq (anything sent on a
previous connection and not acked may never have reached the fleet, which stores
``(site, seq)`` once, so sending it twice is harmless and sending it never is not).
It keeps at most ``max_inflight_batches`` batches unacked, and when no ack moves for
``ack_timeout_s`` while records are in flight, it sends again from the last acked seq.

An ack is believed only up to the highest seq this process has sent: an ack cannot
cover a record the fleet has never seen (e.g. a retained ack from before a store reset).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from edge_core.store.db import EdgeStore
from edge_core.telemetry import protocol

log = logging.getLogger("edge.telemetry.outbox")


class OutboxDrain:
    def __init__(self, store: EdgeStore, topic: str, *, batch_size: int, max_inflight_batches: int,
                 ack_timeout_s: float) -> None:  # fmt: skip
        self.store = store
        self.topic = topic
        self.batch_size = batch_size
        self.window = batch_size * max_inflight_batches
        self.ack_timeout_s = ack_timeout_s
        self.acked = 0
        """Highest seq the fleet acknowledged (and the store deleted, or is about to)."""
        self.sent = 0
        """Highest seq published on the current connection."""
        self.sent_max = 0
        """Highest seq ever published by this process: the bound on what an ack covers."""
        self.deleted = 0
        self.counters = {"batches": 0, "records": 0, "resends": 0, "acks": 0, "ignored_acks": 0}
        self._last_progress = time.monotonic()
        self.wake = store.outbox_written  # set by the store on new records, by on_ack here
        self.progress = asyncio.Event()
        """Set each time acked records are deleted."""

    def on_ack(self, ack: protocol.Ack) -> None:
        """The fleet stored every record up to ``ack.upto`` (runs on the loop)."""
        self.counters["acks"] += 1
        upto = min(ack.upto, self.sent_max)
        if upto < ack.upto:
            self.counters["ignored_acks"] += 1
        if upto > self.acked:
            self.acked = upto
            self._last_progress = time.monotonic()
            self.wake.set()

    async def run(self, link: Any) -> None:
        """Drain over ``link`` (an MqttLink) until it closes; raises what the link raises."""
        self.sent = self.acked
        self._last_progress = time.monotonic()
        while True:
            self.wake.clear()
            if self.acked > self.deleted:
                upto = self.acked
                await asyncio.shield(self.store.outbox_delete_upto(upto))  # done even if we are cancelled
                self.deleted = upto
                self.progress.set()
            if self.sent - self.acked < self.window:
                records = await self.store.outbox_after(self.sent, self.batch_size)
                if records:
                    await self._send(link, records)
                    continue
            timeout = None
            if self.sent > self.acked:
                timeout = max(0.0, self._last_progress + self.ack_timeout_s - time.monotonic())
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except TimeoutError:
                log.warning("no ack above seq %d for %.0f s: sending again from there",
                            self.acked, self.ack_timeout_s)  # fmt: skip
                self.counters["resends"] += 1
                self.sent = self.acked
                self._last_progress = time.monotonic()

    async def _send(self, link: Any, records: list[Any]) -> None:
        await self.store.sync()  # what the fleet sees is on disk: its seq is never reused
        batch = protocol.OutboxBatch(
            records=[protocol.Record(seq=r.seq, kind=r.kind, at=r.at, body=r.body) for r in records]
        )
        if self.sent == self.acked:
            self._last_progress = time.monotonic()  # the ack clock starts with the first batch
        link.publish(self.topic, batch.to_bytes(), qos=1)
        self.sent = records[-1].seq
        self.sent_max = max(self.sent_max, self.sent)
        self.counters["batches"] += 1
        self.counters["records"] += len(records)

    async def wait_empty(self, timeout_s: float) -> bool:
        """At shutdown, while :meth:`run` goes on: wait until every record is acked and
        deleted, at most ``timeout_s``. True when the outbox is empty."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.progress.clear()
            if await self.store.outbox_backlog() == 0:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self.progress.wait(), remaining)
            except TimeoutError:
                return False

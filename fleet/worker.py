"""An ingest worker: MQTT in (shared subscriptions), the fleet store out, acks back.

Nothing is lost because nothing is acknowledged early. The worker keeps a persistent
session (``clean_session=False``, a stable client id per worker) and receives with
``manual_ack``: the PUBACK of a message goes out only after the transaction holding it
has committed. A worker killed at any moment leaves its unacknowledged messages in its
broker session, redelivered when it comes back (``branchline fleet run`` restarts it
under the same id); the insert-or-ignore on ``(site_id, seq)`` makes the redelivery
harmless. The edge is told ``ack upto=N`` only after the commit too, with N read from
the store (the highest contiguous seq), so an edge never deletes a record the fleet
has not stored.

Batching: whatever messages are waiting when the previous transaction ends form the
next batch (up to ``max_batch_messages`` / ``max_batch_bytes``), so a quiet fleet commits each message at
once and a busy one amortises a commit over many — no timer adds latency.

Malformed payloads (``protocol.ProtocolError``) are counted, logged at debug and
acknowledged (dropped): redelivering them would never make them valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho

from edge_core.telemetry import protocol as p
from fleet.alarms import AlarmRules, changes_for
from fleet.mqtt import MqttConnection, MqttError
from fleet.store import FleetStore, IngestBatch

log = logging.getLogger(__name__)

INBOUND = ("outbox", "state", "metrics", "config/report", "cmd/result")
"""Topic kinds the fleet consumes (edge -> fleet)."""


def subscriptions(group: str | None) -> list[tuple[str, int]]:
    """``$share/{group}/bl/v1/site/+/{kind}`` for each inbound kind (plain topics without a group)."""
    prefix = f"$share/{group}/" if group else ""
    return [(f"{prefix}{p.PREFIX}/+/{kind}", 1) for kind in INBOUND]


@dataclass
class WorkerSettings:
    broker_url: str
    client_id: str
    group: str | None = "fleet"
    """Shared-subscription group; None subscribes plainly (a single worker)."""
    max_batch_messages: int = 2000
    max_batch_bytes: int = 1_000_000
    """Payload bytes per transaction: bounds how long a commit (and so an ack) can take."""
    keepalive_s: int = 30
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 10.0
    db_retry_max_s: float = 5.0


@dataclass
class WorkerStats:
    messages: int = 0
    accepted: int = 0
    """Messages that parsed (the rest are ``malformed`` or empty retained clears)."""
    records: int = 0
    malformed: int = 0
    batches: int = 0
    acks_sent: int = 0
    connects: int = 0
    connection_failures: int = 0
    db_errors: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Parsed:
    batch: IngestBatch
    messages: list[paho.MQTTMessage]
    acks: dict[str, int] = field(default_factory=dict)


class IngestWorker:
    """Run with ``await worker.run(stop)``; returns once ``stop`` is set and the batch
    in hand is committed (or abandoned unacknowledged)."""

    def __init__(self, store: FleetStore, settings: WorkerSettings, rules: AlarmRules | None = None) -> None:
        self.store = store
        self.settings = settings
        self.rules = rules or AlarmRules()
        self.stats = WorkerStats()
        self.connected = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        delay = self.settings.reconnect_min_s
        while not stop.is_set():
            try:
                async with MqttConnection(
                    self.settings.broker_url, self.settings.client_id, clean_session=False,
                    manual_ack=True, keepalive_s=self.settings.keepalive_s,
                ) as mqtt:
                    await mqtt.subscribe(subscriptions(self.settings.group))
                    self.stats.connects += 1
                    self.connected.set()
                    delay = self.settings.reconnect_min_s
                    log.info("worker %s connected to %s", self.settings.client_id, self.settings.broker_url)
                    await self._consume(mqtt, stop)
            except (TimeoutError, MqttError, OSError) as exc:
                self.stats.connection_failures += 1
                log.warning("worker %s: %s; reconnecting in %.1fs", self.settings.client_id, exc, delay)
            finally:
                self.connected.clear()
            if stop.is_set():
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, self.settings.reconnect_max_s)

    async def _consume(self, mqtt: MqttConnection, stop: asyncio.Event) -> None:
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                getter = asyncio.ensure_future(mqtt.messages.get())
                waiting: set[asyncio.Future[Any]] = {getter, stopping, mqtt.lost}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    if mqtt.lost.done():
                        raise MqttError("connection lost")
                    return  # stop requested, nothing in hand
                messages = [getter.result()]
                size = len(messages[0].payload)
                limit, max_bytes = self.settings.max_batch_messages, self.settings.max_batch_bytes
                while len(messages) < limit and size < max_bytes and not mqtt.messages.empty():
                    messages.append(mqtt.messages.get_nowait())
                    size += len(messages[-1].payload)
                parsed = self.parse(messages, time.time())
                if not await self._store(parsed, stop):
                    return  # stopping during a database outage: leave them unacknowledged
                if mqtt.lost.done():
                    raise MqttError("connection lost (batch stored; the broker redelivers it)")
                self._publish_acks(mqtt, parsed)
        finally:
            stopping.cancel()

    def parse(self, messages: list[paho.MQTTMessage], now: float) -> _Parsed:
        """Sort messages into an IngestBatch; count and skip the malformed."""
        batch = IngestBatch(now)
        for msg in messages:
            self.stats.messages += 1
            if not msg.payload:  # a retained message being cleared
                continue
            payload = bytes(msg.payload)
            try:
                site, kind = p.parse_topic(msg.topic)
                self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
                if kind == "outbox":
                    outbox = p.OutboxBatch.from_bytes(payload)
                    for record in outbox.records:
                        batch.records.append((site, record))
                        batch.alarms += changes_for(self.rules, site, record)
                    self.stats.records += len(outbox.records)
                elif kind == "state":
                    state = p.State.from_bytes(payload)
                    batch.states.append((site, state))
                    batch.alarms += changes_for(self.rules, site, state)
                elif kind == "metrics":
                    metrics = p.Metrics.from_bytes(payload)
                    batch.metrics.append((site, metrics))
                    batch.alarms += changes_for(self.rules, site, metrics)
                elif kind == "config/report":
                    batch.reports.append((site, p.ConfigReport.from_bytes(payload)))
                elif kind == "cmd/result":
                    batch.results.append((site, p.CommandResult.from_bytes(payload)))
                else:
                    raise p.ProtocolError(f"unexpected topic kind {kind!r}")
                self.stats.accepted += 1
            except p.ProtocolError as exc:
                self.stats.malformed += 1
                log.debug("dropped malformed message on %s: %s", msg.topic, exc)
        return _Parsed(batch, messages)

    async def _store(self, parsed: _Parsed, stop: asyncio.Event) -> bool:
        delay = 0.1
        while True:
            try:
                result = await self.store.ingest(parsed.batch)
            except Exception as exc:  # the database is down or refused: retry, never ack
                self.stats.db_errors += 1
                log.error("worker %s: storing a batch failed (%s); retrying", self.settings.client_id, exc)
                if stop.is_set():
                    return False
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, self.settings.db_retry_max_s)
                continue
            parsed.acks = result.acks
            self.stats.batches += 1
            for change in result.alarms:
                log.info("alarm %s: %s", type(change).__name__.lower(), change)
            return True

    def _publish_acks(self, mqtt: MqttConnection, parsed: _Parsed) -> None:
        try:
            for site, upto in parsed.acks.items():
                mqtt.publish(p.topic(site, "ack"), p.Ack(upto=upto).to_bytes(), qos=1)
                self.stats.acks_sent += 1
            for msg in parsed.messages:
                mqtt.ack(msg)
        except MqttError as exc:  # lost meanwhile: the broker redelivers, we re-ack then
            log.warning("worker %s: could not ack (%s)", self.settings.client_id, exc)

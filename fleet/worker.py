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

Batching and pipelining: messages are parsed as they arrive, while the previous batch
commits; whatever has gathered when that commit ends (up to ``max_batch_messages`` /
``max_batch_bytes``) is the next transaction. A quiet fleet commits each message at
once and a busy one amortises a commit over many — no timer adds latency, and the
parsing (pydantic validation, body encoding, building the rows) costs the transaction
nothing. One transaction at a time: batches commit, and are acknowledged, in the order
they arrived.

Malformed payloads (``protocol.ProtocolError``, and values the store's columns cannot
hold: ``fleet.store.ingest.UnstorableJson``) are counted, logged at debug and
acknowledged (dropped): redelivering them would never make them valid, and storing them
would fail the whole batch on every retry.
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
from fleet.mqtt import MqttConnection, MqttError, redact_broker_url
from fleet.store import FleetStore, IngestBatch
from fleet.store.ingest import UnstorableJson, check_site, storable, storable_record

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
    parse_s: float = 0.0
    """Seconds spent parsing (CPU of this process)."""
    store_s: float = 0.0
    """Seconds from a batch's transaction start to its commit (the database's share)."""
    by_kind: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Parsed:
    batch: IngestBatch
    messages: list[paho.MQTTMessage]
    """Every message of the batch, malformed ones included: all are PUBACKed after the commit."""
    acks: dict[str, int] = field(default_factory=dict)
    size: int = 0
    """Payload bytes of ``messages``."""


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
                    log.info("worker %s connected to %s", self.settings.client_id,
                             redact_broker_url(self.settings.broker_url))
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
        """Receive and parse the next batch while the previous one commits.

        At most one transaction is in flight (``storing``) and one batch grows behind it
        (``pending``): messages are parsed as they arrive, so the parsing overlaps the
        database's work, and when the commit ends whatever has gathered is stored next.
        A quiet fleet therefore still commits each message at once, a busy one gets
        transactions as large as one commit's worth of traffic (bounded by
        ``max_batch_messages`` / ``max_batch_bytes``, which bounds the commit time and
        so the added latency) — no timer. Batches commit and are acknowledged strictly
        in the order they were received, as MQTT 3.1.1 wants PUBACKs (4.6).
        """
        stopping = asyncio.ensure_future(stop.wait())
        getter: asyncio.Future[paho.MQTTMessage] | None = None
        storing: asyncio.Task[bool] | None = None
        pending: _Parsed | None = None
        limit, max_bytes = self.settings.max_batch_messages, self.settings.max_batch_bytes
        try:
            while True:
                full = pending is not None and (len(pending.messages) >= limit or pending.size >= max_bytes)
                if getter is None and not full:
                    getter = asyncio.ensure_future(mqtt.messages.get())
                waiting: set[asyncio.Future[Any]] = {stopping, mqtt.lost}
                waiting |= {f for f in (getter, storing) if f is not None}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if getter is not None and getter.done():
                    pending = pending or _Parsed(IngestBatch(time.time()), [])
                    self._parse_into(pending, getter.result())
                    getter = None
                    while len(pending.messages) < limit and pending.size < max_bytes and not mqtt.messages.empty():
                        self._parse_into(pending, mqtt.messages.get_nowait())
                if storing is not None and storing.done():
                    done, storing = storing, None
                    if not done.result():
                        return  # stopping during a database outage: left unacknowledged
                if stop.is_set() or mqtt.lost.done():
                    break
                if storing is None and pending is not None:
                    storing = asyncio.ensure_future(self._store_and_ack(mqtt, pending, stop))
                    pending = None
            # stopping or lost: finish the commit in flight (its acks go out if they
            # can); a batch not yet committed stays unacknowledged and is redelivered
            if storing is not None:
                await storing
            if mqtt.lost.done():
                raise MqttError("connection lost (stored batches are redelivered and acked again)")
        finally:
            stopping.cancel()
            if getter is not None:
                getter.cancel()
            if storing is not None and not storing.done():
                storing.cancel()

    async def _store_and_ack(self, mqtt: MqttConnection, parsed: _Parsed, stop: asyncio.Event) -> bool:
        """Commit one batch, then send its acks and PUBACKs; False if abandoned."""
        if not await self._store(parsed, stop):
            return False
        if not mqtt.lost.done():
            self._publish_acks(mqtt, parsed)
        return True

    def parse(self, messages: list[paho.MQTTMessage], now: float) -> _Parsed:
        """Sort messages into an IngestBatch; count and skip the malformed."""
        parsed = _Parsed(IngestBatch(now), [])
        for msg in messages:
            self._parse_into(parsed, msg)
        return parsed

    def _parse_into(self, parsed: _Parsed, msg: paho.MQTTMessage) -> None:
        """Add one message to a batch (every message is kept, to be PUBACKed with it).

        An outbox message is validated whole — the protocol's pydantic model (the same
        schema the edge writes with, checked in Rust) and ``storable_record`` for every
        record — before any of its records joins the batch: it goes in entirely or is
        dropped as malformed entirely. Other kinds pass ``storable`` (values PostgreSQL
        would refuse are malformed input, not a database error that stalls the worker).
        """
        started = time.perf_counter()
        try:
            self._parse_message(parsed, msg)
        finally:
            self.stats.parse_s += time.perf_counter() - started

    def _parse_message(self, parsed: _Parsed, msg: paho.MQTTMessage) -> None:
        batch = parsed.batch
        parsed.messages.append(msg)
        parsed.size += len(msg.payload)
        self.stats.messages += 1
        if not msg.payload:  # a retained message being cleared
            return
        payload = bytes(msg.payload)
        try:
            site, kind = p.parse_topic(msg.topic)
            self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
            check_site(site)
            if kind == "outbox":
                outbox = p.OutboxBatch.from_bytes(payload)
                bodies = [storable_record(record) for record in outbox.records]
                for record, body in zip(outbox.records, bodies, strict=True):
                    batch.add_record(site, record, body)
                    if record.kind == "event":  # the only kind an alarm rule reads
                        batch.alarms += changes_for(self.rules, site, record)
                self.stats.records += len(outbox.records)
            elif kind == "state":
                state = storable(p.State.from_bytes(payload))
                batch.states.append((site, state))
                batch.alarms += changes_for(self.rules, site, state)
            elif kind == "metrics":
                metrics = storable(p.Metrics.from_bytes(payload))
                batch.metrics.append((site, metrics))
                batch.alarms += changes_for(self.rules, site, metrics)
            elif kind == "config/report":
                batch.reports.append((site, storable(p.ConfigReport.from_bytes(payload))))
            elif kind == "cmd/result":
                batch.results.append((site, storable(p.CommandResult.from_bytes(payload))))
            else:
                raise p.ProtocolError(f"unexpected topic kind {kind!r}")
            self.stats.accepted += 1
        except (p.ProtocolError, UnstorableJson) as exc:
            self.stats.malformed += 1
            log.debug("dropped malformed message on %s: %s", msg.topic, exc)

    async def _store(self, parsed: _Parsed, stop: asyncio.Event) -> bool:
        delay = 0.1
        while True:
            started = time.perf_counter()
            try:
                result = await self.store.ingest(parsed.batch)
                self.stats.store_s += time.perf_counter() - started
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

"""Simulated edges for the fleet's tests and benchmark: many site ids on one MQTT connection.

A real edge holds one connection (with its own last-will) per site; for load, one
paho connection here publishes for many site ids, which is what the broker and the
fleet see anyway: messages on ``bl/v1/site/{site}/...`` topics. It behaves like the
edge's outbox: records get a gapless per-site ``seq``, are kept until an ``ack`` covers
them, and ``resend_unacked()`` publishes again what is not acknowledged (after a
reconnect, as the edge does). Publish and ack times are kept per batch for latency.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from edge_core.telemetry import protocol as p
from fleet.mqtt import MqttConnection


@dataclass
class SiteStream:
    next_seq: int = 1
    acked: int = 0
    pending: dict[int, tuple[float, list[p.Record]]] = field(default_factory=dict)
    """Unacknowledged batches by their last seq: (first publish time, records)."""


class SimulatedEdges:
    """``async with SimulatedEdges(url, client_id) as edges:`` then publish for any site."""

    def __init__(self, url: str, client_id: str, *, record_bytes: int = 200) -> None:
        self.url = url
        self.client_id = client_id
        self.sites: dict[str, SiteStream] = {}
        self.latencies: list[float] = []
        """Seconds from a batch's first publish to the ack that covered it."""
        self.acked_records = 0
        self._filler = "x" * max(0, record_bytes - 120)
        self.mqtt: MqttConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()

    async def __aenter__(self) -> SimulatedEdges:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    async def connect(self) -> None:
        self.mqtt = MqttConnection(self.url, self.client_id, clean_session=True, max_inflight=65535)
        await self.mqtt.__aenter__()
        await self.mqtt.subscribe([(f"{p.PREFIX}/+/ack", 1)])
        self._reader = asyncio.create_task(self._read_acks(self.mqtt))

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.mqtt is not None:
            await self.mqtt.__aexit__(None, None, None)
            self.mqtt = None

    async def _read_acks(self, mqtt: MqttConnection) -> None:
        while True:
            msg = await mqtt.messages.get()
            try:
                site, _ = p.parse_topic(msg.topic)
                upto = p.Ack.from_bytes(bytes(msg.payload)).upto
            except p.ProtocolError:
                continue
            self.on_ack(site, upto, time.time())

    def on_ack(self, site: str, upto: int, now: float) -> None:
        stream = self.sites.get(site)
        if stream is None or upto <= stream.acked:  # another simulator's site, or an old ack
            return
        stream.acked = upto
        for last in [k for k in stream.pending if k <= upto]:
            sent, records = stream.pending.pop(last)
            self.latencies.append(now - sent)
            self.acked_records += len(records)
        self.changed.set()

    def make_records(self, site: str, count: int, kind: str = "event") -> list[p.Record]:
        stream = self.sites.setdefault(site, SiteStream())
        now = time.time()
        records = [
            p.Record(seq=stream.next_seq + i, kind=kind, at=now, body=self.body(kind, site, stream.next_seq + i, now))  # type: ignore[arg-type]
            for i in range(count)
        ]
        stream.next_seq += count
        return records

    def body(self, kind: str, site: str, seq: int, now: float) -> dict[str, Any]:
        if kind == "cdr":
            return {"call_id": f"{site}-{seq}", "from_number": f"06{seq % 100000000:08d}", "to_number": "100",
                    "destination": "queue:sales", "start_time": now - 60, "answer_time": now - 50,
                    "end_time": now, "disposition": "answered", "note": self._filler}
        return {"type": "sim", "n": seq, "note": self._filler}

    def publish_records(self, site: str, records: list[p.Record]) -> None:
        """Publish one outbox batch (QoS 1) and remember it until acknowledged."""
        assert self.mqtt is not None
        stream = self.sites.setdefault(site, SiteStream())
        self.mqtt.publish(p.topic(site, "outbox"), p.OutboxBatch(records=records).to_bytes(), qos=1)
        stream.pending.setdefault(records[-1].seq, (time.time(), records))

    def publish_batch(self, site: str, count: int, kind: str = "event") -> list[p.Record]:
        records = self.make_records(site, count, kind)
        self.publish_records(site, records)
        return records

    def resend_unacked(self) -> int:
        """Publish again every batch not yet covered by an ack; returns how many."""
        n = 0
        for site, stream in self.sites.items():
            for last in sorted(stream.pending):
                if last > stream.acked:
                    self.mqtt.publish(  # type: ignore[union-attr]
                        p.topic(site, "outbox"), p.OutboxBatch(records=stream.pending[last][1]).to_bytes(), qos=1
                    )
                    n += 1
        return n

    def publish_metrics(self, site: str, **gauges: float) -> None:
        assert self.mqtt is not None
        m = p.Metrics(at=time.time(), gauges=gauges or {"cpu": 0.1}, trunks={"wan": True}, queues={})
        self.mqtt.publish(p.topic(site, "metrics"), m.to_bytes(), qos=0)

    def unacked(self) -> int:
        return sum(s.next_seq - 1 - s.acked for s in self.sites.values())

    def all_acked(self) -> bool:
        return all(s.acked == s.next_seq - 1 for s in self.sites.values())

    def summary(self) -> dict[str, Any]:
        return {"sites": len(self.sites), "acked_records": self.acked_records, "unacked": self.unacked()}


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))

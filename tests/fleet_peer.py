"""The fleet's side of the MQTT protocol for one site, as a plain paho client in a test.

Not the fleet service: just enough of it to check what an edge says, through a real
broker. It stores outbox records by seq (dedup, as the fleet does on ``(site, seq)``),
acks the highest contiguous seq, keeps ``state``, ``config/report`` and ``cmd/result``
messages, and publishes configs and commands. paho's own thread runs it; what it
collected is read under a lock.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge_core.telemetry import protocol
from tests.sipp import wait_for


class FleetPeer:
    def __init__(self, port: int, site: str, *, auto_ack: bool = True) -> None:
        self.port = port
        self.site = site
        self.auto_ack = auto_ack
        self.lock = threading.Lock()
        self.records: dict[int, protocol.Record] = {}
        self.deliveries: Counter[int] = Counter()
        """How often each seq arrived (more than once: a resend the dedup removed)."""
        self.states: list[dict[str, Any]] = []
        self.metrics: list[protocol.Metrics] = []
        self.reports: list[protocol.ConfigReport] = []
        self.results: dict[str, protocol.CommandResult] = {}
        self.acked = 0
        self.malformed: list[str] = []
        # a persistent session (clean_session False): the broker keeps what the edge sends
        # while this peer reconnects, and keeps it across its own restart (persistence)
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"fleet-test-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv311, clean_session=False,
        )  # fmt: skip
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self.connected = threading.Event()

    def topic(self, kind: str) -> str:
        return protocol.topic(self.site, kind)

    # -- lifetime -----------------------------------------------------------------
    def start(self) -> FleetPeer:
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        wait_for(self.connected.is_set, 10, what="the fleet peer's CONNACK")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> FleetPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- paho's thread --------------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        kinds = ("state", "metrics", "outbox", "config/report", "cmd/result")
        client.subscribe([(self.topic(k), 1) for k in kinds])
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            self._take(message)
        except protocol.ProtocolError as exc:  # kept for the test to see, not raised in paho's thread
            with self.lock:
                self.malformed.append(f"{message.topic}: {exc}")

    def _take(self, message: paho.MQTTMessage) -> None:
        _, kind = protocol.parse_topic(message.topic)
        payload = bytes(message.payload)
        upto = 0
        with self.lock:
            if kind == "state":
                self.states.append(protocol.State.from_bytes(payload).model_dump())
            elif kind == "metrics":
                self.metrics.append(protocol.Metrics.from_bytes(payload))
            elif kind == "config/report":
                self.reports.append(protocol.ConfigReport.from_bytes(payload))
            elif kind == "cmd/result":
                result = protocol.CommandResult.from_bytes(payload)
                self.results[result.id] = result
            elif kind == "outbox":
                batch = protocol.OutboxBatch.from_bytes(payload)
                for record in batch.records:
                    self.deliveries[record.seq] += 1
                    self.records.setdefault(record.seq, record)
                while self.acked + 1 in self.records:
                    self.acked += 1
                upto = self.acked
        if kind == "outbox" and self.auto_ack:
            self.ack(upto)

    # -- acting as the fleet ----------------------------------------------------------
    def ack(self, upto: int) -> None:
        self.client.publish(self.topic("ack"), protocol.Ack(upto=upto).to_bytes(), qos=1)

    def push_config(self, envelope: protocol.ConfigEnvelope | bytes) -> None:
        payload = envelope if isinstance(envelope, bytes) else envelope.to_bytes()
        self.client.publish(self.topic("config"), payload, qos=1, retain=True)

    def command(self, op: str, **args: Any) -> str:
        cid = uuid.uuid4().hex
        command = protocol.Command(id=cid, op=op, args=args)
        self.client.publish(self.topic("cmd"), command.to_bytes(), qos=1)
        return cid

    # -- reading --------------------------------------------------------------------------
    def result(self, cid: str, timeout_s: float = 10) -> protocol.CommandResult:
        def answered() -> protocol.CommandResult | None:
            with self.lock:
                return self.results.get(cid)

        return wait_for(answered, timeout_s, what=f"the answer to command {cid}")  # type: ignore[no-any-return]

    def report(self, version: int, timeout_s: float = 15) -> protocol.ConfigReport:
        def reported() -> protocol.ConfigReport | None:
            with self.lock:
                return next((r for r in reversed(self.reports) if r.version == version), None)

        return wait_for(reported, timeout_s, what=f"the report of config v{version}")  # type: ignore[no-any-return]

    def last_state(self) -> dict[str, Any] | None:
        with self.lock:
            return self.states[-1] if self.states else None

    def of_kind(self, kind: str) -> list[protocol.Record]:
        with self.lock:
            return [r for _, r in sorted(self.records.items()) if r.kind == kind]

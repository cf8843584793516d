"""The edge's MQTT client: state, metrics, the outbox drain, config and commands.

``async with TelemetryClient(settings, site_id, edge, ...) as client:`` connects in
the background and keeps reconnecting (an explicit loop, exponential backoff from
``reconnect_min_s`` to ``reconnect_max_s`` with jitter) until the block ends; leaving it
flushes what is in flight (at most ``shutdown_flush_s``), publishes ``state`` offline
and disconnects cleanly. The edge never waits on it: calls are taken whether the broker
is there or not, and records wait in the outbox.

Per connection (see ../shared/ARCHITECTURE.md, "MQTT topics (v1)"):

* the last-will is ``protocol.OFFLINE`` on ``state``, retained; ``state`` online is
  published retained right after CONNACK, and again when it changes;
* ``ack``, ``config`` and ``cmd`` are subscribed (QoS 1);
* the outbox drains (``drain.OutboxDrain``) and ``metrics`` go out every
  ``metrics_interval_s`` (QoS 0: the next one replaces a lost one).

A retained ``config`` envelope is verified (ed25519, for this site), must not be older
than the version applied, is handed to the daemon to validate and apply, and answered
on ``config/report``: ``applied`` or ``rejected`` with the reason. The version already
applied is reported ``applied`` again (the broker redelivers it on every reconnect, and
the first report may have been lost). Commands are answered on ``cmd/result`` with the
command's id. A malformed payload is counted and dropped, never raised.

On an A/B box (``commands.box_root()``), each connection also publishes the update
agent's last result if it was never sent (``ROOT/data/update-last.json`` with ``"sent":
false``: the broker was out of reach when the agent finished) on ``cmd/result``, QoS 1,
and marks it sent only once the broker acknowledged it (PUBACK); a connection that drops
first leaves it for the next one. While an agent runs (it holds ``ROOT/data/update.lock``)
it sends its own result; the client looks again every ``UPDATE_RESULT_POLL_S`` until it
is done. See ``images.agent``.

The MQTT connection itself is ``mqtt.MqttLink`` (paho driven from this loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from pathlib import Path
from typing import Any, Protocol

from edge_core.config.schema import ConfigError, TelemetrySettings, broker_address
from edge_core.store.db import EdgeStore
from edge_core.telemetry import protocol
from edge_core.telemetry.commands import CommandFailed, LogRing, box_root, run_command
from edge_core.telemetry.drain import OutboxDrain
from edge_core.telemetry.mqtt import MqttError, MqttLink

log = logging.getLogger("edge.telemetry")

UPDATE_RESULT_POLL_S = 5.0
"""How often an update agent that is running is looked at again (its lock), for its result."""


class TelemetryEdge(Protocol):
    """What the client needs from the daemon."""

    maintenance: bool
    fleet_config_version: int | None
    """The fleet config version running (None: never applied one)."""

    def state(self) -> protocol.State: ...

    async def metrics(self) -> protocol.Metrics: ...

    async def apply_fleet_config(self, version: int, data: dict[str, Any]) -> str:
        """Validate and apply; raise ConfigError (paths and reasons) to reject. Returns a
        note for the report ("" or what waits for a restart)."""

    def set_maintenance(self, on: bool) -> None: ...

    def fleet_connected(self, up: bool) -> None:
        """The MQTT session came up or went (the WAN monitor's ``fleet`` signal)."""


def load_fleet_key(settings: TelemetrySettings) -> Any:
    """The fleet's public key from the settings (inline wins over the file), or None."""
    if settings.fleet_public_key:
        return protocol.load_public_key(settings.fleet_public_key.encode())
    if settings.fleet_public_key_file:
        return protocol.load_public_key(Path(settings.fleet_public_key_file).read_bytes())
    return None


def config_reason(exc: ConfigError) -> str:
    return "; ".join(f"{path}: {reason}" for path, reason in exc.problems)


class TelemetryClient:
    def __init__(self, settings: TelemetrySettings, site_id: str, edge: TelemetryEdge, store: EdgeStore, *,
                 logs: LogRing | None = None, fleet_key: Any = None) -> None:  # fmt: skip
        self.settings = settings
        self.site = site_id
        self.edge = edge
        self.store = store
        self.logs = logs
        self.fleet_key = fleet_key
        self.host, self.port = broker_address(settings.broker_url)
        self.topics = {kind: protocol.topic(site_id, kind) for kind in
                       ("state", "metrics", "outbox", "ack", "config", "config/report", "cmd", "cmd/result")}  # fmt: skip
        self.drain = OutboxDrain(
            store, self.topics["outbox"], batch_size=settings.batch_size,
            max_inflight_batches=settings.max_inflight_batches, ack_timeout_s=settings.ack_timeout_s,
        )  # fmt: skip
        self.counters = {"connects": 0, "connect_failures": 0, "malformed": 0, "configs_applied": 0,
                         "configs_rejected": 0, "commands": 0, "update_results_sent": 0}  # fmt: skip
        self.box_root: Path | None = box_root()
        """The A/B box this edge runs from (None: not one): where a pending update result is."""
        self.link: MqttLink | None = None
        self.connected = asyncio.Event()
        """Set while a connection is up (tests and the shutdown wait on it)."""
        self._inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifetime ----------------------------------------------------------------------
    async def __aenter__(self) -> TelemetryClient:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start(self) -> None:
        assert self._runner is None, "a TelemetryClient is not re-entrant"
        self._runner = asyncio.create_task(self._run(), name="telemetry")
        self._worker = asyncio.create_task(self._work(), name="telemetry-inbox")

    async def stop(self) -> None:
        """Flush what is in flight (bounded), say offline, disconnect, stop reconnecting."""
        self._stopping = True
        link = self.link
        if link is not None and link.is_open:
            flushed = await self.drain.wait_empty(self.settings.shutdown_flush_s)
            if not flushed:
                log.info("shutdown: %d outbox records left for the next start",
                         await self.store.outbox_backlog())  # fmt: skip
            with contextlib.suppress(MqttError, TimeoutError):
                done = link.publish(self.topics["state"], protocol.OFFLINE, qos=1, retain=True)
                await asyncio.wait_for(done, 2.0)
        for task in (self._runner, self._worker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if link is not None:
            await link.disconnect()

    # -- the reconnect loop --------------------------------------------------------------
    async def _run(self) -> None:
        s = self.settings
        delay = s.reconnect_min_s
        while not self._stopping:
            try:
                link = await MqttLink.connect(
                    self.host, self.port, f"edge-{self.site}", keepalive_s=s.keepalive_s,
                    connect_timeout_s=s.connect_timeout_s, protocol=s.protocol,
                    will=(self.topics["state"], protocol.OFFLINE), username=s.username,
                    password=s.password, on_message=self._on_message,
                )  # fmt: skip
            except MqttError as exc:
                self.counters["connect_failures"] += 1
                self.edge.fleet_connected(False)
                log.info("broker %s:%d: %s; again in %.1f s", self.host, self.port, exc, delay)
            else:
                self.counters["connects"] += 1
                delay = s.reconnect_min_s
                log.info("connected to broker %s:%d as site %s", self.host, self.port, self.site)
                try:
                    await self._session(link)
                except MqttError as exc:  # the connection went while the session set up
                    log.info("mqtt session ended: %s", exc)
                except Exception:  # a bug here must not end reconnecting: the next try may do
                    log.exception("mqtt session failed")
                finally:
                    self.connected.clear()
                    if not self._stopping:  # a shutdown is not a WAN loss
                        self.edge.fleet_connected(False)
                    if self.link is link and not self._stopping:
                        link.abort("session ended")
                if self._stopping:
                    return
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # backoff, not a wait for an event
            delay = min(delay * 2, s.reconnect_max_s)

    async def _session(self, link: MqttLink) -> None:
        self.link = link
        await link.subscribe([(self.topics[k], 1) for k in ("ack", "config", "cmd")])
        link.publish(self.topics["state"], self.edge.state().to_bytes(), qos=1, retain=True)
        self.connected.set()
        self.edge.fleet_connected(True)
        tasks = [
            asyncio.create_task(self.drain.run(link), name="telemetry-outbox"),
            asyncio.create_task(self._metrics(link), name="telemetry-metrics"),
        ]
        # ends by itself once the result is out (or there is none): not watched below
        update_result = asyncio.create_task(self._send_update_result(link), name="telemetry-update-result")
        try:
            waiting: set[asyncio.Future[Any]] = {link.closed, *tasks}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is link.closed or task.cancelled():
                    continue
                exc = task.exception()
                if exc is not None and not isinstance(exc, MqttError):
                    log.error("telemetry task failed", exc_info=exc)
        finally:  # (stop() flushes through the drain before it cancels this)
            for task in (*tasks, update_result):
                task.cancel()
            for task in (*tasks, update_result):
                with contextlib.suppress(asyncio.CancelledError, MqttError):
                    await task

    async def _send_update_result(self, link: MqttLink) -> None:
        """Publish the update agent's last result if it was never sent; mark it sent
        after the PUBACK. Never raises: a failure here must not cost the connection."""
        root = self.box_root
        if root is None:
            return
        from images import agent

        try:
            while True:
                try:
                    record = agent.pending_result(root)
                except BlockingIOError:  # an agent runs: it sends its own result
                    await asyncio.sleep(UPDATE_RESULT_POLL_S)  # look again: no event tells when it ends
                    continue
                if record is None:
                    return
                # resolves on PUBACK; MqttError if the connection goes first (the next one sends it)
                await link.publish(self.topics["cmd/result"], agent.result_payload(record), qos=1)
                self.counters["update_results_sent"] += 1
                # on the loop, not in a thread: the lock is never held while start_update looks at it
                marked = agent.mark_sent(root, record)
                log.info("update result %s sent after the fact%s", record["id"],
                         "" if marked else " (the result file changed meanwhile: not marked)")
                if marked:
                    return
        except MqttError as exc:
            log.info("update result not sent: %s", exc)
        except (OSError, ValueError) as exc:  # the file or its content: nothing to send
            log.warning("update result in %s: %s", root / agent.LAST_RESULT, exc)

    async def _metrics(self, link: MqttLink) -> None:
        while True:
            try:
                metrics = await self.edge.metrics()
            except Exception:  # a gauge that fails must not cost the connection
                log.exception("collecting metrics failed")
            else:
                link.publish(self.topics["metrics"], metrics.to_bytes(), qos=0)
            await asyncio.sleep(self.settings.metrics_interval_s)  # the reporting period

    def publish_state(self) -> None:
        """Publish ``state`` again (maintenance or config changed); dropped when offline:
        the next connection publishes it anyway."""
        self._publish("state", self.edge.state().to_bytes(), retain=True)

    def _publish(self, kind: str, payload: bytes, *, retain: bool = False) -> None:
        link = self.link
        if link is None or not link.is_open:
            log.info("not connected: %s not sent", kind)
            return
        try:
            link.publish(self.topics[kind], payload, qos=1, retain=retain)
        except MqttError as exc:
            log.info("%s not sent: %s", kind, exc)

    # -- incoming ------------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            site, kind = protocol.parse_topic(topic)
            if site != self.site:
                raise protocol.ProtocolError(f"topic of another site: {topic}")
            if kind == "ack":
                self.drain.on_ack(protocol.Ack.from_bytes(payload))
            elif kind in ("config", "cmd"):
                self._inbox.put_nowait((kind, payload))
        except protocol.ProtocolError as exc:
            self.counters["malformed"] += 1
            log.warning("dropped a message on %s: %s", topic, exc)

    async def _work(self) -> None:
        """Config envelopes and commands, one at a time, in arrival order."""
        while True:
            kind, payload = await self._inbox.get()
            try:
                if kind == "config":
                    await self._on_config(payload)
                else:
                    await self._on_command(payload)
            except Exception:
                log.exception("handling %s failed", kind)

    async def _on_config(self, payload: bytes) -> None:
        if not payload:  # the fleet cleared the retained config: nothing to do
            return
        try:
            envelope = protocol.ConfigEnvelope.from_bytes(payload)
        except protocol.ProtocolError as exc:
            self.counters["malformed"] += 1
            self._report(_version_of(payload), "rejected", str(exc))
            return
        version = envelope.version
        if self.fleet_key is None:
            self._report(version, "rejected", "no fleet public key configured (telemetry.fleet_public_key)")
            return
        try:
            protocol.verify_config(self.fleet_key, envelope, self.site)
        except protocol.ProtocolError as exc:
            self._report(version, "rejected", str(exc))
            return
        running = self.edge.fleet_config_version
        if running is not None and version < running:
            self._report(version, "rejected", f"v{version} is older than the applied v{running}")
            return
        if running == version:
            self._report(version, "applied", "already running")
            return
        try:
            note = await self.edge.apply_fleet_config(version, envelope.config)
        except ConfigError as exc:
            self._report(version, "rejected", config_reason(exc))
            return
        self._report(version, "applied", note)
        self.publish_state()

    def _report(self, version: int, status: str, reason: str = "") -> None:
        self.counters["configs_applied" if status == "applied" else "configs_rejected"] += 1
        log.log(logging.INFO if status == "applied" else logging.WARNING,
                "config v%d %s%s", version, status, f": {reason}" if reason else "")  # fmt: skip
        report = protocol.ConfigReport(version=version, status=status, reason=reason, at=time.time())  # type: ignore[arg-type]
        self._publish("config/report", report.to_bytes())

    async def _on_command(self, payload: bytes) -> None:
        try:
            command = protocol.Command.from_bytes(payload)
        except protocol.ProtocolError as exc:
            self.counters["malformed"] += 1
            cid = _id_of(payload)
            if cid:  # answer what can be answered: the fleet is waiting on that id
                self._publish("cmd/result", protocol.CommandResult(id=cid, ok=False, error=str(exc)).to_bytes())
            return
        self.counters["commands"] += 1
        extra = {"telemetry": {**self.counters, **{f"outbox.{k}": v for k, v in self.drain.counters.items()},
                               "outbox.acked": self.drain.acked, "outbox.sent": self.drain.sent}}  # fmt: skip
        try:
            result = await run_command(command.op, command.args, self.edge, self.store, self.logs, extra)
        except CommandFailed as exc:
            answer = protocol.CommandResult(id=command.id, ok=False, error=str(exc))
        else:
            answer = protocol.CommandResult(id=command.id, ok=True, result=result)
        self._publish("cmd/result", answer.to_bytes())
        if command.op == "maintenance":
            self.publish_state()


def _version_of(payload: bytes) -> int:
    """The version of an envelope that did not parse, if it has a readable one (else 0)."""
    import json

    try:
        value = json.loads(payload).get("version")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _id_of(payload: bytes) -> str:
    import json

    try:
        value = json.loads(payload).get("id")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return ""
    return value if isinstance(value, str) and 0 < len(value) <= 64 else ""

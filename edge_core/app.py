"""The edge daemon: wires config, store, media relay and the SIP stack onto one loop.

``branchline edge run`` builds an :class:`EdgeDaemon` and runs it until SIGTERM or
SIGINT. Shutdown refuses new calls (503), lets in-flight transactions finish, hangs up
calls still up (BYE on both legs, a CDR each), flushes the store, and returns 0.

A site config applied while running (from the fleet over MQTT, or ``POST /v1/config``
on the control API) goes through :meth:`EdgeDaemon.reconfigure`: validated like
``edge check``, swapped in without dropping calls (:meth:`EdgeDaemon.apply_config`),
and kept in the store, so a restart comes back on it rather than on the file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cython_ext
from edge_core.acd.stats import interval_bounds
from edge_core.api.view import EdgeView
from edge_core.config.changes import redacted, restart_fields
from edge_core.config.schema import ConfigError, SiteConfig, parse_config
from edge_core.gcstats import tune_for_latency, untune
from edge_core.media.engine import EngineRelay
from edge_core.media.recorder import CallRecorder
from edge_core.routing.dialplan import DialPlan
from edge_core.routing.trunks import TrunkChanged
from edge_core.routing.wan import ModeChanged
from edge_core.sip.core import SipCore
from edge_core.sip.hosted import VoicemailMessage
from edge_core.sip.registrar import Binding, BindingChange
from edge_core.sip.transaction import TimerSettings, TransactionLayer
from edge_core.sip.transport import SipEndpoint, TcpConnection, UdpProtocol
from edge_core.store.db import (
    AppliedConfig,
    BindingRow,
    CdrRow,
    EdgeStore,
    OutboxQuota,
    RecordingRow,
    TaskRow,
)
from edge_core.telemetry import protocol
from edge_core.telemetry.commands import LogRing

log = logging.getLogger("edge")

SHUTDOWN_GRACE_S = 10.0
EXIT_CANNOT_LISTEN = 3
"""``edge run``'s exit status when the SIP ports cannot be bound (2: invalid config)."""


@dataclass(frozen=True)
class IntervalRows:
    """One closed ACD interval's rows, on their way to the store."""

    rows: list[Any]


def _binding_row(b: Binding) -> BindingRow:
    return BindingRow(
        aor=b.aor,
        contact=b.contact,
        expires_at=b.expires_at,
        call_id=b.call_id,
        cseq=b.cseq,
        source=f"{b.transport}:{b.source[0]}:{b.source[1]}",
        user_agent=b.user_agent,
    )


def _binding(row: BindingRow) -> Binding:
    transport, host, port = row.source.rsplit(":", 2)
    return Binding(
        aor=row.aor,
        extension=row.aor.removeprefix("sip:").partition("@")[0],
        contact=row.contact,
        expires_at=row.expires_at,
        call_id=row.call_id,
        cseq=row.cseq,
        source=(host, int(port)),
        transport=transport,
        user_agent=row.user_agent or "",
    )


def _grow_receive_buffer(sock: socket.socket, size: int) -> None:
    """Let the SIP socket absorb a burst: at a few hundred calls/s a 50 ms stall of the
    loop is ~1 000 datagrams, past Linux's default 208 KiB, and a dropped 200 OK turns
    into retransmissions. SO_RCVBUFFORCE (root) goes past net.core.rmem_max."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2  # Linux reports 2x
    if granted < size:
        log.warning("SIP UDP receive buffer is %d bytes, asked %d (raise net.core.rmem_max)", granted, size)


def load_prompts(config: SiteConfig) -> dict[str, bytes]:
    """The site's prompt set, generating the defaults that are missing; a flow naming a
    prompt that is not there is a configuration error (with the flow's path)."""
    if not (config.flows or config.agents):
        return {}
    from edge_core.config.schema import ConfigError
    from edge_core.ivr.model import check_prompts
    from edge_core.ivr.prompts import DEFAULT_TEXTS, PromptSet, default_prompts

    directory = Path(config.prompts.dir)
    missing = [name for name in DEFAULT_TEXTS if not (directory / f"{name}.wav").is_file()]
    if missing:
        # generate aside and copy only what is missing: a technician's own recording of
        # a prompt is never overwritten
        log.info("generating %d default prompts in %s (%s)", len(missing), directory, config.prompts.generate)
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as scratch:
            default_prompts(scratch, engine=config.prompts.generate)
            for name in missing:
                shutil.copyfile(Path(scratch) / f"{name}.wav", directory / f"{name}.wav")
    prompts = PromptSet.load(directory)
    problems = [
        problem
        for name, flow in config.flows.items()
        for problem in check_prompts(flow, set(prompts), prefix=f"flows.{name}")
    ]
    if problems:
        raise ConfigError(str(directory), problems)
    return dict(prompts.items())


def fetch_json(url: str, timeout_s: float) -> dict[str, Any] | None:
    """GET a lookup URL: its JSON object; ``{}`` for 404 (the caller is not known);
    None for anything else (unreachable, timeout, not JSON): the flow's fallback."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (URL from the site config)
            data = json.loads(response.read(1_000_000))
    except urllib.error.HTTPError as exc:
        return {} if exc.code == 404 else None
    except (OSError, ValueError) as exc:
        log.info("lookup %s failed: %s", url, exc)
        return None
    return data if isinstance(data, dict) else None


def write_mono_wav(path: Path, pcm: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(pcm)


class EdgeDaemon:
    def __init__(self, config: SiteConfig, ready_file: str | None = None) -> None:
        self.config = config
        self.ready_file = ready_file
        self.stopping = asyncio.Event()
        self.store: EdgeStore | None = None
        self.view: EdgeView | None = None
        self._writes: asyncio.Queue[object] = asyncio.Queue()
        # resolves to {"udp": (host, port), "tcp": (host, port)} once the edge listens
        self._interval_start: float | None = None  # where the open ACD interval began
        self._lookups: set[asyncio.Task[None]] = set()  # http lookups in flight
        self._background: set[asyncio.Task[None]] = set()  # event writes in flight
        self.core: SipCore | None = None
        self.endpoint: SipEndpoint | None = None
        self.telemetry: Any = None  # the TelemetryClient when telemetry is enabled
        self.maintenance = False
        """New calls get 503 while set (the fleet's ``maintenance`` command)."""
        self.fleet_config_version: int | None = None
        """The fleet config version running (None: never applied one)."""
        self.config_origin = "file"
        self.config_applied_at: float | None = None
        self.pending_restart: list[str] = []
        """Fields of the running config that take effect at the next start."""
        self.started_at = time.time()
        self._config_lock = asyncio.Lock()
        self.listening: asyncio.Future[dict[str, tuple[str, int]]] = asyncio.get_running_loop().create_future()

    def stop(self) -> None:
        self.stopping.set()

    async def flush(self) -> None:
        """Return once every record produced so far is in the store."""
        await self._writes.join()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        started_at = self.started_at = time.time()
        self.store = store = await EdgeStore.open(self.config.store.path)
        store.quota = OutboxQuota(self.config.store.outbox_max_bytes, tuple(self.config.store.shed_order))
        try:
            await self._restore_applied_config(store)
            config = self.config
            prompts = load_prompts(config)  # before anything binds: a bad prompt set starts nothing
        except BaseException:
            await store.close()
            raise
        media = EngineRelay(
            config.media.host,
            config.media.rtp_port_min,
            config.media.rtp_port_max,
            rtp_timeout_s=config.media.rtp_timeout_s,
        )
        await media.start()
        recorder = None
        if config.media.record_calls:
            recorder = CallRecorder(media, config.media.recordings_dir, self._writes.put_nowait)
        layer = TransactionLayer(TimerSettings(t1_s=config.sip.t1_ms / 1000.0))
        endpoint = SipEndpoint(layer, None, config.sip.max_message_bytes)
        host = config.sip.listen_host
        udp = None
        try:
            udp, _ = await loop.create_datagram_endpoint(lambda: UdpProtocol(endpoint), local_addr=(host, config.sip.udp_port))
            _grow_receive_buffer(udp.get_extra_info("socket"), config.sip.udp_receive_buffer_bytes)
            tcp_server = await loop.create_server(lambda: TcpConnection(endpoint), host, config.sip.tcp_port)
        except OSError as exc:  # a port taken, an address not ours: say so and exit, never hang
            log.error("cannot listen for SIP on %s (udp %d, tcp %d): %s", host, config.sip.udp_port,
                      config.sip.tcp_port, exc)  # fmt: skip
            if udp is not None:
                udp.close()
            await media.stop()  # its native thread would keep the process alive
            await store.close()
            return EXIT_CANNOT_LISTEN
        local = {
            "udp": udp.get_extra_info("sockname")[:2],
            "tcp": tcp_server.sockets[0].getsockname()[:2],
        }
        core = SipCore(config, layer, media, local, time.time, os.urandom(32), recorder, prompts)
        endpoint.core = core
        self.core, self.endpoint = core, endpoint
        self.view = view = EdgeView(config, core, endpoint, media, started_at, queue_limit=config.api.event_queue_limit)
        view.config_control = self
        core.hosted.on_agent_change = view.agent_changed
        core.on_routing_event = self._routing_event

        def on_media_event(event: tuple[object, ...]) -> None:
            view.on_media_event(event)  # first: the B2BUA may end the call
            core.b2bua.on_media_event(event, loop.time())
            endpoint.step()

        media.add_listener(on_media_event)

        def http_lookup(url: str, timeout_s: float, done: Callable[[dict[str, Any] | None, float], None]) -> None:
            async def fetch() -> None:
                result = await asyncio.to_thread(fetch_json, url, timeout_s)
                done(result, loop.time())
                endpoint.step()

            task = loop.create_task(fetch())
            self._lookups.add(task)
            task.add_done_callback(self._lookups.discard)

        core.hosted.http_lookup = http_lookup
        core.registrar.restore([_binding(r) for r in await store.load_bindings(time.time())], time.time())
        endpoint.after_step = lambda: self._collect(core)
        writer = asyncio.create_task(self._write_records())
        api = None
        if config.api.socket:
            from edge_core.api.http import create_app, serve  # FastAPI only when the API is on

            api = await serve(create_app(view, keepalive_s=config.api.sse_keepalive_s), config.api.socket)
        ticker = asyncio.create_task(self._tick(view))
        lag_watch = asyncio.create_task(self._watch_lag(core))
        logs = None
        if config.telemetry.enabled:
            logs = LogRing(config.telemetry.log_lines)
            logging.getLogger().addHandler(logs)
            await self._start_telemetry(logs)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        kernels = cython_ext.implementations()
        log.info(
            "edge %s listening sip udp %s:%d tcp %s:%d, media %s, kernels %s",
            config.site.id, *local["udp"], *local["tcp"], media.implementation, kernels,
        )
        gc_pauses = tune_for_latency()
        self._write_ready(local, media.implementation, kernels)
        self.listening.set_result(dict(local))
        endpoint.step()  # arm the core's first timers (trunk keepalives) before any traffic
        expiry = asyncio.create_task(self._expire_bindings(core, endpoint))
        flushing = asyncio.create_task(self._flush_recordings(recorder)) if recorder else None
        intervals = asyncio.create_task(self._close_intervals(core))

        await self.stopping.wait()
        log.info("stopping: refusing new calls, finishing transactions")
        endpoint.accepting_new = False
        await self._drain(core, layer, endpoint)
        expiry.cancel()
        intervals.cancel()
        self._close_interval(core, time.time())  # the partial interval is kept too
        if flushing is not None:
            flushing.cancel()
        if recorder is not None:
            await recorder.close()
            await asyncio.sleep(0)  # let the writer's last call_soon_threadsafe callbacks run
        self._collect(core)
        await self._writes.join()
        if self.telemetry is not None:
            await self.telemetry.stop()  # after the last records reached the outbox
        if logs is not None:
            logging.getLogger().removeHandler(logs)
        ticker.cancel()
        lag_watch.cancel()
        if api is not None:
            await api.stop()  # after the drain: the shutdown's call_ended events went out
        writer.cancel()
        endpoint.close()
        tcp_server.close()
        await media.stop()
        await store.close()
        if self.ready_file:
            Path(self.ready_file).unlink(missing_ok=True)
        log.info("stopped; %s; %s", dict(endpoint.counters), gc_pauses.summary())
        untune(gc_pauses)
        return 0

    # -- the site config, applied while running ----------------------------------------------
    async def _restore_applied_config(self, store: EdgeStore) -> None:
        """Come back on the config last applied (fleet or API) rather than the file's.
        The store stays where the file says: the applied config is found in it."""
        applied = await store.load_applied_config()
        if applied is None:
            return
        data = dict(applied.config)
        data["store"] = {**data.get("store", {}), "path": self.config.store.path}
        try:
            restored = parse_config(data, f"applied config ({applied.origin})")
        except ConfigError as exc:  # e.g. a newer schema refused it: the file is valid
            log.error("not restoring the applied config: %s", exc)
            return
        if restored.site.id != self.config.site.id:
            log.error("not restoring the applied config: it is for site %s", restored.site.id)
            return
        self.config = restored
        self.fleet_config_version = applied.version
        self.config_origin = applied.origin
        self.config_applied_at = applied.applied_at
        log.info("running the config applied by %s (version %s)", applied.origin, applied.version)

    async def reconfigure(self, data: object, origin: str, version: int | None = None) -> str:
        """Validate ``data`` (a SiteConfig mapping) as ``edge check`` does, apply it
        without dropping calls, keep it for the next start. ConfigError (every bad
        field's path and reason) changes nothing. Returns a note: "" or which fields
        wait for a restart."""
        async with self._config_lock:
            new = parse_config(data, origin)
            old = self.config
            if new.site.id != old.site.id:
                raise ConfigError(origin, [("site.id", f"is {old.site.id!r} on this edge and cannot change while it runs")])
            prompts = await asyncio.to_thread(load_prompts, new)  # may generate; raises ConfigError
            self.apply_config(new, origin, prompts=prompts)
            record = AppliedConfig(version if version is not None else self.fleet_config_version, origin,
                                   new.model_dump(mode="json"), time.time())  # fmt: skip
            try:
                assert self.store is not None
                await self.store.save_applied_config(record)
            except Exception as exc:
                self.apply_config(old, "rollback")
                raise ConfigError(origin, [("(store)", f"cannot keep the config: {exc}")]) from exc
            self.fleet_config_version = record.version
            self.config_origin = origin
            self.config_applied_at = record.applied_at
            await self.store.insert_event(record.applied_at, {"type": "config_applied", "origin": origin,
                                          "version": record.version, "pending_restart": self.pending_restart})  # fmt: skip
            if self.telemetry is not None:
                self.telemetry.publish_state()
            return f"restart needed for: {', '.join(self.pending_restart)}" if self.pending_restart else ""

    async def apply_fleet_config(self, version: int, data: dict[str, Any]) -> str:
        return await self.reconfigure(data, "fleet", version)

    def apply_config(self, new: SiteConfig, origin: str, *, prompts: dict[str, bytes] | None = None) -> None:
        """Swap in what can change under running calls, all at once (no await): calls in
        progress keep the route, legs and flow run they have. What is bound at start
        waits for a restart (``pending_restart``)."""
        core = self.core
        if core is None:  # not running yet: the whole config is taken at start
            self.config = new
            return
        if prompts is None:
            prompts = load_prompts(new)
        hosted = core.hosted
        can_reconfigure = hasattr(hosted, "reconfigure")
        self.pending_restart = restart_fields(self.config, new, contact_center_swappable=can_reconfigure)
        sip = new.sip
        dialplan = DialPlan(new)
        core.config = new
        core.passwords = {e.number: e.password for e in new.extensions}
        core.dialplan = dialplan
        core.registrar.min_expires_s = sip.registration_min_expires_s
        core.registrar.max_expires_s = sip.registration_max_expires_s
        core.b2bua.ring_timeout_s = sip.ring_timeout_s
        core.b2bua.user_agent = sip.user_agent
        hosted.dial_plan = dialplan
        now = self.endpoint.loop.time() if self.endpoint else time.monotonic()
        core.reconfigure_routing(new, now)  # trunks, keepalives, the WAN settings
        core.dialplan = dialplan
        if can_reconfigure:
            hosted.prompts = prompts
            hosted.reconfigure(new, now)
        if self.view is not None:
            self.view.reconfigure(new)
        self.config = new
        log.info("config applied (%s)%s", origin,
                 f"; restart needed for {', '.join(self.pending_restart)}" if self.pending_restart else "")  # fmt: skip
        if self.endpoint is not None:
            self.endpoint.step()

    def config_info(self) -> dict[str, Any]:
        """The running config for ``GET /v1/config``: version, origin, and the config
        with its secrets redacted."""
        return {
            "version": self.fleet_config_version,
            "origin": self.config_origin,
            "applied_at": self.config_applied_at,
            "pending_restart": list(self.pending_restart),
            "config": redacted(self.config.model_dump(mode="json")),
        }

    # -- telemetry ----------------------------------------------------------------------------
    async def _start_telemetry(self, logs: LogRing) -> None:
        from edge_core.telemetry.client import TelemetryClient, load_fleet_key

        settings = self.config.telemetry
        try:
            key = load_fleet_key(settings)
        except (OSError, ValueError) as exc:
            log.error("fleet public key unusable (%s): fleet configs will be rejected", exc)
            key = None
        site = settings.site_id or self.config.site.id
        assert self.store is not None
        self.telemetry = TelemetryClient(settings, site, self, self.store, logs=logs, fleet_key=key)
        self.telemetry.start()

    def fleet_connected(self, up: bool) -> None:
        if self.core is not None and self.endpoint is not None and not self.stopping.is_set():
            self.core.fleet_connected(up, self.endpoint.loop.time())
            self.endpoint.step()

    def _mode_since(self) -> float | None:
        """When the current mode began, on the wall clock."""
        if self.core is None or self.endpoint is None:
            return None
        return time.time() - (self.endpoint.loop.time() - self.core.wan.since)

    def _routing_event(self, event: TrunkChanged | ModeChanged) -> None:
        """A trunk up/down or a mode change: the event stream, the outbox (the fleet
        raises and clears its alarms from these), and a new retained state."""
        if self.view is not None:
            self.view.routing_changed(event)
        if isinstance(event, TrunkChanged):
            body: dict[str, Any] = {"type": "trunk", "trunk": event.trunk, "kind": event.kind,
                                    "up": event.up, "cause": event.cause}  # fmt: skip
        else:
            body = {"type": "mode", "old": event.old.value, "new": event.new.value, "cause": event.cause,
                    "previous_s": round(event.previous_s, 3)}  # fmt: skip
            if self.telemetry is not None:
                self.telemetry.publish_state()
        if self.store is not None:
            task = asyncio.get_running_loop().create_task(self.store.insert_event(time.time(), body))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def set_maintenance(self, on: bool, reason: str = "fleet") -> None:
        """Maintenance: new calls get 503 (the endpoint's refusal), calls up go on."""
        self.maintenance = on
        if self.endpoint is not None and not self.stopping.is_set():
            self.endpoint.accepting_new = not on
        log.warning("maintenance mode %s", "on" if on else "off")
        if self.store is not None:
            task = asyncio.get_running_loop().create_task(
                self.store.insert_event(time.time(), {"type": "maintenance", "on": on, "reason": reason})
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def state(self) -> protocol.State:
        return protocol.State(
            status="online",
            version=self.view.version if self.view is not None else "",
            mode=self.core.mode.value if self.core is not None else "normal",
            mode_since=self._mode_since(),
            config_version=self.fleet_config_version,
            started_at=self.started_at,
            kernels=cython_ext.implementations(),
            at=time.time(),
        )

    async def metrics(self) -> protocol.Metrics:
        from edge_core.telemetry.metrics import site_metrics

        assert self.store is not None and self.view is not None
        backlog = await self.store.outbox_backlog()
        metrics = site_metrics(self.view, self.config.store.path, backlog)
        gauges = {**metrics.gauges, "maintenance": 1.0 if self.maintenance else 0.0}
        return metrics.model_copy(update={"gauges": gauges})

    async def _drain(self, core: SipCore, layer: TransactionLayer, endpoint: SipEndpoint) -> None:
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        while layer.in_flight_count() and time.monotonic() < deadline:
            await self._next_step(endpoint)
        now = endpoint.loop.time()
        core.b2bua.hang_up_all(now)
        endpoint.step(now)
        while layer.in_flight_count() and time.monotonic() < deadline:
            await self._next_step(endpoint)

    async def _next_step(self, endpoint: SipEndpoint) -> None:
        """Wait until the endpoint handles something (a message or a timer), or 50 ms."""
        waiter = endpoint.loop.create_future()
        previous = endpoint.after_step

        def _done() -> None:
            if previous is not None:
                previous()
            if not waiter.done():
                waiter.set_result(None)

        endpoint.after_step = _done
        try:
            await asyncio.wait_for(waiter, 0.05)
        except TimeoutError:
            pass
        finally:
            endpoint.after_step = previous

    def _collect(self, core: SipCore) -> None:
        """Queue what the stack produced for the store (CDRs, binding changes)."""
        if core.b2bua.records:
            if self.view is not None:
                self.view.on_records(core.b2bua.records)
            for record in core.b2bua.records:
                self._writes.put_nowait(record)
            core.b2bua.records.clear()
        if core.registrar.changes:
            if self.view is not None:
                self.view.on_records(core.registrar.changes)
            for change in core.registrar.changes:
                self._writes.put_nowait(change)
            core.registrar.changes.clear()

    async def _write_records(self) -> None:
        """Write what the stack produced, in order; CDRs that piled up go in one batch."""
        assert self.store is not None
        while True:
            batch = [await self._writes.get()]
            while not self._writes.empty():
                batch.append(self._writes.get_nowait())
            cdrs: list[CdrRow] = []
            try:
                for item in batch:
                    if isinstance(item, CdrRow):
                        cdrs.append(item)
                        continue
                    if cdrs:
                        await self.store.insert_cdrs(cdrs)
                        cdrs = []
                    if isinstance(item, RecordingRow):
                        await self.store.insert_recording(item)
                    elif isinstance(item, TaskRow):
                        await self.store.insert_task(item)
                    elif isinstance(item, VoicemailMessage):
                        await self._store_voicemail(item)
                    elif isinstance(item, IntervalRows):
                        await self.store.insert_intervals(item.rows)
                    elif isinstance(item, BindingChange):
                        if item.removed:
                            await self.store.delete_binding(item.binding.aor, item.binding.contact)
                        else:
                            await self.store.upsert_binding(_binding_row(item.binding))
                if cdrs:
                    await self.store.insert_cdrs(cdrs)
            except Exception:
                log.exception("store write failed for a batch of %d records", len(batch))
            finally:
                for _ in batch:
                    self._writes.task_done()

    async def _store_voicemail(self, message: VoicemailMessage) -> None:
        """Write the message as a mono WAV off the loop, then index it."""
        assert self.store is not None
        path = Path(self.config.media.voicemail_dir) / message.mailbox / f"{message.call_id}.wav"
        await asyncio.to_thread(write_mono_wav, path, message.pcm)
        await self.store.insert_voicemail(
            message.call_id, message.mailbox, message.caller, str(path),
            message.received_at, len(message.pcm) / 2 / 8000,
        )  # fmt: skip

    async def _close_intervals(self, core: SipCore) -> None:
        """Close each 15-minute ACD interval at its boundary in the site's time zone."""
        while True:
            _, end = interval_bounds(time.time(), self.config.site.timezone)
            await asyncio.sleep(max(0.0, end - time.time()))  # until the boundary
            self._close_interval(core, end)

    def _close_interval(self, core: SipCore, end: float) -> None:
        center = core.hosted.center
        if not (self.config.queues or self.config.agents):
            return
        start = self._interval_start if self._interval_start is not None else interval_bounds(end - 1e-3, self.config.site.timezone)[0]
        rows = center.close_interval(start, end)
        self._interval_start = end
        if rows:
            self._writes.put_nowait(IntervalRows(rows))

    async def _watch_lag(self, core: SipCore) -> None:
        """Overload protection: how late a 50 ms sleep wakes is how far behind the loop
        is. Past ``sip.overload_lag_ms`` new calls are refused (503); back below half
        of it for a second, they are taken again."""
        limit = self.config.sip.overload_lag_ms / 1000.0
        if limit <= 0:
            return
        loop = asyncio.get_running_loop()
        period, calm_since = 0.05, None
        while True:
            start = loop.time()
            await asyncio.sleep(period)  # the probe itself: its lateness is the measurement
            now = loop.time()
            lag = now - start - period
            if lag > limit and not core.overloaded:
                core.overloaded = True
                log.warning("overloaded: the loop runs %.0f ms late; new calls get 503 until it catches up", lag * 1000)
            elif core.overloaded:
                calm_since = (calm_since or now) if lag < limit / 2 else None
                if calm_since is not None and now - calm_since >= 1.0:
                    core.overloaded, calm_since = False, None
                    log.warning("overload over: taking new calls again (%d refused so far)",
                                core.counters["overload.refused"])  # fmt: skip

    async def _tick(self, view: EdgeView) -> None:
        while True:
            await asyncio.sleep(self.config.api.stats_interval_s)  # the stats period
            view.tick()

    async def _flush_recordings(self, recorder: CallRecorder) -> None:
        interval = self.config.media.recording_flush_interval_s
        while True:
            await asyncio.sleep(interval)  # the flush period, not a wait for an event
            recorder.poll()

    async def _expire_bindings(self, core: SipCore, endpoint: SipEndpoint) -> None:
        while True:
            await asyncio.sleep(30)  # housekeeping period, not a wait for an event
            core.registrar.expire(time.time())
            self._collect(core)

    def _write_ready(self, local: dict[str, tuple[str, int]], media: str, kernels: dict[str, str]) -> None:
        if not self.ready_file:
            return
        info = {
            "pid": os.getpid(),
            "site": self.config.site.id,
            "sip_udp": list(local["udp"]),
            "sip_tcp": list(local["tcp"]),
            "media": media,
            "kernels": kernels,
            "api_socket": os.path.abspath(self.config.api.socket) if self.config.api.socket else None,
        }
        path = Path(self.ready_file)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(path)  # atomic: a reader never sees half a file


def run_edge(config: SiteConfig, ready_file: str | None = None) -> int:
    async def main() -> int:
        return await EdgeDaemon(config, ready_file).run()

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; this is for odd platforms
        return asyncio.run(main())
    return uvloop.run(main())

"""A thin asyncio adapter over one paho-mqtt 2.x client connection (MQTT 3.1.1).

Written here rather than taken from aiomqtt because the fleet needs two things that
wrapper does not expose: ``manual_ack`` (the PUBACK of an ingested message is sent only
after the database commit, so a worker killed before it commits gets the message
redelivered) and a per-connection object it can drop and rebuild in its reconnect loop.
It is the same pattern as paho's own ``examples/loop_asyncio.py``: the loop watches the
socket and calls ``loop_read`` / ``loop_write``; a task calls ``loop_misc`` every second
(keepalive pings). No threads.

One :class:`MqttConnection` is one session attempt: ``async with`` connects and waits for
CONNACK, ``messages`` is the queue of incoming messages, ``lost`` completes when the
connection drops. Reconnecting is the caller's outer loop (a new object each time).

Credentials travel in the broker URL (``mqtt://user:password@host:port``, percent-encoded
where needed) or as ``username``/``password``; :func:`redact_broker_url` is what goes into logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import unquote, urlparse

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

log = logging.getLogger(__name__)



BROKER_ENV = "BRANCHLINE_FLEET_BROKER"
"""The fleet's broker URL (it may hold the fleet's MQTT password) when not on the command line."""

class MqttError(ConnectionError):
    """The broker refused us, could not be reached, or the connection dropped."""


def parse_broker_url(url: str) -> tuple[str, int]:
    """``mqtt://host:port`` (port 1883 when omitted) -> ``(host, port)``."""
    parsed = urlparse(url if "://" in url else f"mqtt://{url}")
    if parsed.scheme not in ("mqtt", "tcp") or not parsed.hostname:
        raise ValueError(f"broker URL {url!r}: expected mqtt://host:port")
    return parsed.hostname, parsed.port or 1883


def broker_credentials(url: str) -> tuple[str | None, str | None]:
    """``(username, password)`` of ``mqtt://user:password@host:port``; None for absent parts."""
    parsed = urlparse(url if "://" in url else f"mqtt://{url}")
    user = unquote(parsed.username) if parsed.username is not None else None
    password = unquote(parsed.password) if parsed.password is not None else None
    return user, password


def public_broker_url(url: str) -> str:
    """``url`` without its credentials (what a box or a log line may see)."""
    parsed = urlparse(url if "://" in url else f"mqtt://{url}")
    if "@" not in parsed.netloc:
        return url
    return parsed._replace(netloc=parsed.netloc.rpartition("@")[2]).geturl()


def redact_broker_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (the username stays: it helps)."""
    user, password = broker_credentials(url)
    if password is None:
        return url
    parsed = urlparse(url if "://" in url else f"mqtt://{url}")
    return parsed._replace(netloc=f"{parsed.username}:***@{parsed.netloc.rpartition('@')[2]}").geturl()


class MqttConnection:
    """One paho client, connected for the lifetime of the ``async with`` block."""

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        clean_session: bool = True,
        manual_ack: bool = False,
        keepalive_s: int = 30,
        will: tuple[str, bytes, bool] | None = None,
        max_inflight: int = 1000,
        connect_timeout_s: float = 10.0,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        """``username``/``password`` default to the credentials in ``url``."""
        self.host, self.port = parse_broker_url(url)
        self.keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=paho.MQTTv311,
            reconnect_on_failure=False,
            manual_ack=manual_ack,
        )
        if username is None:
            username, url_password = broker_credentials(url)
            password = password if password is not None else url_password
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=will[2])
        self.messages: asyncio.Queue[paho.MQTTMessage] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._connected: asyncio.Future[None] = self._loop.create_future()
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._misc: asyncio.Task[None] | None = None
        self._sock: Any = None
        c = self.client
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_publish = self._on_publish
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write

    # -- paho callbacks (all on the loop's thread) ---------------------------------

    def _on_socket_open(self, client: paho.Client, _ud: Any, sock: Any) -> None:
        self._sock = sock
        self._loop.add_reader(sock, client.loop_read)
        self._misc = self._loop.create_task(self._misc_loop())

    def _on_socket_close(self, client: paho.Client, _ud: Any, sock: Any) -> None:
        self._forget_socket()

    def _on_register_write(self, client: paho.Client, _ud: Any, sock: Any) -> None:
        self._loop.add_writer(sock, client.loop_write)

    def _on_unregister_write(self, client: paho.Client, _ud: Any, sock: Any) -> None:
        self._loop.remove_writer(sock)

    async def _misc_loop(self) -> None:
        while self.client.loop_misc() == paho.MQTT_ERR_SUCCESS:
            await asyncio.sleep(1.0)

    def _on_connect(self, client: paho.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if self._connected.done():
            return
        if reason.is_failure:
            self._connected.set_exception(MqttError(f"broker refused the connection: {reason}"))
        else:
            self._connected.set_result(None)

    def _on_disconnect(self, client: paho.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        error = MqttError(f"disconnected: {reason}")
        if not self._connected.done():
            self._connected.set_exception(error)
        if not self.lost.done():
            self.lost.set_result(None)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(error)
        self._pending.clear()

    def _on_message(self, client: paho.Client, _ud: Any, message: paho.MQTTMessage) -> None:
        self.messages.put_nowait(message)

    def _on_subscribe(self, client: paho.Client, _ud: Any, mid: int, codes: Any, _props: Any) -> None:
        self._resolve(mid, list(codes))

    def _on_publish(self, client: paho.Client, _ud: Any, mid: int, _reason: Any, _props: Any) -> None:
        self._resolve(mid, None)

    def _resolve(self, mid: int, value: Any) -> None:
        fut = self._pending.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(value)

    # -- API -----------------------------------------------------------------------

    async def __aenter__(self) -> MqttConnection:
        # paho's connect() is a blocking TCP connect: bounded by connect_timeout, and a
        # worker has nothing else to do meanwhile
        self.client.connect_timeout = self.connect_timeout_s
        try:
            self.client.connect(self.host, self.port, keepalive=self.keepalive_s)
        except (TimeoutError, OSError) as exc:
            raise MqttError(f"cannot reach {self.host}:{self.port}: {exc}") from exc
        try:
            await asyncio.wait_for(asyncio.shield(self._connected), self.connect_timeout_s)
        except BaseException:
            self._drop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self.lost.done():
            self.client.disconnect()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.lost), 2.0)
        self._drop()

    def _forget_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None and sock.fileno() >= 0:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
        if self._misc is not None:
            self._misc.cancel()

    def _drop(self) -> None:
        sock = self._sock
        self._forget_socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    async def subscribe(self, topics: list[tuple[str, int]]) -> list[Any]:
        """Subscribe and wait for the SUBACK; a refused topic raises MqttError."""
        result, mid = self.client.subscribe(topics)
        if result != paho.MQTT_ERR_SUCCESS or mid is None:
            raise MqttError(f"subscribe failed: {paho.error_string(result)}")
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._pending[mid] = fut
        codes = await asyncio.wait_for(fut, self.connect_timeout_s)
        if any(getattr(c, "is_failure", False) for c in codes):
            raise MqttError(f"broker refused subscription(s) {topics}: {codes}")
        return codes

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        """Queue a publish; returns its mid. Does not wait for the PUBACK."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        return info.mid

    async def publish_confirmed(self, topic: str, payload: bytes, *, qos: int = 1,
                                retain: bool = False, timeout_s: float = 10.0) -> None:
        """Publish at QoS 1 and wait until the broker has acknowledged it."""
        fut: asyncio.Future[Any] = self._loop.create_future()
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        if info.is_published() or info.mid is None:
            return
        self._pending[info.mid] = fut
        await asyncio.wait_for(fut, timeout_s)

    def ack(self, message: paho.MQTTMessage) -> None:
        """Send the PUBACK of a message received with ``manual_ack`` (QoS 1)."""
        if message.qos > 0:
            self.client.ack(message.mid, message.qos)


class RetainedPublisher:
    """``await publisher(topic, payload)``: publish retained at QoS 1 and wait for the
    broker's PUBACK, (re)connecting as needed. For the config push (``fleet.configs``)."""

    def __init__(self, url: str, client_id: str) -> None:
        self.url = url
        self.client_id = client_id
        self._conn: MqttConnection | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, topic: str, payload: bytes) -> None:
        async with self._lock:
            if self._conn is None or self._conn.lost.done():
                await self.close()
                conn = MqttConnection(self.url, self.client_id)
                await conn.__aenter__()
                self._conn = conn
            await self._conn.publish_confirmed(topic, payload, qos=1, retain=True)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.__aexit__(None, None, None)

    async def __aenter__(self) -> RetainedPublisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

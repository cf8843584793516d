"""A thin asyncio adapter for one paho-mqtt connection.

Why this shape: paho's own network thread (``loop_start``) would run every callback on
another thread and hand each one back with ``call_soon_threadsafe``; and its automatic
reconnect hides what the outbox drain must know (a new connection means "resend from
the last acked seq"). Instead paho is driven from the daemon's loop, as in paho's
"loop with asyncio" example and aiomqtt: the socket is watched with ``add_reader`` /
``add_writer`` (``loop_read`` / ``loop_write``), ``loop_misc`` runs once a second for the
keepalive, and every paho callback runs on the loop thread. Only the blocking TCP
connect (DNS, SYN, bounded by ``connect_timeout_s``) runs in a worker thread, before
any callback that touches the loop is installed.

One :class:`MqttLink` is one connection: ``await MqttLink.connect(...)``, use it until
``closed`` resolves, make a new one to reconnect (the caller owns the backoff loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

log = logging.getLogger("edge.telemetry.mqtt")

MISC_INTERVAL_S = 1.0


class MqttError(ConnectionError):
    """The broker refused us, or the connection is gone."""


class MqttLink:
    """One MQTT connection driven by the running asyncio loop."""

    def __init__(
        self,
        client_id: str,
        *,
        protocol: str = "3.1.1",
        will: tuple[str, bytes] | None = None,
        username: str | None = None,
        password: str | None = None,
        on_message: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        version = paho.MQTTv5 if protocol == "5" else paho.MQTTv311
        # clean session: nothing is carried between connections; the drain resends
        # from the last acked seq and the retained config comes again on subscribe
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version,
            clean_session=None if version == paho.MQTTv5 else True,
        )  # fmt: skip
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.on_message = on_message
        self.connected: asyncio.Future[None] = self.loop.create_future()
        self.closed: asyncio.Future[str] = self.loop.create_future()
        """Resolves with the reason once the connection is gone."""
        self._sock: socket.socket | None = None
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._misc: asyncio.Task[None] | None = None

    # -- connecting --------------------------------------------------------------------
    @classmethod
    async def connect(cls, host: str, port: int, client_id: str, *, keepalive_s: int = 30,
                      connect_timeout_s: float = 5.0, **kwargs: Any) -> MqttLink:  # fmt: skip
        """Open the connection and wait for CONNACK; MqttError if that fails."""
        link = cls(client_id, **kwargs)
        link.client.connect_timeout = connect_timeout_s
        try:
            await asyncio.to_thread(link.client.connect, host, port, keepalive_s)
        except OSError as exc:
            raise MqttError(f"cannot reach {host}:{port}: {exc}") from None
        link._attach()
        try:
            await asyncio.wait_for(asyncio.shield(link.connected), connect_timeout_s)
        except TimeoutError:
            link.abort("no CONNACK")
            raise MqttError(f"{host}:{port} sent no CONNACK within {connect_timeout_s} s") from None
        except MqttError:
            link.abort("refused")
            raise
        return link

    def _attach(self) -> None:
        """From here on paho is driven by the loop: callbacks, reader, writer, misc."""
        c = self.client
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._register_write
        c.on_socket_unregister_write = self._unregister_write
        sock = c.socket()
        if sock is None:
            self._set_closed("socket closed while connecting")
            return
        self._sock = sock  # type: ignore[assignment]
        self.loop.add_reader(sock, self._read)
        if c.want_write():
            c.loop_write()  # registers the writer through paho's own bookkeeping
        self._misc = self.loop.create_task(self._misc_loop(), name="mqtt-misc")

    # -- paho on the loop ----------------------------------------------------------------
    def _read(self) -> None:
        rc = self.client.loop_read()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._set_closed(f"read: {paho.error_string(rc)}")

    def _write(self) -> None:
        rc = self.client.loop_write()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._set_closed(f"write: {paho.error_string(rc)}")

    def _register_write(self, client: Any, userdata: Any, sock: Any) -> None:
        self.loop.add_writer(sock, self._write)

    def _unregister_write(self, client: Any, userdata: Any, sock: Any) -> None:
        self.loop.remove_writer(sock)

    def _on_socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        self.loop.remove_reader(sock)
        self.loop.remove_writer(sock)
        self._sock = None

    async def _misc_loop(self) -> None:
        while True:
            await asyncio.sleep(MISC_INTERVAL_S)  # paho's keepalive tick, not a wait for an event
            if self.client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._set_closed("keepalive: no answer from the broker")
                return

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if self.connected.done():
            return
        if reason.is_failure:
            self.connected.set_exception(MqttError(f"broker refused the connection: {reason}"))
        else:
            self.connected.set_result(None)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._set_closed(f"disconnected: {reason}")

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        if self.on_message is None:
            return
        try:
            self.on_message(message.topic, bytes(message.payload))
        except Exception:  # one bad handler must not take the connection down
            log.exception("handling a message on %s failed", message.topic)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        waiter = self._acks.pop(mid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _set_closed(self, why: str) -> None:
        if not self.connected.done():
            self.connected.set_exception(MqttError(why))
            self.connected.exception()  # retrieved: no "never retrieved" warning
        if not self.closed.done():
            log.info("mqtt connection closed: %s", why)
            self.closed.set_result(why)
        for waiter in self._acks.values():
            if not waiter.done():
                waiter.set_exception(MqttError(why))
                waiter.exception()
        self._acks.clear()
        if self._misc is not None and self._misc is not asyncio.current_task():
            self._misc.cancel()

    # -- using it ------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.connected.done() and not self.connected.exception() and not self.closed.done()

    def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> asyncio.Future[None]:
        """Queue a message; the future resolves on PUBACK (QoS 1) or once handed to the
        socket (QoS 0), and fails with MqttError if the connection goes first."""
        if self.closed.done():
            raise MqttError(f"not connected ({self.closed.result()})")
        waiter: asyncio.Future[None] = self.loop.create_future()
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError(f"publish on {topic}: {paho.error_string(info.rc)}")
        if qos == 0:
            waiter.set_result(None)
        else:
            self._acks[info.mid] = waiter
        return waiter

    async def subscribe(self, topics: list[tuple[str, int]]) -> None:
        rc, _ = self.client.subscribe(topics)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError(f"subscribe: {paho.error_string(rc)}")

    async def disconnect(self, timeout_s: float = 2.0) -> None:
        """A clean DISCONNECT (the broker drops the last-will), then wait for the close."""
        if not self.closed.done():
            self.client.disconnect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.closed), timeout_s)
        self.abort("disconnected")

    def abort(self, why: str) -> None:
        """Drop the connection without a DISCONNECT (the broker sends the last-will)."""
        sock = self._sock
        if sock is not None:
            self.loop.remove_reader(sock)
            self.loop.remove_writer(sock)
        self.client.on_socket_close = None
        self.client.on_socket_unregister_write = None
        self.client.on_disconnect = None
        with contextlib.suppress(Exception):
            self.client._sock_close()  # paho has no public close-without-DISCONNECT
        self._sock = None
        self._set_closed(why)

"""Sequence numbers, acknowledgement, retry and the version handshake (sans-I/O).

Shared by the host (CPython) and the firmware (MicroPython) like ``frame``; see the
protocol description there. Shape: ``receive(data, now_ms)`` returns events,
``send(kind, body, now_ms)`` queues a message, ``poll(now_ms)`` runs the timers,
``data_to_send()`` drains the bytes for the wire, ``next_timer_ms()`` says when to
call ``poll`` next.
"""

from . import frame as _frame

ACK = _frame.ACK
HELLO = _frame.HELLO
HELLO_ACK = _frame.HELLO_ACK
ticks_diff = _frame.ticks_diff

ROLE_HOST = 0x48  # "H"
ROLE_MCU = 0x4D  # "M"


class LinkUp:
    """The handshake completed (again, after a peer restart)."""

    def __init__(self, peer_version: int, peer_boot: int, restarted: bool) -> None:
        self.peer_version = peer_version
        """The peer's protocol version."""
        self.peer_boot = peer_boot
        """The peer's boot id (changes at every peer restart)."""
        self.restarted = restarted
        """True when the peer was up before with another boot id."""

    def __repr__(self) -> str:
        return f"LinkUp(v{self.peer_version}, boot={self.peer_boot}, restarted={self.restarted})"


class LinkDown:
    """A reliable message went unacknowledged ``max_attempts`` times."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        """Why: ``timeout``."""

    def __repr__(self) -> str:
        return f"LinkDown({self.reason!r})"


class VersionMismatch:
    """The peer speaks another major protocol version; the link stays down."""

    def __init__(self, peer_version: int) -> None:
        self.peer_version = peer_version
        """The version the peer announced."""

    def __repr__(self) -> str:
        return f"VersionMismatch({self.peer_version})"


class Message:
    """An application message from the peer, delivered once."""

    def __init__(self, kind: int, body: bytes) -> None:
        self.kind = kind
        """Application message kind (see ``messages``)."""
        self.body = body
        """Its payload."""

    def __repr__(self) -> str:
        return f"Message(0x{self.kind:02x}, {self.body!r})"


class Link:
    """One end of the serial link."""

    def __init__(
        self,
        role: int,
        boot_id: int,
        now_ms: int,
        retry_ms: int = 200,
        max_attempts: int = 5,
        hello_ms: int = 500,
        max_queue: int = 16,
    ) -> None:
        self.role = role
        self.boot_id = boot_id & 0xFFFFFFFF
        self.retry_ms = retry_ms
        self.max_attempts = max_attempts
        self.hello_ms = hello_ms
        self.max_queue = max_queue
        self.up = False
        """Handshake done and no message timed out since."""
        self.peer_boot = -1
        self.decoder = _frame.FrameDecoder()
        self.counters = {"tx": 0, "rx": 0, "retries": 0, "dropped": 0, "duplicates": 0}
        self._out = bytearray()
        self._queue: list = []  # (kind, body) waiting for the one in flight
        self._inflight: tuple | None = None  # (seq, kind, body)
        self._sent_at = now_ms
        self._attempts = 0
        self._tx_seq = 0
        self._rx_last = -1
        self._hello_at = now_ms
        self._send_hello()

    # -- sending ------------------------------------------------------------------
    def _emit(self, kind: int, seq: int, body: bytes) -> None:
        self._out.extend(_frame.encode_frame(kind, seq, body))
        self.counters["tx"] += 1

    def _hello_body(self) -> bytes:
        b = self.boot_id
        return bytes((_frame.PROTOCOL_VERSION, self.role, b >> 24, (b >> 16) & 0xFF,
                      (b >> 8) & 0xFF, b & 0xFF))  # fmt: skip

    def _send_hello(self) -> None:
        self._emit(HELLO, 0, self._hello_body())

    def send(self, kind: int, body: bytes, now_ms: int, reliable: bool = True) -> bool:
        """Queue a message; False when it was dropped (link down for an unreliable one,
        or the queue is full)."""
        if kind in (ACK, HELLO, HELLO_ACK):
            raise ValueError("link control kinds are not application messages")
        if len(body) > _frame.MAX_BODY:
            raise ValueError("message body longer than MAX_BODY")
        if not reliable:
            if not self.up:
                return False
            self._emit(kind, 0, body)
            return True
        if len(self._queue) >= self.max_queue:
            self.counters["dropped"] += 1
            return False
        self._queue.append((kind, bytes(body)))
        self._start_next(now_ms)
        return True

    def _start_next(self, now_ms: int) -> None:
        if self._inflight is not None or not self._queue or not self.up:
            return
        kind, body = self._queue.pop(0)
        self._tx_seq = self._tx_seq % 255 + 1
        self._inflight = (self._tx_seq, kind, body)
        self._attempts = 1
        self._sent_at = now_ms
        self._emit(kind, self._tx_seq, body)

    def data_to_send(self) -> bytes:
        """The bytes to write to the port now (and forget)."""
        data = bytes(self._out)
        self._out = bytearray()
        return data

    def pending(self) -> int:
        """Reliable messages not yet acknowledged (in flight plus queued)."""
        return len(self._queue) + (1 if self._inflight is not None else 0)

    # -- timers -------------------------------------------------------------------
    def next_timer_ms(self, now_ms: int) -> int:
        """Milliseconds until :meth:`poll` has something to do (0 = now)."""
        if not self.up:
            return max(0, self.hello_ms - ticks_diff(now_ms, self._hello_at))
        if self._inflight is not None:
            return max(0, self.retry_ms - ticks_diff(now_ms, self._sent_at))
        return self.hello_ms

    def poll(self, now_ms: int) -> list:
        """Re-send what is due; the events that causes (LinkDown)."""
        events: list = []
        if not self.up:
            if ticks_diff(now_ms, self._hello_at) >= self.hello_ms:
                self._hello_at = now_ms
                self._send_hello()
            return events
        if self._inflight is not None and ticks_diff(now_ms, self._sent_at) >= self.retry_ms:
            if self._attempts >= self.max_attempts:
                self.up = False
                self._hello_at = now_ms
                self._send_hello()
                events.append(LinkDown("timeout"))
                return events
            seq, kind, body = self._inflight
            self._attempts += 1
            self._sent_at = now_ms
            self.counters["retries"] += 1
            self._emit(kind, seq, body)
        return events

    # -- receiving ----------------------------------------------------------------
    def receive(self, data: bytes, now_ms: int) -> list:
        """Bytes from the port in; events (Message, LinkUp, LinkDown, VersionMismatch,
        FrameError) out."""
        events: list = []
        for item in self.decoder.feed(data):
            if isinstance(item, _frame.FrameError):
                events.append(item)
            else:
                self.counters["rx"] += 1
                self._on_frame(item, now_ms, events)
        return events

    def _on_frame(self, f: _frame.Frame, now_ms: int, events: list) -> None:
        kind = f.kind
        if kind == HELLO or kind == HELLO_ACK:
            self._on_hello(f, now_ms, events)
        elif kind == ACK:
            if self._inflight is not None and f.seq == self._inflight[0]:
                self._inflight = None
                self._start_next(now_ms)
        elif not self.up:
            # The peer thinks the link is up (we restarted): make it shake hands again.
            if ticks_diff(now_ms, self._hello_at) >= self.retry_ms:
                self._hello_at = now_ms
                self._send_hello()
        elif f.seq == 0:
            events.append(Message(kind, f.body))
        else:
            self._emit(ACK, f.seq, b"")
            if f.seq == self._rx_last:
                self.counters["duplicates"] += 1
            else:
                self._rx_last = f.seq
                events.append(Message(kind, f.body))

    def _on_hello(self, f: _frame.Frame, now_ms: int, events: list) -> None:
        body = f.body
        if len(body) < 6:
            events.append(_frame.FrameError("hello"))
            return
        version = body[0]
        if version != _frame.PROTOCOL_VERSION:
            events.append(VersionMismatch(version))
            return
        boot = (body[2] << 24) | (body[3] << 16) | (body[4] << 8) | body[5]
        restarted = self.peer_boot not in (-1, boot)
        new_peer = boot != self.peer_boot
        if f.kind == HELLO:
            self._emit(HELLO_ACK, 0, self._hello_body())
        if new_peer:
            self._rx_last = -1
        if self.up and not new_peer:
            return  # a repeated HELLO (our HELLO_ACK was lost, or crossed HELLOs)
        self.peer_boot = boot
        self.up = True
        events.append(LinkUp(version, boot, restarted))
        if self._inflight is not None:  # re-send at once to the (new) peer
            seq, kind, body2 = self._inflight
            self._attempts = 1
            self._sent_at = now_ms
            self._emit(kind, seq, body2)
        else:
            self._start_next(now_ms)

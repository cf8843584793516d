"""RTP media engine, pure-Python twin of ``_mediaengine`` (the readable reference).

One engine thread owns every RTP socket of the edge.  Python calls (allocate, connect,
play, ...) change the engine's state under one lock and are synchronous: when a call
returns, the engine thread sees its effect on the next packet.  The thread reports
back through a queue and an eventfd (:meth:`MediaEngine.fileno`) that an event loop
watches; it knows nothing about that loop.  The stub ``_mediaengine.pyi`` is the API.

Rules, identical in both implementations (the tests hold them to it):

* Legs: one non-blocking UDP socket per leg on an even port of ``port_min..port_max``
  (``port + 1`` is left for RTCP), taken in rotation so a late packet of a call that
  just ended does not land on the next call; ports bound by others are skipped.
* Latching (symmetric RTP, RFC 4961): with ``latch`` on, the first packet after
  allocation or ``set_remote`` fixes the leg's remote to its source (event
  ``("latched", leg, host, port)``); later packets from other sources are dropped.
* Headers are parsed by ``cython_ext.rtp`` (``parse_rtp``; the compiled engine uses its
  nogil ``rtp_parse_header``): a datagram that is not valid RTP (short, version, CSRC
  list, extension or padding beyond the packet) is dropped and counted in ``dropped``.
* Receive statistics per RFC 3550 A.1/A.3/A.8 by ``cython_ext.rtp``'s ``ReceiveStats``
  (``RxStatsC`` compiled), 8 kHz clock, counting from a source's first packet: ``lost``
  from the extended highest sequence number (never negative), ``late`` for packets
  behind the highest seen plus jumps the A.1 rules did not accept, interarrival jitter
  in ms of the current source (telephone-event packets count for the sequence, not for
  jitter).  A new SSRC, or a confirmed sequence restart, starts a new count; ``lost``
  and ``late`` are summed over the leg's sources.
* Relay: a packet received on A goes out of B's socket to B's remote with B's own
  SSRC, and sequence number and timestamp shifted by per-direction offsets.  The
  offsets are (re)computed when B's source changes (first packet, new SSRC, end of a
  prompt played into B), so B's outgoing stream stays one RFC 3550 §5.1 stream with
  monotonic seq/ts: seq continues at +1, ts advances by the elapsed time rounded to
  20 ms (at least one packet), and the first packet after the change has the marker
  bit.  Non-RTP datagrams and multiplexed RTCP (PT 72-76) are dropped, not relayed.
* Playback: ``play`` encodes 8 kHz int16 PCM to the leg's codec once; each 20 ms tick
  sends one 160-sample packet from the leg's socket with the leg's SSRC/seq/ts.  The
  peer's relay into the leg is paused meanwhile; ``("play_done", leg, play_id)`` when
  a non-looping prompt ends (not on ``stop_play`` or when replaced).
* DTMF: RFC 4733 events (payload type ``telephone_event_pt``) by ``cython_ext.dtmf``'s
  ``TelephoneEventReceiver``: one press per RTP timestamp, reported on its first end
  packet (a press whose end packets were all lost: when the next press starts), late
  packets of earlier presses ignored.  In-band detection on legs that ask for it by
  ``cython_ext.dtmf``'s ``DtmfDetector`` (Goertzel, 102-sample blocks, a key after two
  blocks, reported when it has ended: see ``dtmf_py``), duration from its first to its
  last block.
* Recording: decoded samples (PT 0/8) go into a per-leg buffer at the position given
  by the RTP timestamp, anchored to the wall clock at the first packet (and after a
  pause, an SSRC change or an implausible jump), so gaps become silence and two legs'
  buffers line up sample for sample.  The buffer holds ``record_buffer_s``; older
  audio is dropped when nobody takes it.
* Inactivity: no packet for ``rtp_timeout_s`` since the last packet (or allocation,
  ``set_remote``, ``connect``) -> ``("timeout", leg)`` once, re-armed by a packet.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import random
import select
import socket
import struct
import sys
import threading
import time
from array import array
from typing import Any

from cython_ext.dtmf.dtmf_py import DtmfDetector
from cython_ext.dtmf.rfc4733 import TelephoneEventReceiver
from cython_ext.g711.g711_py import alaw_to_linear as _alaw_to_linear
from cython_ext.g711.g711_py import linear_to_alaw as _linear_to_alaw
from cython_ext.g711.g711_py import linear_to_ulaw as _linear_to_ulaw
from cython_ext.g711.g711_py import ulaw_to_linear as _ulaw_to_linear
from cython_ext.rtp.rtp_py import ReceiveStats, RtpError, parse_rtp

__all__ = ["IMPLEMENTATION", "MediaEngine", "MediaError"]

IMPLEMENTATION = "python"

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
TICK_NS = 20_000_000
RECV_BATCH = 32
MAX_EVENTS = 4096
PT_PCMU = 0
PT_PCMA = 8
_NS_PER_SAMPLE = 1_000_000_000 // SAMPLE_RATE  # 125 µs
_BIG_ENDIAN = sys.byteorder == "big"
_SILENCE = {PT_PCMU: 0xFF, PT_PCMA: 0xD5}


class MediaError(Exception):
    """The engine cannot do what was asked (port range exhausted, unknown leg...)."""


# --- G.711 (cython_ext.g711's reference rules) ---------------------------------------

_DECODE = {
    PT_PCMU: tuple(_ulaw_to_linear(c) for c in range(256)),
    PT_PCMA: tuple(_alaw_to_linear(c) for c in range(256)),
}
_ENCODE = {PT_PCMU: _linear_to_ulaw, PT_PCMA: _linear_to_alaw}


def _encode(pcm16: bytes, pt: int) -> bytes:
    samples = array("h")
    samples.frombytes(pcm16[: len(pcm16) & ~1])
    if samples.itemsize != 2:  # pragma: no cover - every supported platform
        raise MediaError("int16 arrays are not 2 bytes here")
    if _BIG_ENDIAN:  # pragma: no cover
        samples.byteswap()
    rule = _ENCODE[pt]
    coded = bytes(rule(s) for s in samples)
    pad = (-len(coded)) % FRAME_SAMPLES
    return coded + bytes([_SILENCE[pt]]) * pad


# --- per-leg state -------------------------------------------------------------------


class _Leg:
    def __init__(self, leg_id: int, port: int, sock: socket.socket, now: int) -> None:
        self.id = leg_id
        self.port = port
        self.sock = sock
        self.fd = sock.fileno()
        self.remote: tuple[str, int] | None = None
        self.latched = False
        self.peer: _Leg | None = None
        self.codec = PT_PCMU
        self.te_pt: int | None = 101
        # Outgoing stream (what this leg sends to its remote).
        self.ssrc = random.getrandbits(32)
        self.out_seq = random.getrandbits(16)
        self.out_ts = random.getrandbits(32)
        self.out_last_ns = 0
        self.out_started = False
        self.resync = True
        self.src_ssrc = -1
        self.seq_off = 0
        self.ts_off = 0
        # Counters and RFC 3550 receive state of the current source (earlier sources'
        # and sequence runs' loss and late packets are carried in *_before).
        self.packets_in = self.packets_out = self.bytes_in = self.bytes_out = 0
        self.dropped = 0
        self.rx_ssrc = -1
        self.rx = ReceiveStats(SAMPLE_RATE, min_sequential=1)
        self.lost_before = 0
        self.late_before = 0
        self.last_rx_ns = 0
        self.activity_ns = now
        self.timed_out = False
        self.telephone_events = TelephoneEventReceiver(SAMPLE_RATE)
        self.dtmf: DtmfDetector | None = None  # in-band detection, when asked
        # Playback.
        self.play_buf = b""
        self.play_pos = 0
        self.play_loop = False
        self.play_id = 0
        self.playing = False
        self.play_first = False
        # Recording (absolute sample positions since rec_start_ns).
        self.recording = False
        self.rec = bytearray()
        self.rec_read = self.rec_write = 0
        self.rec_start_ns = 0
        self.rec_based = False
        self.rec_base_pos = 0
        self.rec_base_ts = 0
        self.rec_ssrc = -1

    def lost(self) -> int:
        return self.lost_before + max(0, self.rx.lost)

    def late(self) -> int:
        return self.late_before + self.rx.out_of_order + self.rx.rejected


def _s16(v: int) -> int:
    v &= 0xFFFF
    return v - 0x10000 if v & 0x8000 else v


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - 0x100000000 if v & 0x80000000 else v


class MediaEngine:
    """All RTP legs of the edge, served by one engine thread."""

    def __init__(
        self,
        host: str,
        port_min: int,
        port_max: int,
        *,
        rtp_timeout_s: float = 30.0,
        latch: bool = True,
        record_buffer_s: float = 60.0,
    ) -> None:
        try:
            if ipaddress.ip_address(host).version != 4:
                raise ValueError
        except ValueError:
            raise MediaError(f"media host must be an IPv4 literal, got {host!r}") from None
        if not 0 < port_min <= port_max <= 65535:
            raise ValueError(f"bad RTP port range {port_min}-{port_max}")
        first_even = port_min + (port_min % 2)
        if first_even + 1 > port_max:
            raise ValueError(f"RTP port range {port_min}-{port_max} has no even/odd port pair")
        self.host = host
        self.port_min = port_min
        self.port_max = port_max
        self._ports = list(range(first_even, port_max, 2))
        self._next_port = 0
        self._timeout_ns = int(rtp_timeout_s * 1e9)
        self._latch = latch
        self._rec_cap = max(FRAME_SAMPLES, int(record_buffer_s * SAMPLE_RATE))
        self._lock = threading.Lock()
        self._legs: dict[int, _Leg] = {}
        self._by_fd: dict[int, _Leg] = {}
        self._next_id = 1
        self._events: list[tuple] = []
        self._events_dropped = 0
        self._signalled = False
        self._epoll = select.epoll()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._event_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wake_fd, select.EPOLLIN)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self._c = dict.fromkeys(
            (
                "packets_relayed",
                "bytes_relayed",
                "packets_dropped",
                "syscalls_recv",
                "syscalls_send",
                "loop_iterations",
                "commands",
            ),
            0,
        )

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            self._check_open()
            if self._thread is not None:
                raise MediaError("media engine already started")
            self._thread = threading.Thread(target=self._run, name="media-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._stopping = True
        os.eventfd_write(self._wake_fd, 1)
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            for leg in list(self._legs.values()):
                self._close_leg(leg)
            self._epoll.close()
            os.close(self._wake_fd)
            os.close(self._event_fd)
            self._closed = True

    def fileno(self) -> int:
        return self._event_fd

    def read_events(self) -> list[tuple]:
        if self._closed:
            return []
        try:
            os.eventfd_read(self._event_fd)  # first: a later event signals again
        except BlockingIOError:
            pass
        with self._lock:
            events, self._events = self._events, []
            self._signalled = False
        return events

    # --- legs ------------------------------------------------------------------------

    def allocate_leg(self) -> tuple[int, int]:
        with self._lock:
            self._check_open()
            self._c["commands"] += 1
            for _ in range(len(self._ports)):
                port = self._ports[self._next_port]
                self._next_port = (self._next_port + 1) % len(self._ports)
                sock = self._bind(port)
                if sock is None:
                    continue
                leg = _Leg(self._next_id, port, sock, time.monotonic_ns())
                self._next_id += 1
                self._legs[leg.id] = leg
                self._by_fd[leg.fd] = leg
                self._epoll.register(leg.fd, select.EPOLLIN)
                return leg.id, port
            raise MediaError(
                f"no free RTP port in {self.port_min}-{self.port_max} on {self.host}: "
                f"{len(self._legs)} legs active here, the other even ports are in use"
            )

    def _bind(self, port: int) -> socket.socket | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((self.host, port))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return None
            raise MediaError(f"cannot bind RTP socket {self.host}:{port}: {exc}") from exc
        return sock

    def set_remote(self, leg: int, host: str, port: int) -> None:
        try:
            if ipaddress.ip_address(host).version != 4:
                raise ValueError
        except ValueError:
            raise MediaError(f"media address must be an IPv4 literal, got {host!r}") from None
        if not 0 < port <= 65535:
            raise MediaError(f"bad media port {port}")
        with self._lock:
            one = self._leg(leg)
            one.remote = (host, port)
            one.latched = False
            one.activity_ns = time.monotonic_ns()

    def connect(self, a: int, b: int) -> None:
        with self._lock:
            la, lb = self._leg(a), self._leg(b)
            if la is lb:
                raise MediaError(f"cannot connect leg {a} to itself")
            for one in (la, lb):
                self._unpair(one)
            la.peer, lb.peer = lb, la
            la.resync = lb.resync = True
            la.activity_ns = lb.activity_ns = time.monotonic_ns()

    def disconnect(self, leg: int) -> None:
        with self._lock:
            self._unpair(self._leg(leg))

    def release(self, leg: int) -> dict[str, Any]:
        with self._lock:
            one = self._leg(leg)
            final = self._stats(one, time.monotonic_ns())
            self._close_leg(one)
            return final

    def stats(self, leg: int) -> dict[str, Any]:
        with self._lock:
            return self._stats(self._leg(leg), time.monotonic_ns())

    def set_codec(self, leg: int, payload_type: int, telephone_event_pt: int | None = 101) -> None:
        if payload_type not in (PT_PCMU, PT_PCMA):
            raise MediaError(f"unsupported payload type {payload_type} (0 PCMU or 8 PCMA)")
        if telephone_event_pt is not None and not 96 <= telephone_event_pt <= 127:
            raise MediaError(
                f"telephone-event payload type must be dynamic, got {telephone_event_pt}"
            )
        with self._lock:
            one = self._leg(leg)
            one.codec = payload_type
            one.te_pt = telephone_event_pt

    def play(self, leg: int, pcm16: bytes, *, loop: bool = False, play_id: int = 0) -> None:
        with self._lock:
            codec = self._leg(leg).codec
        coded = _encode(bytes(pcm16), codec)  # outside the lock: slow in Python
        if not coded:
            raise MediaError("nothing to play")
        with self._lock:
            one = self._leg(leg)
            one.play_buf, one.play_pos = coded, 0
            one.play_loop, one.play_id = loop, play_id
            one.playing = one.play_first = True

    def stop_play(self, leg: int) -> None:
        with self._lock:
            self._end_play(self._leg(leg))

    def record(self, leg: int, on: bool) -> None:
        with self._lock:
            one = self._leg(leg)
            if on and not one.recording and one.rec_start_ns == 0:
                one.rec_start_ns = time.monotonic_ns()
            one.recording = on
            one.rec_based = False  # after a pause the wall clock places the next packet

    def take_recording(self, leg: int) -> bytes:
        with self._lock:
            one = self._leg(leg)
            data = bytes(one.rec)
            one.rec.clear()
            one.rec_read = one.rec_write
        return data

    def detect_dtmf(self, leg: int, inband: bool) -> None:
        with self._lock:
            self._leg(leg).dtmf = DtmfDetector(SAMPLE_RATE) if inband else None

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {"legs": len(self._legs), **self._c, "events_dropped": self._events_dropped}

    # --- helpers under the lock ------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed or self._stopping:
            raise MediaError("media engine is stopped")

    def _leg(self, leg_id: int) -> _Leg:
        self._check_open()
        self._c["commands"] += 1
        one = self._legs.get(leg_id)
        if one is None:
            raise MediaError(f"leg {leg_id} is not active on this engine")
        return one

    def _unpair(self, one: _Leg) -> None:
        if one.peer is not None:
            one.peer.peer = None
            one.peer.resync = True
            one.peer = None
        one.resync = True

    def _close_leg(self, one: _Leg) -> None:
        self._unpair(one)
        self._epoll.unregister(one.fd)
        one.sock.close()
        del self._legs[one.id]
        del self._by_fd[one.fd]

    def _stats(self, one: _Leg, now: int) -> dict[str, Any]:
        return {
            "packets_in": one.packets_in,
            "packets_out": one.packets_out,
            "bytes_in": one.bytes_in,
            "bytes_out": one.bytes_out,
            "lost": one.lost(),
            "late": one.late(),
            "jitter_ms": one.rx.jitter_ms,
            "last_rx_age_s": (now - one.last_rx_ns) / 1e9 if one.last_rx_ns else None,
            "dropped": one.dropped,
            "remote": one.remote,
        }

    def _drop(self, one: _Leg) -> None:
        one.dropped += 1
        self._c["packets_dropped"] += 1

    def _emit(self, event: tuple) -> None:
        if len(self._events) >= MAX_EVENTS:
            self._events_dropped += 1
            return
        self._events.append(event)
        if not self._signalled:
            self._signalled = True
            os.eventfd_write(self._event_fd, 1)

    # --- the engine thread -----------------------------------------------------------

    def _run(self) -> None:
        next_tick = time.monotonic_ns() + TICK_NS
        while True:
            timeout = max(0.0, (next_tick - time.monotonic_ns()) / 1e9)
            try:
                ready = self._epoll.poll(timeout)
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                ready = []
            with self._lock:
                if self._stopping:
                    return
                self._c["loop_iterations"] += 1
                for fd, _mask in ready:
                    if fd == self._wake_fd:
                        try:
                            os.eventfd_read(self._wake_fd)
                        except BlockingIOError:
                            pass
                        continue
                    one = self._by_fd.get(fd)
                    if one is not None:
                        self._drain(one)
                now = time.monotonic_ns()
                ticks = 0
                while now >= next_tick and ticks < 3:
                    next_tick += TICK_NS
                    ticks += 1
                    self._tick(now)
                if now >= next_tick:  # far behind (debugger, suspend): do not burst
                    next_tick = now + TICK_NS

    def _drain(self, one: _Leg) -> None:
        for _ in range(RECV_BATCH):
            try:
                data, source = one.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                self._c["syscalls_recv"] += 1
                return
            except OSError:
                self._c["syscalls_recv"] += 1
                return
            self._c["syscalls_recv"] += 1
            self._packet(one, data, (source[0], source[1]), time.monotonic_ns())

    def _packet(self, one: _Leg, data: bytes, source: tuple[str, int], now: int) -> None:
        one.packets_in += 1
        one.bytes_in += len(data)
        if self._latch:
            if not one.latched:
                one.latched = True
                one.remote = source
                self._emit(("latched", one.id, source[0], source[1]))
            elif source != one.remote:
                self._drop(one)
                return
        one.last_rx_ns = one.activity_ns = now
        one.timed_out = False
        try:
            packet = parse_rtp(data)
        except RtpError:  # not RTP, or a malformed header
            self._drop(one)
            return
        pt = packet.payload_type
        if 72 <= pt <= 76:  # multiplexed RTCP (RFC 5761): not relayed
            self._drop(one)
            return
        seq, ts, ssrc = packet.sequence, packet.timestamp, packet.ssrc
        is_te = pt == one.te_pt
        self._receive_stats(one, seq, ts, ssrc, now, not is_te)
        payload = packet.payload
        if is_te:
            if len(payload) >= 4:
                press = one.telephone_events.feed(ts, payload, packet.marker)
                if press is not None:
                    self._emit(("dtmf", one.id, press.digit, press.duration_ms, "rfc4733"))
        elif (one.recording or one.dtmf is not None) and pt in _DECODE and payload:
            decode = _DECODE[pt]
            samples = array("h", [decode[c] for c in payload])
            if _BIG_ENDIAN:  # pragma: no cover - the recording and the detector take LE
                samples.byteswap()
            if one.recording:
                self._record(one, samples.tobytes(), ts, ssrc, now)
            if one.dtmf is not None:
                for tone in one.dtmf.feed(samples.tobytes()):
                    duration_ms = tone.duration_samples * 1000 // SAMPLE_RATE
                    self._emit(("dtmf", one.id, tone.digit, duration_ms, "inband"))
        self._relay(one, data, pt, seq, ts, ssrc, now)

    def _receive_stats(
        self, one: _Leg, seq: int, ts: int, ssrc: int, now: int, for_jitter: bool
    ) -> None:
        """``ReceiveStats`` per source, summed over the call (see the module docstring)."""
        if ssrc != one.rx_ssrc:
            one.lost_before = one.lost()
            one.late_before = one.late()
            one.rx_ssrc = ssrc
            one.rx.reset()
        rx = one.rx
        lost, restarts = rx.lost, rx.restarts
        transit = (rx.jitter, rx._have_transit, rx._last_arrival_s, rx._last_ts)
        if not rx.update(seq, ts, now / 1e9):
            return
        if not for_jitter:
            # A telephone-event's timestamp is the event's start: undo its jitter sample
            # (ReceiveStats has no sequence-only update; RxStatsC is treated the same).
            rx.jitter, rx._have_transit, rx._last_arrival_s, rx._last_ts = transit
            rx._have_transit = rx._have_transit and rx.restarts == restarts
        if rx.restarts != restarts:
            one.lost_before += max(0, lost)

    def _record(self, one: _Leg, raw: bytes, ts: int, ssrc: int, now: int) -> None:
        wall = (now - one.rec_start_ns) // _NS_PER_SAMPLE
        pos = 0
        if one.rec_based and ssrc == one.rec_ssrc:
            pos = one.rec_base_pos + _s32(ts - one.rec_base_ts)
            if pos > one.rec_write + 10 * SAMPLE_RATE or pos < one.rec_write - SAMPLE_RATE:
                one.rec_based = False
        if not one.rec_based or ssrc != one.rec_ssrc:
            pos = max(wall, one.rec_write)
            one.rec_based, one.rec_ssrc = True, ssrc
            one.rec_base_pos, one.rec_base_ts = pos, ts
        n = len(raw) // 2
        if pos + n <= one.rec_read:
            return
        if pos < one.rec_read:
            raw = raw[2 * (one.rec_read - pos) :]
            n -= one.rec_read - pos
            pos = one.rec_read
        if pos > one.rec_write:
            one.rec += bytes(2 * (pos - one.rec_write))
            one.rec_write = pos
        offset = 2 * (pos - one.rec_read)
        one.rec[offset : offset + len(raw)] = raw
        one.rec_write = max(one.rec_write, pos + n)
        excess = (one.rec_write - one.rec_read) - self._rec_cap
        if excess > 0:
            del one.rec[: 2 * excess]
            one.rec_read += excess

    def _relay(
        self, one: _Leg, data: bytes, pt: int, seq: int, ts: int, ssrc: int, now: int
    ) -> None:
        peer = one.peer
        if peer is None or peer.remote is None or peer.playing:
            self._drop(one)
            return
        marker = 0
        if peer.resync or ssrc != peer.src_ssrc:
            seq_to, ts_to = self._next_out(peer, now)
            peer.seq_off = (seq_to - seq) & 0xFFFF
            peer.ts_off = (ts_to - ts) & 0xFFFFFFFF
            peer.src_ssrc = ssrc
            peer.resync = False
            marker = 0x80
        out_seq = (seq + peer.seq_off) & 0xFFFF
        out_ts = (ts + peer.ts_off) & 0xFFFFFFFF
        packet = (
            bytes((data[0], data[1] | marker))
            + struct.pack("!HII", out_seq, out_ts, peer.ssrc)
            + data[12:]
        )
        if self._send(peer, packet):
            if _s16(out_seq - peer.out_seq) > 0 or not peer.out_started:
                peer.out_seq = out_seq
            if _s32(out_ts - peer.out_ts) > 0 or not peer.out_started:
                peer.out_ts = out_ts
            peer.out_last_ns = now
            peer.out_started = True
            self._c["packets_relayed"] += 1
            self._c["bytes_relayed"] += len(packet)
        else:
            self._drop(one)

    def _next_out(self, leg: _Leg, now: int) -> tuple[int, int]:
        """Seq/ts for the first packet of a new source in ``leg``'s outgoing stream."""
        if not leg.out_started:
            return leg.out_seq, leg.out_ts
        frames = max(1, round((now - leg.out_last_ns) / TICK_NS))
        return (leg.out_seq + 1) & 0xFFFF, (leg.out_ts + frames * FRAME_SAMPLES) & 0xFFFFFFFF

    def _send(self, leg: _Leg, packet: bytes) -> bool:
        assert leg.remote is not None
        self._c["syscalls_send"] += 1
        try:
            leg.sock.sendto(packet, leg.remote)
        except OSError:  # full buffer or unreachable: late RTP is worthless
            return False
        leg.packets_out += 1
        leg.bytes_out += len(packet)
        return True

    def _tick(self, now: int) -> None:
        for one in list(self._legs.values()):
            if one.playing:
                self._play_frame(one, now)
            if not one.timed_out and now - one.activity_ns >= self._timeout_ns:
                one.timed_out = True
                self._emit(("timeout", one.id))

    def _play_frame(self, one: _Leg, now: int) -> None:
        payload = one.play_buf[one.play_pos : one.play_pos + FRAME_SAMPLES]
        one.play_pos += FRAME_SAMPLES
        if one.play_first:
            seq, ts = self._next_out(one, now)
            marker = 0x80
        else:
            seq, ts = (one.out_seq + 1) & 0xFFFF, (one.out_ts + FRAME_SAMPLES) & 0xFFFFFFFF
            marker = 0
        one.play_first = False
        # Seq/ts advance even when the remote is unknown or the send fails: time passes.
        one.out_seq, one.out_ts, one.out_last_ns, one.out_started = seq, ts, now, True
        if one.remote is not None:
            packet = struct.pack("!BBHII", 0x80, marker | one.codec, seq, ts, one.ssrc) + payload
            self._send(one, packet)
        if one.play_pos >= len(one.play_buf):
            if one.play_loop:
                one.play_pos = 0
            else:
                play_id = one.play_id
                self._end_play(one)
                self._emit(("play_done", one.id, play_id))

    def _end_play(self, one: _Leg) -> None:
        if one.playing:
            one.playing = False
            one.play_buf = b""
            one.resync = True  # the peer's stream continues after our prompt

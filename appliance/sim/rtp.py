"""RTP for the simulated phones: packet framing (RFC 3550 §5.1) and one UDP socket per
call that sends a paced PCMU stream and counts what comes back.

Symmetric RTP (RFC 4961): a stream sends from the socket it receives on, so the edge's
latching relay sees the address it advertised in SDP. The payload is a 400 Hz µ-law
tone; 160 samples hold exactly eight periods, so one precomputed frame repeats without
a click and keeps the send path allocation-free.
"""

from __future__ import annotations

import asyncio
import math
import os
import struct
from dataclasses import dataclass

__all__ = [
    "PCMU",
    "FRAME_MS",
    "SAMPLES_PER_FRAME",
    "RtpHeader",
    "RtpStream",
    "build_packet",
    "parse_header",
    "tone_frame",
]

PCMU = 0
"""RTP/AVP static payload type of G.711 µ-law (RFC 3551 §6)."""
FRAME_MS = 20
SAMPLES_PER_FRAME = 8000 * FRAME_MS // 1000  # 160 samples = 160 PCMU bytes
_HEADER = struct.Struct("!BBHII")
_VERSION_BITS = 2 << 6


@dataclass(frozen=True, slots=True)
class RtpHeader:
    """The fixed RTP header fields the simulator checks."""

    payload_type: int
    """7-bit payload type (0 for PCMU)."""
    marker: bool
    """The M bit: first packet of a talk spurt."""
    sequence: int
    """16-bit sequence number."""
    timestamp: int
    """32-bit media clock timestamp (8 kHz for PCMU)."""
    ssrc: int
    """Synchronisation source identifier."""


def build_packet(payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes,
                 *, marker: bool = False) -> bytes:  # fmt: skip
    """A 12-byte RTP header (V=2, no padding/extension/CSRC) followed by ``payload``."""
    second = (0x80 if marker else 0) | (payload_type & 0x7F)
    header = _HEADER.pack(
        _VERSION_BITS, second, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF
    )
    return header + payload


def parse_header(data: bytes) -> RtpHeader | None:
    """The header of an RTP packet, or None when ``data`` is not RTP version 2."""
    if len(data) < _HEADER.size or data[0] >> 6 != 2:
        return None
    _, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    return RtpHeader(second & 0x7F, bool(second & 0x80), sequence, timestamp, ssrc)


def _ulaw(sample: int) -> int:
    """G.711 µ-law encoding of one 16-bit linear sample (ITU-T G.711 table, bias 0x84)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def tone_frame(frequency_hz: float = 400.0, amplitude: int = 8000) -> bytes:
    """One 20 ms PCMU frame of a sine tone (seamless when 160 samples hold whole periods)."""
    return bytes(
        _ulaw(int(amplitude * math.sin(2 * math.pi * frequency_hz * n / 8000)))
        for n in range(SAMPLES_PER_FRAME)
    )


TELEPHONE_EVENT = 101
"""The dynamic payload type the phones offer for RFC 4733 telephone-events."""
DIGIT_START_FRAME = 10  # the first digit goes 200 ms into the call
DIGIT_GAP_FRAMES = 4  # 80 ms of audio between two digits


class RtpStream(asyncio.DatagramProtocol):
    """One call's media socket: sends 20 ms PCMU packets to ``remote``, counts arrivals.

    With ``echo`` the stream does not generate a tone; it returns every payload it
    receives in its own packets (own SSRC, sequence and timestamp), like a loopback
    phone. Packets from addresses other than ``remote`` are counted as stray once a
    remote is known (what an RTP-bleed check looks at).
    """

    def __init__(self, *, echo: bool = False, tone_hz: float = 400.0, digits: str = "") -> None:
        self.echo = echo
        self.frame = tone_frame(tone_hz)
        self.digits = digits  # sent as RFC 4733 telephone-events early in the call
        self.ssrc = int.from_bytes(os.urandom(4), "big")
        self.sequence = int.from_bytes(os.urandom(2), "big")  # random start (RFC 3550 §5.1)
        self.timestamp = int.from_bytes(os.urandom(4), "big")
        self.remote: tuple[str, int] | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.local: tuple[str, int] = ("", 0)
        self.packets_sent = 0
        self.packets_received = 0
        self.packets_stray = 0
        self.packets_invalid = 0
        self.remote_ssrcs: set[int] = set()
        self._stopped = asyncio.Event()  # set by stop(); talk() and echo check it
        self._first = True

    @classmethod
    async def open(cls, host: str, *, echo: bool = False, tone_hz: float = 400.0, digits: str = "") -> RtpStream:
        """Bind a stream on a free port of ``host``."""
        loop = asyncio.get_running_loop()
        _, stream = await loop.create_datagram_endpoint(
            lambda: cls(echo=echo, tone_hz=tone_hz, digits=digits), local_addr=(host, 0)
        )
        return stream

    # -- asyncio protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sockname = transport.get_extra_info("sockname")
        self.local = (sockname[0], sockname[1])

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        header = parse_header(data)
        if header is None:
            self.packets_invalid += 1
            return
        if self.remote is not None and (addr[0], addr[1]) != self.remote:
            self.packets_stray += 1
            return
        self.packets_received += 1
        self.remote_ssrcs.add(header.ssrc)
        if self.echo and not self._stopped.is_set():
            self._send(data[12:])

    def error_received(self, exc: Exception) -> None:
        # ICMP unreachable: the edge released the leg before our last packets; harmless
        pass

    # -- sending ------------------------------------------------------------------------
    def _send(self, payload: bytes, *, payload_type: int = PCMU, marker: bool = False,
              timestamp: int | None = None) -> None:  # fmt: skip
        if self.transport is None or self.remote is None:
            return
        ts = self.timestamp if timestamp is None else timestamp
        packet = build_packet(payload_type, self.sequence, ts, self.ssrc, payload, marker=self._first or marker)
        self._first = False
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + SAMPLES_PER_FRAME) & 0xFFFFFFFF
        self.transport.sendto(packet, self.remote)
        self.packets_sent += 1

    def _digit_schedule(self) -> dict[int, tuple[bytes, bool, bool]]:
        """frame number -> (event payload, marker, first of its event) for every digit.

        A ``,`` in the digits is a one-second pause. RFC 4733 §2.5: one event's packets share the timestamp of its first packet and
        replace the audio of their frames; the end packet is sent three times."""
        from cython_ext.dtmf import telephone_event_payloads

        schedule: dict[int, tuple[bytes, bool, bool]] = {}
        frame = DIGIT_START_FRAME
        for digit in self.digits:
            if digit == ",":  # a pause, as on a phone's dialler: one second
                frame += 1000 // FRAME_MS
                continue
            packets = telephone_event_payloads(digit, duration_ms=100)
            for i, (payload, marker, _is_end) in enumerate(packets):
                schedule[frame + i] = (payload, marker, i == 0)
            frame += len(packets) + DIGIT_GAP_FRAMES
        return schedule

    async def talk(self, duration_s: float | None, *, silent_after_s: float | None = None) -> None:
        """Send a frame every 20 ms for ``duration_s`` (until :meth:`stop` when None);
        with ``silent_after_s`` the phone stays on the line but stops sending then.

        Frames are scheduled on absolute deadlines so sleep jitter does not accumulate.
        Echo streams send nothing here: they answer what arrives.
        """
        loop = asyncio.get_running_loop()
        frames = None if duration_s is None else max(1, round(duration_s * 1000 / FRAME_MS))
        digits = self._digit_schedule() if self.digits else {}
        silent_from = None if silent_after_s is None else round(silent_after_s * 1000 / FRAME_MS)
        event_ts = self.timestamp
        start = loop.time()
        n = 0
        while not self._stopped.is_set() and (frames is None or n < frames):
            event = digits.get(n)
            if event is not None:
                payload, marker, first = event
                if first:
                    event_ts = self.timestamp
                self._send(payload, payload_type=TELEPHONE_EVENT, marker=marker, timestamp=event_ts)
            elif not self.echo and (silent_from is None or n < silent_from):
                self._send(self.frame)
            n += 1
            delay = start + n * FRAME_MS / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the 20 ms packet clock, not an event wait

    def stop(self) -> None:
        """Stop sending (a running :meth:`talk` returns within one frame)."""
        self._stopped.set()

    def close(self) -> None:
        self.stop()
        if self.transport is not None:
            self.transport.close()

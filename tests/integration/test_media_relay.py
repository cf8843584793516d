"""MediaRelay with real UDP "phones" on loopback, under the default loop and uvloop.

Each test runs its scenario in a fresh ``asyncio.Runner`` per loop implementation
(a ``pytest_asyncio_loop_factories`` hook in a conftest would do the same suite-wide).
Nothing sleeps for a fixed time: a test waits for a datagram, or for a leg counter to
move (yielding to the loop until it does), always under a timeout. Every phone and
relay a scenario opens is closed by the runner, also when the scenario fails.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvloop

from edge_core.media.relay import MediaError, MediaLeg, MediaRelay

HOST = "127.0.0.1"
TIMEOUT_S = 2.0

Run = Callable[[Awaitable[Any]], Any]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    factory = asyncio.new_event_loop if request.param == "asyncio" else uvloop.new_event_loop

    def runner(coro: Awaitable[Any]) -> Any:
        with asyncio.Runner(loop_factory=factory) as r:
            try:
                return r.run(coro)  # type: ignore[arg-type]
            finally:
                # An unclosed transport warns (an error here) inside uvloop's loop
                # close, which then hangs: always clean up, also after a failure.
                r.run(close_everything())

    return runner


OPEN_PHONES: list[Phone] = []
OPEN_RELAYS: list[MediaRelay] = []


async def close_everything() -> None:
    while OPEN_PHONES:
        OPEN_PHONES.pop().close()
    while OPEN_RELAYS:
        await OPEN_RELAYS.pop().stop()


async def started_relay(low: int, high: int, *, latch: bool = True) -> MediaRelay:
    relay = MediaRelay(HOST, low, high, latch=latch)
    await relay.start()
    OPEN_RELAYS.append(relay)
    return relay


async def wait_until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition()`` holds (the relay read a packet)."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), TIMEOUT_S)


def free_port_range(pairs: int) -> tuple[int, int]:
    """An even-aligned range of ``pairs`` RTP/RTCP port pairs that is free right now."""
    for _ in range(200):
        base = random.randrange(20000, 60000, 2)
        probes = []
        try:
            for port in range(base, base + 2 * pairs):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probes.append(s)
                s.bind((HOST, port))
        except OSError:
            continue
        finally:
            for s in probes:
                s.close()
        return base, base + 2 * pairs - 1
    raise RuntimeError("no free port range on loopback")


def rtp(seq: int, payload: bytes = b"\xff" * 160) -> bytes:
    """A minimal RTP packet: V=2, PT=0 (PCMU), the given sequence number."""
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x1234) + payload


class Phone(asyncio.DatagramProtocol):
    """A UDP endpoint that queues what it receives."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls) -> Phone:
        loop = asyncio.get_running_loop()
        _, phone = await loop.create_datagram_endpoint(cls, local_addr=(HOST, 0))
        OPEN_PHONES.append(phone)
        return phone

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, (addr[0], addr[1])))

    @property
    def addr(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def send_to(self, leg: MediaLeg, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (leg.local_host, leg.local_port))

    async def next(self) -> tuple[bytes, tuple[str, int]]:
        return await asyncio.wait_for(self.received.get(), TIMEOUT_S)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def call_between_two_phones(
    latch: bool = True,
) -> tuple[MediaRelay, MediaLeg, MediaLeg, Phone, Phone]:
    relay = await started_relay(*free_port_range(4), latch=latch)
    alice, bob = await Phone.open(), await Phone.open()
    a, b = relay.allocate_leg(), relay.allocate_leg()
    relay.set_remote(a, *alice.addr)
    relay.set_remote(b, *bob.addr)
    relay.connect(a, b)
    return relay, a, b, alice, bob


def test_two_phones_exchange_rtp_through_two_legs(run: Run) -> None:
    async def scenario() -> None:
        relay, a, b, alice, bob = await call_between_two_phones()
        assert relay.implementation == "asyncio-v0"
        assert a.local_port % 2 == 0 and b.local_port % 2 == 0
        assert a.local_port != b.local_port

        for seq in range(5):
            alice.send_to(a, rtp(seq))
            data, source = await bob.next()
            assert data == rtp(seq)
            assert source == (HOST, b.local_port), "symmetric RTP: sent from B's own port"
        bob.send_to(b, rtp(100, b"hello"))
        data, source = await alice.next()
        assert (data, source) == (rtp(100, b"hello"), (HOST, a.local_port))

        assert (a.packets_in, b.packets_out, b.packets_in, a.packets_out) == (5, 5, 1, 1)
        assert a.bytes_in == b.bytes_out == 5 * 172
        assert b.bytes_in == a.bytes_out == 12 + 5
        assert a.last_rx > 0 and b.last_rx > 0
        assert relay.stats() == {
            "implementation": "asyncio-v0",
            "legs_active": 2,
            "packets_relayed": 6,
            "bytes_relayed": 5 * 172 + 17,
            "packets_dropped": 0,
        }
        alice.close()
        bob.close()
        await relay.stop()

    run(scenario())


def test_latching_moves_the_destination_to_the_real_source(run: Run) -> None:
    async def scenario() -> None:
        relay, a, b, alice, bob = await call_between_two_phones()
        # The SDP said one thing (a private address behind NAT, say); alice really
        # sends from elsewhere.
        relay.set_remote(a, "127.0.0.1", 9)
        alice.send_to(a, rtp(1))
        await bob.next()
        assert a.remote == alice.addr
        bob.send_to(b, rtp(2))
        data, _ = await alice.next()
        assert data == rtp(2)

        # Once latched, a stray sender is ignored and cannot steal the stream.
        stray = await Phone.open()
        stray.send_to(a, rtp(666))
        alice.send_to(a, rtp(3))
        data, _ = await bob.next()
        assert data == rtp(3)
        assert a.remote == alice.addr
        assert relay.stats()["packets_dropped"] == 1

        # A new offer/answer (set_remote) re-arms latching.
        relay.set_remote(a, *stray.addr)
        relay.set_remote(a, "127.0.0.1", 9)
        stray.send_to(a, rtp(4))
        await bob.next()
        assert a.remote == stray.addr
        for phone in (alice, bob, stray):
            phone.close()
        await relay.stop()

    run(scenario())


def test_without_latch_the_sdp_address_is_kept(run: Run) -> None:
    async def scenario() -> None:
        relay, a, b, alice, bob = await call_between_two_phones(latch=False)
        other = await Phone.open()
        other.send_to(a, rtp(1))  # any source is relayed, destination unchanged
        await bob.next()
        assert a.remote == alice.addr
        bob.send_to(b, rtp(2))
        data, _ = await alice.next()
        assert data == rtp(2)
        for phone in (alice, bob, other):
            phone.close()
        await relay.stop()

    run(scenario())


def test_packets_before_connect_or_without_remote_are_counted_and_dropped(run: Run) -> None:
    async def scenario() -> None:
        relay = await started_relay(*free_port_range(2))
        alice, bob = await Phone.open(), await Phone.open()
        a, b = relay.allocate_leg(), relay.allocate_leg()
        alice.send_to(a, rtp(1))  # not connected yet
        await wait_until(lambda: a.packets_in == 1)
        relay.connect(a, b)
        alice.send_to(a, rtp(2))  # connected, but b has no remote yet
        await wait_until(lambda: a.packets_in == 2)
        relay.set_remote(b, *bob.addr)
        alice.send_to(a, rtp(3))
        data, _ = await bob.next()
        assert data == rtp(3), "the earlier packets were dropped, in order"
        assert a.packets_in == 3 and b.packets_out == 1
        assert relay.stats()["packets_dropped"] == 2
        assert bob.received.empty()
        alice.close()
        bob.close()
        await relay.stop()

    run(scenario())


def test_release_frees_the_port_and_is_idempotent(run: Run) -> None:
    async def scenario() -> None:
        low, high = free_port_range(1)
        relay = await started_relay(low, high)
        leg = relay.allocate_leg()
        assert leg.local_port == low and leg.rtcp_port == high
        relay.release(leg)
        relay.release(leg)
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind((HOST, low))  # the relay's socket is really closed
        probe.close()
        again = relay.allocate_leg()
        assert again.local_port == low and again.id != leg.id
        with pytest.raises(MediaError, match=f"leg {leg.id} is not active"):
            relay.set_remote(leg, HOST, 4000)
        assert relay.stats()["legs_active"] == 1
        await relay.stop()

    run(scenario())


def test_released_leg_stops_relaying_for_its_peer(run: Run) -> None:
    async def scenario() -> None:
        relay, a, b, alice, bob = await call_between_two_phones()
        relay.release(b)
        alice.send_to(a, rtp(1))
        await wait_until(lambda: a.packets_in == 1)
        relay.connect(a, c := relay.allocate_leg())
        relay.set_remote(c, *bob.addr)
        alice.send_to(a, rtp(2))
        data, source = await bob.next()
        assert (data, source) == (rtp(2), (HOST, c.local_port))
        assert relay.stats()["packets_dropped"] == 1
        alice.close()
        bob.close()
        await relay.stop()

    run(scenario())


def test_range_exhaustion_raises_a_clear_media_error(run: Run) -> None:
    async def scenario() -> None:
        low, high = free_port_range(3)
        foreign = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        foreign.bind((HOST, low))  # another process holds the first even port
        relay = await started_relay(low, high)
        legs = [relay.allocate_leg(), relay.allocate_leg()]
        assert sorted(leg.local_port for leg in legs) == [low + 2, low + 4]
        with pytest.raises(MediaError) as err:
            relay.allocate_leg()
        assert str(err.value) == (
            f"no free RTP port in {low}-{high} on {HOST}: 2 legs active here, "
            f"the other even ports are in use by other processes"
        )
        foreign.close()
        await relay.stop()

    run(scenario())


def test_stop_closes_every_socket(run: Run) -> None:
    async def scenario() -> None:
        low, high = free_port_range(3)
        relay = await started_relay(low, high)
        legs = [relay.allocate_leg() for _ in range(3)]
        await relay.stop()
        assert relay.stats()["legs_active"] == 0
        for leg in legs:
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind((HOST, leg.local_port))
            probe.close()
        with pytest.raises(MediaError, match="not started"):
            relay.allocate_leg()

    run(scenario())


def test_misuse_is_refused() -> None:
    with pytest.raises(ValueError, match="no even/odd port pair"):
        MediaRelay(HOST, 40001, 40002)
    with pytest.raises(ValueError, match="bad RTP port range"):
        MediaRelay(HOST, 40010, 40000)

    async def scenario() -> None:
        relay = MediaRelay(HOST, *free_port_range(2))
        with pytest.raises(MediaError, match="not started"):
            relay.allocate_leg()
        await relay.start()
        a, b = relay.allocate_leg(), relay.allocate_leg()
        with pytest.raises(MediaError, match="IP literal"):
            relay.set_remote(a, "phone.example.com", 4000)
        with pytest.raises(MediaError, match="bad media port"):
            relay.set_remote(a, HOST, 0)
        with pytest.raises(MediaError, match="to itself"):
            relay.connect(a, a)
        relay.connect(a, b)
        await relay.stop()

    asyncio.run(scenario())

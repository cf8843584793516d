"""Simulated phones calling through a real edge daemon (a child process).

The phones run on the test's loop over real UDP sockets; the edge is
``branchline edge run`` from tests/sipp.py's EdgeProcess. CDRs are read from the
edge's SQLite store after the daemon has stopped, as an operator would find them.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.sim.phones import Phone, SimError
from appliance.sim.rtp import RtpStream, parse_header
from tests.sipp import REPO_ROOT, EdgeProcess

pytestmark = pytest.mark.timeout(90)

DOMAIN = "test.local"  # tests/sipp.py default_edge_config
USERS = {"1001": "pw1001", "2001": "pw2001", "1003": "pw1003"}
OVERRIDES = {
    "extensions": [{"number": n, "password": p} for n, p in USERS.items()],
    "sip": {"t1_ms": 100},  # a lost datagram costs 100 ms, not 500 ms
}


@pytest.fixture
def edge(edge_factory: Callable[..., EdgeProcess]) -> EdgeProcess:
    return edge_factory(OVERRIDES)


@pytest.fixture
async def phones(edge: EdgeProcess) -> AsyncIterator[dict[str, Phone]]:
    """1001 and 2001 started and registered; 1003 exists in the config but never registers."""
    made = {n: Phone(n, USERS[n], edge.sip_udp, DOMAIN) for n in ("1001", "2001")}
    for phone in made.values():
        await phone.start()
    try:
        await asyncio.gather(*(p.register() for p in made.values()))
        yield made
    finally:
        for phone in made.values():
            await phone.close()


async def _cdrs(edge: EdgeProcess) -> list[Any]:
    from edge_core.store.db import EdgeStore

    store = await EdgeStore.open(edge.config["store"]["path"])
    try:
        return list(await store.list_cdrs(20))
    finally:
        await store.close()


async def test_call_through_edge_has_rtp_both_ways_and_a_cdr(
    edge: EdgeProcess, phones: dict[str, Phone]
) -> None:
    alice, bob = phones["1001"], phones["2001"]
    result = await alice.call("2001", talk_s=0.6, callee=bob)

    assert result.error == ""
    assert (result.status, result.hangup_side) == (200, "caller")
    assert result.ringing_s is not None and result.answered_s is not None
    assert result.ringing_s <= result.answered_s
    assert result.caller_sent >= 25 and result.caller_received > 0
    assert result.callee_sent is not None and result.callee_sent > 0
    assert result.callee_received is not None and result.callee_received > 0
    inc = next(iter(bob.incoming.values()))
    assert inc.caller == f"sip:1001@{DOMAIN}"  # the edge presents the authenticated caller

    edge.stop()  # SIGTERM; exit 0 asserted; the store is flushed and closed
    (cdr,) = await _cdrs(edge)
    assert cdr.disposition == "answered"
    assert cdr.hangup_side == "caller"
    assert (cdr.from_number, cdr.to_number, cdr.destination) == ("1001", "2001", "extension:2001")
    assert cdr.sip_status == 200
    assert cdr.answer_time is not None and cdr.end_time >= cdr.answer_time
    assert cdr.packets_a_to_b > 0 and cdr.packets_b_to_a > 0


async def test_calls_the_edge_cannot_connect_get_their_status(
    edge: EdgeProcess, phones: dict[str, Phone]
) -> None:
    # one edge for every refusal: each daemon takes seconds to drain its transactions
    alice = phones["1001"]
    cases = {"1003": 480, "12345": 404, "3999": 404}  # unregistered, no route, no such extension
    results = await asyncio.gather(*(alice.call(n, talk_s=0.1) for n in cases))
    for expected, result in zip(cases.values(), results, strict=True):
        assert result.status == expected, result.line(1)
        assert result.hangup_side is None and result.caller_sent == 0, result.line(1)

    async with Phone("1003", "not-the-password", edge.sip_udp, DOMAIN) as impostor:
        with pytest.raises(SimError, match="403"):
            await impostor.register()


@pytest.mark.slow
def test_branchline_demo_exits_0_and_prints_cdrs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edge_core.cli", "demo", "--calls", "2"],
        cwd=REPO_ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    # two simulated calls, the agent's *71 login and the hotline call through IVR and queue
    assert "call records (4)" in proc.stdout, proc.stdout
    answered = [line for line in proc.stdout.splitlines() if "extension:" in line and " answered " in line]
    assert len(answered) == 2, proc.stdout
    hotline = [line for line in proc.stdout.splitlines() if "flow:hotline" in line and " answered " in line]
    assert len(hotline) == 1, proc.stdout
    assert "talked to 2001, then rated the call 4/5: 200 OK, ended by the edge" in proc.stdout
    (rated,) = hotline
    assert rated.split()[-2] == "4", rated  # the survey column, before the recording's name
    board = [line for line in proc.stdout.splitlines() if line.strip().startswith("sales ")]
    assert len(board) == 2, proc.stdout  # live while the customer waits, then after the calls
    assert "waiting 1" in board[0] and "logged_out" in board[0], proc.stdout
    assert "answered 1" in board[1] and "service level 100%" in board[1], proc.stdout
    assert "branchline edge run --config examples/site.yaml" in proc.stdout
    # the embedded broker and the fleet: the demo's site shows up online there
    assert "fleet: NOC dashboard http://127.0.0.1:" in proc.stdout, proc.stdout
    assert "fleet: branch-001 is online in the fleet, mode normal" in proc.stdout, proc.stdout
    # the simulated front panel and UPS, through the hardware agent
    assert "front panel: link up, watchdog normal, bypass relay off" in proc.stdout, proc.stdout
    assert "ups: battery_pct 100" in proc.stdout and "temperature_c 22.5" in proc.stdout, proc.stdout
    # a release rolled out over the simulated branches in two waves, one rolled back
    assert 'rollout "demo: 0.2.0 to 4 branches" done (waves [1, 3])' in proc.stdout, proc.stdout
    assert "branch-004: rolled_back - api:" in proc.stdout, proc.stdout


async def test_phone_rtp_is_20ms_pcmu_with_consecutive_sequence_and_timestamp() -> None:
    """What the phones put on the wire, checked on a plain socket (no edge)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        stream = await RtpStream.open("127.0.0.1")
        stream.remote = sink.getsockname()
        await stream.talk(0.1)
        stream.close()
        sink.setblocking(False)
        packets = []
        while True:
            try:
                packets.append(sink.recv(2048))
            except BlockingIOError:
                break
    assert len(packets) == stream.packets_sent == 5
    parsed = [parse_header(p) for p in packets]
    headers = [h for h in parsed if h is not None]
    assert len(headers) == 5 and all(len(p) == 12 + 160 for p in packets)
    assert {h.payload_type for h in headers} == {0}
    assert [h.marker for h in headers] == [True, False, False, False, False]
    assert len({h.ssrc for h in headers}) == 1
    for before, after in itertools.pairwise(headers):
        assert after.sequence == (before.sequence + 1) & 0xFFFF
        assert after.timestamp == (before.timestamp + 160) & 0xFFFFFFFF

"""SIPp agents and callers through the real edge daemon's contact center.

The path of test_contact_center.py, with SIPp as every peer instead of the simulated
phones. An agent's phone is two SIPp runs from one port: ``acd_agent_login`` (REGISTER
with digest, then the login code *71, which the edge answers, confirms with a prompt
and hangs up), then a UAS on the same port that answers the edge's agent legs
(``acd_agent``, after ``-d`` ms) or lets them ring until the edge cancels
(``acd_agent_noanswer``). A caller (``acd_caller`` / ``acd_caller_wait_bye``)
dials the hotline 100 with digest auth, presses 1 in the menu (RFC 4733 from SIPp's
``dtmf_2833_1.pcap``), waits in the queue on hold music and talks to whoever the
center picked (or is hung up by the edge).

Which agent got which call is read from the wire: each agent SIPp's received
INVITEs (``-trace_msg``) carry the Call-ID the edge gave that agent leg, and the
hotline CDR's ``b_call_id`` names the leg that was joined. Agent state changes are
waited for in the edge's INFO log (``agent: AgentStateChanged(...)``), never slept for.

``play_pcap_audio`` sends through a raw socket (root or CAP_NET_RAW): without one
these tests skip.
"""

from __future__ import annotations

import re
import socket
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.pcap import LoopbackCapture
from tests.sipp import (
    EdgeProcess,
    Sipp,
    SippResult,
    free_udp_port,
    wait_for,
    write_users_csv,
)

pytestmark = [pytest.mark.timeout(90), pytest.mark.sipp]

LOCAL = "127.0.0.1"
DOMAIN = "test.local"
DIGIT_PCAP = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")  # what acd_caller*.xml play
CALLER = "1001"
USERS = {CALLER: "pw1001", "2001": "pw2001", "2002": "pw2002", "2003": "pw2003"}
SIPP_TIMEOUT_S = 30.0

EdgeFactory = Callable[..., EdgeProcess]
SippFactory = Callable[..., Sipp]


@pytest.fixture(autouse=True)
def _raw_sockets_and_pcap() -> None:
    if not DIGIT_PCAP.is_file():
        pytest.skip(f"SIPp's capture is missing: {DIGIT_PCAP}")
    if not LoopbackCapture.available():
        pytest.skip("play_pcap_audio needs raw sockets (root or CAP_NET_RAW)")


# --------------------------------------------------------------------------- helpers


def site(
    tmp_path: Path,
    queues: Sequence[dict[str, Any]],
    agents: Sequence[dict[str, Any]],
    *,
    next_on_overflow: str | None = None,
) -> dict[str, Any]:
    """Hotline 100: menu (key 1 -> queue ``queues[0]``), agents on 2001.., fast T1, tones."""
    queue_node: dict[str, Any] = {"type": "queue", "queue": queues[0]["name"]}
    if next_on_overflow is not None:
        queue_node["next_on_overflow"] = next_on_overflow
    return {
        "extensions": [{"number": n, "password": p} for n, p in USERS.items()],
        "sip": {"t1_ms": 100},
        "prompts": {"dir": str(tmp_path / "prompts"), "generate": "tones"},
        "routes": [
            {"match": r"^(\d{4})$", "extension": r"\1"},
            {"match": r"^100$", "flow": "hotline"},
        ],
        "flows": {
            "hotline": {
                "start": "menu",
                "nodes": {
                    "menu": {
                        "type": "menu",
                        "prompt": "menu_main",
                        "options": {"1": "queue"},
                        "timeout_s": 3,
                        "retries": 0,
                        "on_fail": "bye",
                    },
                    "queue": queue_node,
                    "bye": {"type": "hangup", "cause": "no-choice"},
                },
            }
        },
        "queues": [
            {"ring_timeout_s": 5, "wrap_up_s": 0.2, "announce_every_s": 0, **q} for q in queues
        ],
        "agents": list(agents),
    }


def users_csv(tmp_path: Path, user: str) -> Path:
    return write_users_csv(tmp_path / f"users-{user}.csv", [(user, USERS[user])], DOMAIN)


def assert_ok(result: SippResult, calls: int) -> None:
    assert result.ok and result.successful == calls and result.failed == 0, result.describe()


def login(
    sipp_factory: SippFactory, edge: EdgeProcess, tmp_path: Path, extension: str, agent_id: str
) -> int:
    """Register ``extension`` from a fresh port and dial *71 from it; return the port.

    The run ends with the edge's BYE, after the center logged the agent in.
    """
    port = free_udp_port()
    ua = sipp_factory(
        "acd_agent_login", remote=edge.sip_udp, local_port=port, service="*71", calls=1,
        inf=users_csv(tmp_path, extension), timeout_s=10, name=f"login-{extension}",
    )  # fmt: skip
    assert_ok(ua.start().wait(), 1)
    log = edge.stderr_text()
    assert f"agent {agent_id} logged in at {extension}" in log, log[-3000:]
    return port


def port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((LOCAL, port))
        except OSError:
            return True
    return False


def agent_phone(
    sipp_factory: SippFactory,
    port: int,
    *,
    answer_after_ms: int | None,
    calls: int | None = None,
    name: str,
    hang_up_after_ms: int | None = None,
) -> Sipp:
    """The agent's UAS on ``port`` (where it registered from), listening before this returns.

    ``answer_after_ms`` None: it rings and never answers. ``hang_up_after_ms``: it
    answers at once and sends the BYE itself after that long.
    """
    hold_ms: int | None
    if hang_up_after_ms is not None:
        scenario, hold_ms = "acd_agent_bye", hang_up_after_ms
    else:
        scenario = "acd_agent_noanswer" if answer_after_ms is None else "acd_agent"
        hold_ms = answer_after_ms
    ua = sipp_factory(
        scenario, local_port=port, calls=calls, hold_ms=hold_ms,
        timeout_s=SIPP_TIMEOUT_S, trace_msg=True, name=name,
    ).start()  # fmt: skip
    wait_for(
        lambda: not ua.running() or port_taken(port),
        5.0, what=f"sipp {name} listening on {port}",
    )  # fmt: skip
    assert ua.running(), ua.stop().describe()
    return ua


def caller(
    sipp_factory: SippFactory,
    edge: EdgeProcess,
    tmp_path: Path,
    *,
    talk_ms: int | None,
    calls: int = 1,
    name: str = "caller",
) -> Sipp:
    """Callers to 100 from 1001 one after another; ``talk_ms`` None: they wait for the edge's BYE."""
    return sipp_factory(
        "acd_caller_wait_bye" if talk_ms is None else "acd_caller",
        remote=edge.sip_udp, service="100", calls=calls, limit=1, hold_ms=talk_ms,
        inf=users_csv(tmp_path, CALLER), timeout_s=SIPP_TIMEOUT_S, trace_msg=True, name=name,
    ).start()  # fmt: skip


def received(sipp: Sipp, method: str) -> list[str]:
    """Call-IDs of the ``method`` requests ``sipp`` received (retransmissions once), in order."""
    text = sipp.message_file.read_text(errors="replace") if sipp.message_file.is_file() else ""
    out: list[str] = []
    for block in re.split(r"^-{10,}.*$", text.replace("\r", ""), flags=re.M):
        head, _, message = block.strip().partition("\n")
        if "received" not in head or not message.strip().startswith(f"{method} "):
            continue
        m = re.search(r"^(?:Call-ID|i)\s*:\s*(\S+)", message, re.M | re.I)
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


def agent_changes(edge: EdgeProcess, agent_id: str) -> list[tuple[str, str]]:
    """``(new state, reason)`` of each AgentStateChanged the edge logged for ``agent_id``."""
    return [(new, reason) for _, new, reason in agent_log(edge, agent_id)]


def agent_log(edge: EdgeProcess, agent_id: str) -> list[tuple[float, str, str]]:
    """``(wall time, new state, reason)`` of each AgentStateChanged logged for ``agent_id``."""
    pattern = (
        r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*"
        rf"AgentStateChanged\(agent_id='{re.escape(agent_id)}', old=<AgentState\.\w+: '\w+'>, "
        r"new=<AgentState\.\w+: '(\w+)'>, reason='([^']*)'\)"
    )
    return [
        (datetime.strptime(at, "%Y-%m-%d %H:%M:%S,%f").timestamp(), new, reason)
        for at, new, reason in re.findall(pattern, edge.stderr_text(), re.M)
    ]


def wait_available(edge: EdgeProcess, agent_id: str, times: int, timeout_s: float = 10.0) -> None:
    """Until the edge has logged ``agent_id`` becoming available ``times`` times."""
    wait_for(
        lambda: sum(1 for new, _ in agent_changes(edge, agent_id) if new == "available") >= times,
        timeout_s, what=f"agent {agent_id} available x{times}\n{edge.stderr_text()[-2000:]}",
    )  # fmt: skip


def cdrs(edge: EdgeProcess) -> list[dict[str, Any]]:
    """Every CDR in the stopped edge's store, oldest first."""
    assert not edge.running(), "read the store after the edge has stopped"
    con = sqlite3.connect(edge.config["store"]["path"])
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM cdrs ORDER BY id")]
    finally:
        con.close()


def hotline_cdrs(edge: EdgeProcess) -> list[dict[str, Any]]:
    """The hotline calls' CDRs, each checked for what every one of them must say."""
    rows = [r for r in cdrs(edge) if r["destination"] == "flow:hotline"]
    for row in rows:
        assert (row["from_number"], row["to_number"]) == (CALLER, "100"), row
        assert row["dtmf"] == "1", row  # the key from the pcap, read by the edge
        assert row["answer_time"] is not None, row  # the edge answers hotline calls itself
    return rows


def feature_code_cdrs(edge: EdgeProcess) -> list[dict[str, Any]]:
    return [r for r in cdrs(edge) if r["destination"] == "feature-code"]


# --------------------------------------------------------------------------- 1. linear


def test_linear_rings_the_lowest_order_agent(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    """Two agents logged in, order 0 last (so it is not the longest idle): order 0 gets it."""
    edge = edge_factory(site(
        tmp_path,
        [{"name": "sales", "strategy": "linear"}],
        [{"id": "first", "extension": "2001", "queues": ["sales"], "order": 0},
         {"id": "second", "extension": "2002", "queues": ["sales"], "order": 1}],
    ))  # fmt: skip
    second_port = login(sipp_factory, edge, tmp_path, "2002", "second")
    first_port = login(sipp_factory, edge, tmp_path, "2001", "first")
    first = agent_phone(sipp_factory, first_port, answer_after_ms=200, calls=1, name="first")
    second = agent_phone(sipp_factory, second_port, answer_after_ms=200, name="second")

    call = caller(sipp_factory, edge, tmp_path, talk_ms=2000).wait()
    assert_ok(call, 1)
    assert_ok(first.wait(timeout=10), 1)
    idle = second.stop()
    assert received(second, "INVITE") == [], idle.describe()

    edge.stop()
    (row,) = hotline_cdrs(edge)
    assert row["disposition"] == "answered" and row["hangup_side"] == "caller", row
    assert [row["b_call_id"]] == received(first, "INVITE"), row
    logins = feature_code_cdrs(edge)
    assert sorted(r["from_number"] for r in logins) == ["2001", "2002"], logins
    assert all(r["to_number"] == "*71" and r["cause"] == "feature-code" for r in logins), logins


# --------------------------------------------------------------------------- 2. no answer


def test_unanswered_ring_moves_on_and_auto_pauses_the_agent(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    """Order 0 lets the first call ring out (CANCEL, 487) and is paused after that one
    ring (auto_pause_after: 1); order 1 answers it, and the second call too, directly."""
    ring_timeout_s = 1.0
    edge = edge_factory(site(
        tmp_path,
        [{"name": "sales", "strategy": "linear", "ring_timeout_s": ring_timeout_s,
          "auto_pause_after": 1}],
        [{"id": "asleep", "extension": "2001", "queues": ["sales"], "order": 0},
         {"id": "awake", "extension": "2002", "queues": ["sales"], "order": 1}],
    ))  # fmt: skip
    asleep = agent_phone(
        sipp_factory, login(sipp_factory, edge, tmp_path, "2001", "asleep"),
        answer_after_ms=None, name="asleep",
    )  # fmt: skip
    awake = agent_phone(
        sipp_factory, login(sipp_factory, edge, tmp_path, "2002", "awake"),
        answer_after_ms=200, calls=2, name="awake",
    )  # fmt: skip

    started = time.monotonic()
    calls = caller(sipp_factory, edge, tmp_path, talk_ms=3500, calls=2).wait()
    assert_ok(calls, 2)
    assert_ok(awake.wait(timeout=10), 2)
    rang_out = asleep.stop()
    assert_ok(rang_out, 1)  # INVITE, 180, CANCEL, 200, 487, ACK: once
    (asleep_leg,) = received(asleep, "INVITE")
    assert received(asleep, "CANCEL") == [asleep_leg]
    assert time.monotonic() - started > ring_timeout_s
    assert ("paused", "auto-paused after unanswered rings") in agent_changes(edge, "asleep")

    edge.stop()
    rows = hotline_cdrs(edge)
    assert [r["disposition"] for r in rows] == ["answered", "answered"], rows
    assert [r["b_call_id"] for r in rows] == received(awake, "INVITE"), rows


# --------------------------------------------------------------------------- 3. longest idle


def test_longest_idle_alternates_by_idle_time(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    """Three calls, each placed once both agents are free again: the one idle longest
    answers. ``early`` logged in first, so it is idle longest at the start, although its
    ``order`` (ignored by this strategy) would put it second."""
    edge = edge_factory(site(
        tmp_path,
        [{"name": "sales", "strategy": "longest-idle", "wrap_up_s": 0.2}],
        [{"id": "late", "extension": "2001", "queues": ["sales"], "order": 0},
         {"id": "early", "extension": "2002", "queues": ["sales"], "order": 1}],
    ))  # fmt: skip
    early_port = login(sipp_factory, edge, tmp_path, "2002", "early")
    late_port = login(sipp_factory, edge, tmp_path, "2001", "late")
    early = agent_phone(sipp_factory, early_port, answer_after_ms=100, calls=2, name="early")
    late = agent_phone(sipp_factory, late_port, answer_after_ms=100, calls=1, name="late")

    expected = ["early", "late", "early"]
    became_free = {"early": 1, "late": 1}  # the login
    for n, agent in enumerate(expected):
        assert_ok(caller(sipp_factory, edge, tmp_path, talk_ms=1200, name=f"caller{n}").wait(), 1)
        became_free[agent] += 1  # wrap-up over: idle from now on
        wait_available(edge, agent, became_free[agent])
    assert_ok(early.wait(timeout=10), 2)
    assert_ok(late.wait(timeout=10), 1)

    edge.stop()
    legs = {leg: "early" for leg in received(early, "INVITE")}
    legs.update({leg: "late" for leg in received(late, "INVITE")})
    rows = hotline_cdrs(edge)
    assert [legs.get(r["b_call_id"]) for r in rows] == expected, rows


# --------------------------------------------------------------------------- 4. overflow

MAX_WAIT_S = 2.0
MARGIN_S = 1.5  # timer resolution, the menu and the key before the queue, a loaded host


def test_max_wait_overflows_into_another_queue_whose_agent_answers(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    """``sales`` takes the call with nobody logged in (join_empty); after max_wait_s it
    moves to ``backup``, whose agent is rung then, and not before, and answers."""
    edge = edge_factory(site(
        tmp_path,
        [{"name": "sales", "join_empty": True, "max_wait_s": MAX_WAIT_S,
          "overflow": {"type": "queue", "target": "backup"}},
         {"name": "backup"}],
        [{"id": "absent", "extension": "2001", "queues": ["sales"]},
         {"id": "rescue", "extension": "2003", "queues": ["backup"]}],
    ))  # fmt: skip
    rescue = agent_phone(
        sipp_factory, login(sipp_factory, edge, tmp_path, "2003", "rescue"),
        answer_after_ms=100, calls=1, name="rescue",
    )  # fmt: skip
    assert_ok(caller(sipp_factory, edge, tmp_path, talk_ms=int((MAX_WAIT_S + 3) * 1000)).wait(), 1)
    assert_ok(rescue.wait(timeout=10), 1)

    edge.stop()
    (row,) = hotline_cdrs(edge)
    assert (row["disposition"], row["hangup_side"]) == ("answered", "caller"), row
    assert [row["b_call_id"]] == received(rescue, "INVITE"), row
    (rang_at,) = [at for at, new, _ in agent_log(edge, "rescue") if new == "ringing"]
    assert MAX_WAIT_S <= rang_at - row["start_time"] < MAX_WAIT_S + MARGIN_S, (rang_at, row)


def test_max_wait_with_nowhere_to_go_hangs_the_caller_up(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    """No overflow and no ``next_on_overflow``: after max_wait_s the edge sends the caller
    a BYE, and the CDR says why (cause ``ivr-queue-overflow``, hung up by the edge)."""
    edge = edge_factory(site(
        tmp_path,
        [{"name": "sales", "join_empty": True, "max_wait_s": MAX_WAIT_S}],
        [{"id": "absent", "extension": "2001", "queues": ["sales"]}],
    ))  # fmt: skip
    started = time.monotonic()
    result = caller(sipp_factory, edge, tmp_path, talk_ms=None).wait(timeout=MAX_WAIT_S + 10)
    waited = time.monotonic() - started
    assert_ok(result, 1)  # it got the BYE and answered it
    assert MAX_WAIT_S <= waited < MAX_WAIT_S + MARGIN_S + 1.0, waited  # + sipp start and exit

    edge.stop()
    (row,) = hotline_cdrs(edge)
    outcome = (row["disposition"], row["hangup_side"], row["cause"])
    assert outcome == ("answered", "edge", "ivr-queue-overflow"), row
    assert row["b_call_id"] is None, row  # no agent leg was ever joined
    assert MAX_WAIT_S <= row["end_time"] - row["answer_time"] < MAX_WAIT_S + MARGIN_S, row


# --------------------------------------------------------------------------- 5. cancelled rings


def test_ring_all_cancels_the_other_phone_when_one_answers(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    """Both agents ring; the first to answer gets the caller, the other phone a CANCEL
    (200, 487, ACK), and goes back to available without counting an unanswered ring."""
    edge = edge_factory(site(
        tmp_path,
        [{"name": "sales", "strategy": "ring-all", "auto_pause_after": 1}],
        [{"id": "picks-up", "extension": "2001", "queues": ["sales"]},
         {"id": "too-slow", "extension": "2002", "queues": ["sales"]}],
    ))  # fmt: skip
    picks_up = agent_phone(
        sipp_factory, login(sipp_factory, edge, tmp_path, "2001", "picks-up"),
        answer_after_ms=300, calls=1, name="picks-up",
    )  # fmt: skip
    too_slow = agent_phone(
        sipp_factory, login(sipp_factory, edge, tmp_path, "2002", "too-slow"),
        answer_after_ms=None, calls=1, name="too-slow",
    )  # fmt: skip
    assert_ok(caller(sipp_factory, edge, tmp_path, talk_ms=1500).wait(), 1)
    assert_ok(picks_up.wait(timeout=10), 1)
    assert_ok(too_slow.wait(timeout=10), 1)
    assert received(too_slow, "CANCEL") == received(too_slow, "INVITE") != []
    assert agent_changes(edge, "too-slow")[-1] == ("available", "ring cancelled")

    edge.stop()
    (row,) = hotline_cdrs(edge)
    assert [row["b_call_id"]] == received(picks_up, "INVITE"), row


def test_caller_who_hangs_up_while_the_agent_rings_cancels_the_ring(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    """The caller leaves during the 5 s ring: the agent's phone gets a CANCEL at once and
    the agent is available again, not paused (auto_pause_after: 1 counts no-answers only)."""
    edge = edge_factory(site(
        tmp_path,
        [{"name": "sales", "auto_pause_after": 1}],
        [{"id": "ringing", "extension": "2001", "queues": ["sales"]}],
    ))  # fmt: skip
    phone = agent_phone(
        sipp_factory, login(sipp_factory, edge, tmp_path, "2001", "ringing"),
        answer_after_ms=None, calls=1, name="ringing",
    )  # fmt: skip
    assert_ok(caller(sipp_factory, edge, tmp_path, talk_ms=1000).wait(), 1)
    assert_ok(phone.wait(timeout=3), 1)  # well before the 5 s ring timeout
    assert received(phone, "CANCEL") == received(phone, "INVITE") != []
    wait_available(edge, "ringing", 2)
    assert agent_changes(edge, "ringing")[-1] == ("available", "ring cancelled")

    edge.stop()
    (row,) = hotline_cdrs(edge)
    outcome = (row["disposition"], row["hangup_side"], row["b_call_id"])
    assert outcome == ("answered", "caller", None), row


# --------------------------------------------------------------------------- 6. agent hangs up


def test_agent_who_hangs_up_ends_the_call_and_goes_to_wrap_up(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    """The agent's BYE reaches the caller as the edge's BYE; the CDR says the callee
    side hung up, and the agent goes through wrap-up to available."""
    edge = edge_factory(site(
        tmp_path,
        [{"name": "sales", "wrap_up_s": 0.3}],
        [{"id": "brief", "extension": "2001", "queues": ["sales"]}],
    ))  # fmt: skip
    phone = agent_phone(
        sipp_factory, login(sipp_factory, edge, tmp_path, "2001", "brief"),
        answer_after_ms=0, hang_up_after_ms=800, calls=1, name="brief",
    )  # fmt: skip
    assert_ok(caller(sipp_factory, edge, tmp_path, talk_ms=None).wait(timeout=15), 1)
    assert_ok(phone.wait(timeout=10), 1)
    wait_available(edge, "brief", 2)
    states = [new for new, _ in agent_changes(edge, "brief")]
    assert states == ["available", "ringing", "on_call", "wrap_up", "available"], states

    edge.stop()
    (row,) = hotline_cdrs(edge)
    assert (row["disposition"], row["hangup_side"]) == ("answered", "callee"), row
    assert [row["b_call_id"]] == received(phone, "INVITE"), row


# --------------------------------------------------------------------------- 7. ring again

SHUTDOWN_GRACE_S = 10.0  # edge_core.app: how long a stopping edge waits for transactions


def test_an_agent_rung_again_after_a_ring_timeout_gets_every_ring_cancelled(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    """One agent who never answers and is never paused (auto_pause_after: 0): the call
    is offered to them again after each ring timeout. Every INVITE the phone gets must
    be CANCELled (at the next timeout, or when the caller hangs up), and a new one only
    follows a timeout: one per ring_timeout_s."""
    ring_timeout_s, talk_s = 1.0, 3.5
    edge = edge_factory(site(
        tmp_path,
        [{"name": "sales", "ring_timeout_s": ring_timeout_s, "auto_pause_after": 0}],
        [{"id": "deaf", "extension": "2001", "queues": ["sales"]}],
    ))  # fmt: skip
    phone: Sipp | None = None
    try:
        phone = agent_phone(
            sipp_factory, login(sipp_factory, edge, tmp_path, "2001", "deaf"),
            answer_after_ms=None, name="deaf",
        )  # fmt: skip
        assert_ok(caller(sipp_factory, edge, tmp_path, talk_ms=int(talk_s * 1000)).wait(), 1)
        wait_for(
            lambda: agent_changes(edge, "deaf")[-1] == ("available", "ring cancelled"),
            5.0, what="the ring the caller's hang-up cancelled",
        )  # fmt: skip
        wait_for(
            lambda: set(received(phone, "CANCEL")) >= set(received(phone, "INVITE")),
            2.0, interval_s=0.1, what="a CANCEL for every INVITE",
        )  # fmt: skip
        rings = [r for new, r in agent_changes(edge, "deaf") if new == "ringing"]
        no_answers = [r for _, r in agent_changes(edge, "deaf") if r.startswith("did not answer")]
        assert len(received(phone, "INVITE")) == len(rings) <= talk_s / ring_timeout_s + 1
        assert len(no_answers) == len(rings) - 1  # the last ring ended with the caller
    finally:
        if phone is not None:
            phone.stop(grace_s=1.0)
        edge.stop(timeout_s=SHUTDOWN_GRACE_S + 5.0)

"""A call as the B2BUA keeps it: its legs, its state, and what the CDR will say."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any

from edge_core.media.sdp import SessionDescription
from edge_core.sip.dialog import Leg
from edge_core.sip.message import Request


class CallState(Enum):
    ROUTING = "routing"  # B-leg INVITE sent, nothing heard yet
    EARLY = "early"  # the callee is ringing (1xx with tag received)
    ANSWERED = "answered"
    ENDED = "ended"


@dataclass(slots=True)
class PendingReinvite:
    """A re-INVITE being passed from one leg to the other."""

    from_leg: Leg
    server_tx: Any
    client_tx: Any


@dataclass(frozen=True, slots=True)
class TrunkAttempt:
    """A trunk a call may leave by: where its INVITE goes."""

    trunk: str
    uri: str
    addr: tuple[str, int]
    transport: str
    silence_s: float = 2.0
    """No answer at all (not even 100 Trying) for this long: on to the next trunk."""


@dataclass(slots=True)
class RingLeg:
    """An outgoing leg of a hosted call that has not answered yet (an agent ringing)."""

    leg: Leg
    agent_id: str
    invite: Request
    tx: Any
    provisional: bool = False
    cancel_pending: bool = False
    transferor: Leg | None = None
    """For a transfer target: the leg that sent the REFER (told by NOTIFY, then let go)."""


class Call:
    __slots__ = (
        "id",
        "a",
        "b",
        "state",
        "a_tx",
        "b_tx",
        "b_invite",
        "b_provisional",
        "cancel_b",
        "start_time",
        "answer_time",
        "from_uri",
        "from_number",
        "to_number",
        "destination",
        "reinvite",
        "b_ack",
        "on_hold",
        "recording",
        "offer",
        "digits",
        "hosted",
        "rings",
        "codec",
        "survey_score",
        "transfers",
        "originated",
        "trunk",
        "alternatives",
        "queue",
    )

    def __init__(self, a: Leg, from_uri: str, from_number: str, to_number: str, destination: str, start: float) -> None:
        self.id = str(uuid.uuid4())
        self.a = a
        self.b: Leg | None = None
        self.state = CallState.ROUTING
        self.a_tx: Any = None
        self.b_tx: Any = None
        self.b_invite: Request | None = None
        self.b_provisional = False  # a 1xx came back: a CANCEL may now be sent (§9.1)
        self.cancel_b = False  # CANCEL wanted before a 1xx came back
        self.start_time = start
        self.answer_time: float | None = None
        self.from_uri = from_uri
        self.from_number = from_number
        self.to_number = to_number
        self.destination = destination
        self.reinvite: PendingReinvite | None = None
        self.b_ack: Request | None = None  # re-sent when the callee retransmits its 2xx
        self.on_hold = False  # a re-INVITE put the media on hold: silence is expected
        self.recording: str | None = None  # "" while recorded, then the WAV's path (or None)
        self.offer: SessionDescription | None = None  # the caller's SDP offer
        self.digits: list[str] = []  # DTMF the caller sent (RFC 4733 or in-band), in order
        self.hosted = False  # answered by the edge itself (IVR, queue): see hosted.py
        self.rings: dict[Any, RingLeg] = {}  # client tx -> an agent leg still ringing
        self.codec = "PCMU"  # the G.711 law the caller's leg carries (hosted calls)
        self.survey_score: int | None = None
        self.transfers = 0  # blind transfers (REFER) carried out
        self.originated = False  # placed by the edge (a callback): ``a`` is the edge's UAC leg
        self.trunk: str | None = None  # the trunk the callee leg left by
        self.alternatives: list[Any] = []  # further trunks to try on 408/5xx (TrunkAttempt)
        self.queue: str | None = None  # the ACD queue the call waited in last (the CDR's)

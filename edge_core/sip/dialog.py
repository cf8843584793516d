"""One side of a call as the edge sees it: a SIP dialog (RFC 3261 §12) plus its media leg.

A :class:`Leg` knows how to build the requests the edge sends inside its dialog
(BYE, re-INVITE, ACK for a 2xx). In-dialog requests go to the address the peer's
signalling came from (``addr``), not to its Contact's host: phones behind NAT and
load generators alike are reachable there (what SBCs call "fix NATed contact").
"""

from __future__ import annotations

from typing import Any

from edge_core.sip.message import NameAddr, Request, new_branch


class Leg:
    __slots__ = (
        "call_id",
        "local_tag",
        "remote_tag",
        "local_party",
        "remote_party",
        "remote_target",
        "route_set",
        "local_cseq",
        "remote_cseq",
        "addr",
        "transport",
        "media",
        "sdp_version",
        "confirmed",
    )

    def __init__(
        self,
        call_id: str,
        local_tag: str,
        local_party: str,
        remote_party: str,
        remote_target: str,
        addr: tuple[str, int],
        transport: str,
    ) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag: str | None = None
        # header values for From/To of requests we send, tags included
        self.local_party = local_party
        self.remote_party = remote_party
        self.remote_target = remote_target
        self.route_set: list[str] = []
        self.local_cseq = 0
        self.remote_cseq = 0
        self.addr = addr
        self.transport = transport
        self.media: Any = None  # the media engine's leg handle
        self.sdp_version = 0
        self.confirmed = False

    def next_sdp_version(self) -> int:
        self.sdp_version += 1
        return self.sdp_version

    def request(
        self,
        method: str,
        via: str,
        contact: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        cseq: int | None = None,
    ) -> Request:
        """An in-dialog request (§12.2.1.1); ``via`` is the sent-by part, without branch."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        headers = [
            ["Via", f"{via};branch={new_branch()};rport"],
            ["Max-Forwards", "70"],
            ["From", self.local_party],
            ["To", self.remote_party],
            ["Call-ID", self.call_id],
            ["CSeq", f"{cseq} {method}"],
        ]
        headers.extend(["Route", r] for r in self.route_set)
        if method in ("INVITE", "UPDATE", "NOTIFY", "REFER"):  # target-refresh: Contact required
            headers.append(["Contact", contact])
        if content_type:
            headers.append(["Content-Type", content_type])
        return Request(method, self.remote_target, headers, body)

    def learn_remote(self, remote_party: str, contact: str | None, record_route: list[str]) -> None:
        """Fill in what the peer's dialog-creating message tells (§12.1.2)."""
        self.remote_party = remote_party
        self.remote_tag = NameAddr.parse(remote_party).tag
        if contact:
            self.remote_target = NameAddr.parse(contact).uri
        self.route_set = list(reversed(record_route))

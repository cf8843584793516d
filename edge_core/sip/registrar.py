"""The registrar (RFC 3261 §10.3): phones bind their Contact to an extension's AOR.

Sans-I/O: :meth:`Registrar.handle_register` takes a REGISTER that already passed
digest authentication and returns the response; every binding it adds or removes is
queued in :attr:`Registrar.changes` for the daemon to persist, so bindings survive a
restart (:meth:`Registrar.restore`).
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

from edge_core.sip.message import NameAddr, Request, Response, SipParseError, SipUri


@dataclass(frozen=True, slots=True)
class Binding:
    aor: str
    """Address of record, ``sip:1001@domain``."""
    extension: str
    """The extension number the AOR belongs to."""
    contact: str
    """The Contact URI the phone registered."""
    expires_at: float
    """Wall-clock time (epoch seconds) the binding lapses."""
    call_id: str
    """Call-ID of the REGISTER that made it (§10.3 step 7 ordering)."""
    cseq: int
    """CSeq of that REGISTER."""
    source: tuple[str, int]
    """Where the REGISTER came from; requests to the phone are sent there (NAT)."""
    transport: str
    """``udp`` or ``tcp``."""
    user_agent: str = ""


@dataclass(frozen=True, slots=True)
class BindingChange:
    binding: Binding
    removed: bool
    """True when the binding was removed (expires 0, or replaced)."""


class Registrar:
    def __init__(self, domain: str, min_expires_s: int, max_expires_s: int) -> None:
        self.domain = domain
        self.min_expires_s = min_expires_s
        self.max_expires_s = max_expires_s
        self._bindings: dict[str, dict[str, Binding]] = {}  # extension -> contact -> binding
        self.changes: list[BindingChange] = []

    def restore(self, bindings: list[Binding], now: float) -> None:
        for b in bindings:
            if b.expires_at > now:
                self._bindings.setdefault(b.extension, {})[b.contact] = b

    def lookup(self, extension: str, now: float) -> list[Binding]:
        """Live bindings of ``extension``, the most recent registration first."""
        contacts = self._bindings.get(extension)
        if not contacts:
            return []
        live = [b for b in contacts.values() if b.expires_at > now]
        return sorted(live, key=lambda b: b.expires_at, reverse=True)

    def count(self, now: float) -> int:
        return sum(1 for c in self._bindings.values() for b in c.values() if b.expires_at > now)

    def expire(self, now: float) -> None:
        """Drop lapsed bindings (called from time to time by the daemon)."""
        for contacts in self._bindings.values():
            for contact, b in list(contacts.items()):
                if b.expires_at <= now:
                    del contacts[contact]
                    self.changes.append(BindingChange(b, removed=True))

    def handle_register(
        self,
        request: Request,
        extension: str,
        source: tuple[str, int],
        transport: str,
        now: float,
        to_tag: str,
    ) -> Response:
        """Apply an authenticated REGISTER for ``extension``; returns the response."""
        aor = f"sip:{extension}@{self.domain}"
        contacts = self._bindings.setdefault(extension, {})
        call_id = request.call_id
        cseq = request.cseq[0]
        default_expires = _int_or(request.header("Expires"), 3600)
        values = request.header_values("Contact")

        if values == ["*"] or (len(values) == 1 and values[0].strip() == "*"):
            # §10.3 step 6: '*' only with Expires: 0 and alone
            if default_expires != 0:
                return Response.for_request(request, 400, "Wildcard Contact Needs Expires 0", to_tag=to_tag)
            for b in contacts.values():
                self.changes.append(BindingChange(b, removed=True))
            contacts.clear()
            return self._ok(request, extension, now, to_tag)

        updates: list[tuple[str, int]] = []
        for value in values:
            try:
                contact = NameAddr.parse(value)
                SipUri.parse(contact.uri)
            except SipParseError as exc:
                return Response.for_request(request, 400, f"Bad Contact: {exc}", to_tag=to_tag)
            expires = _int_or(contact.params.get("expires"), default_expires)
            if 0 < expires < self.min_expires_s:
                resp = Response.for_request(request, 423, to_tag=to_tag)
                resp.add_header("Min-Expires", str(self.min_expires_s))
                return resp
            updates.append((contact.uri, min(expires, self.max_expires_s)))

        for uri, expires in updates:
            old = contacts.get(uri)
            if old is not None and old.call_id == call_id and old.cseq >= cseq:
                # §10.3 step 7: an out-of-order REGISTER must not undo a newer one
                return Response.for_request(request, 500, "Out Of Order REGISTER", to_tag=to_tag)
            if expires == 0:
                if old is not None:
                    del contacts[uri]
                    self.changes.append(BindingChange(old, removed=True))
                continue
            binding = Binding(
                aor=aor,
                extension=extension,
                contact=uri,
                expires_at=now + expires,
                call_id=call_id,
                cseq=cseq,
                source=source,
                transport=transport,
                user_agent=request.header("User-Agent") or "",
            )
            contacts[uri] = binding
            self.changes.append(BindingChange(binding, removed=False))
        return self._ok(request, extension, now, to_tag)

    def _ok(self, request: Request, extension: str, now: float, to_tag: str) -> Response:
        resp = Response.for_request(request, 200, to_tag=to_tag)
        for b in self.lookup(extension, now):
            resp.add_header("Contact", f"<{b.contact}>;expires={max(0, int(b.expires_at - now))}")
        resp.add_header("Date", email.utils.formatdate(usegmt=True))
        return resp


def _int_or(value: str | None, default: int) -> int:
    if value is None:
        return default
    value = value.strip()
    return int(value) if value.isdigit() else default

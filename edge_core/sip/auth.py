"""SIP digest authentication (RFC 7616 as RFC 3261 §22 and RFC 8760 apply it): the
challenging side (registrar, B2BUA) and the answering side (trunks, simulators).

Supported: algorithms MD5 and SHA-256, ``qop=auth``; ``userhash=false`` only (a
``userhash=true`` answer is refused; challenges never offer it, and RFC 7616 §3.3
makes its absence mean false). Not supported: ``-sess`` algorithms, ``auth-int``,
SHA-512-256. For old MD5 clients an answer without ``qop`` (RFC 2069 form) is accepted,
MD5 only; it carries no nonce count, so replays within the nonce lifetime go unnoticed.

Nonces are stateless: ``base64url(issue time, 8 bytes || HMAC-SHA256(secret, issue
time || realm)[:16])``, so any worker holding the secret can check one, and an expired
one is answered ``stale=true`` (RFC 7616 §3.4.1, §3.5) for a retry without the user.
The highest nonce count seen per nonce sits in a bounded LRU to refuse replays; a
nonce pushed out of it is treated as stale, so eviction never re-opens a replay.

Sans-I/O and hand-written, like the rest of the SIP stack: no maintained Python library
does SIP digest on both sides without bringing its own transport.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "AuthResult",
    "DigestChallenger",
    "build_authorization",
    "compute_response",
    "parse_challenge",
]

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_REQUIRED = ("username", "realm", "nonce", "uri", "response")
_NONCE_BYTES = 24  # 8 bytes of issue time + 16 bytes of MAC


@dataclass(frozen=True, slots=True)
class AuthResult:
    """What :meth:`DigestChallenger.verify` concluded."""

    ok: bool
    """The credentials are valid: the request may proceed."""
    username: str | None
    """The username the client claimed (None when it could not be read)."""
    stale: bool
    """Digest right but nonce expired: re-challenge with ``stale=true`` (RFC 7616 §3.4.1)."""
    reason: str
    """Why not, in words for the log ("wrong password", "nonce expired", ...); "ok" if ok."""


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    """``'Digest realm="a, b", qop=auth'`` -> ``("Digest", {"realm": "a, b", "qop": "auth"})``.

    Works for WWW-Authenticate / Proxy-Authenticate and Authorization values alike:
    quoted-strings may hold commas and backslash escapes; keys are lower-cased.
    Raises ValueError, saying what is wrong, on anything else.
    """
    parts = value.strip().split(None, 1)
    if not parts or not _is_token(parts[0]):
        raise ValueError("no authentication scheme")
    scheme = parts[0]
    rest = parts[1] if len(parts) > 1 else ""
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while True:
        while i < n and rest[i] in " \t\r\n,":
            i += 1
        if i >= n:
            return scheme, params
        eq = rest.find("=", i)
        if eq < 0:
            raise ValueError(f"parameter without '=': {rest[i : i + 30]!r}")
        key = rest[i:eq].strip().lower()
        if not _is_token(key):
            raise ValueError(f"bad parameter name {key[:30]!r}")
        i = eq + 1
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise ValueError(f"unterminated quoted value of {key}")
                c = rest[i]
                if c == "\\" and i + 1 < n:
                    chars.append(rest[i + 1])
                    i += 2
                    continue
                i += 1
                if c == '"':
                    break
                chars.append(c)
            val = "".join(chars)
        else:
            start = i
            while i < n and rest[i] not in " \t,":
                i += 1
            val = rest[start:i]
            if not val:
                raise ValueError(f"empty value of {key}")
        if key in params:
            raise ValueError(f"duplicate parameter {key}")
        params[key] = val
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] != ",":
            raise ValueError(f"expected ',' after {key}")


def compute_response(
    algorithm: str, *, username: str, realm: str, password: str, method: str, uri: str,
    nonce: str, nc: str | None = None, cnonce: str | None = None, qop: str | None = None,
) -> str:  # fmt: skip
    """The ``response`` value (RFC 7616 §3.4.1), hex: with ``qop`` ``H(HA1:nonce:nc:
    cnonce:qop:HA2)``, without it the RFC 2069 ``H(HA1:nonce:HA2)``. Strings are UTF-8
    (surrogate escapes from the SIP parser map back to their original bytes)."""
    new = _HASHES[algorithm]

    def h(text: str) -> str:
        return new(text.encode("utf-8", "surrogateescape")).hexdigest()

    ha1 = h(f"{username}:{realm}:{password}")
    ha2 = h(f"{method}:{uri}")
    if qop is None:
        return h(f"{ha1}:{nonce}:{ha2}")
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def build_authorization(
    challenge: str, *, method: str, uri: str, username: str, password: str, cnonce: str,
    nc: int = 1,
) -> str:  # fmt: skip
    """The Authorization / Proxy-Authorization value answering ``challenge`` (client side).

    Uses ``qop=auth`` when offered, the RFC 2069 form when the challenge has no qop.
    Raises ValueError for a challenge it cannot answer (not Digest, other algorithm,
    only ``auth-int``)."""
    scheme, p = parse_challenge(challenge)
    if scheme.lower() != "digest":
        raise ValueError(f"not a Digest challenge: {scheme!r}")
    algorithm = _canonical_algorithm(p.get("algorithm", "MD5"))
    if algorithm is None:
        raise ValueError(f"unsupported algorithm {p.get('algorithm')!r}")
    if "realm" not in p or "nonce" not in p:
        raise ValueError("challenge without realm or nonce")
    qops = [q.strip().lower() for q in p.get("qop", "").split(",") if q.strip()]
    if qops and "auth" not in qops:
        raise ValueError(f"challenge offers only qop {p['qop']!r}")
    qop = "auth" if qops else None
    nc_text = f"{nc:08x}"
    response = compute_response(
        algorithm, username=username, realm=p["realm"], password=password, method=method,
        uri=uri, nonce=p["nonce"], nc=nc_text, cnonce=cnonce, qop=qop,
    )  # fmt: skip
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(p['realm'])}",
        f"uri={_quote(uri)}",
        f"algorithm={algorithm}",
        f"nonce={_quote(p['nonce'])}",
    ]
    if qop is not None:
        parts += [f"nc={nc_text}", f"cnonce={_quote(cnonce)}", f"qop={qop}"]
    parts.append(f'response="{response}"')
    if "opaque" in p:
        parts.append(f"opaque={_quote(p['opaque'])}")
    return "Digest " + ", ".join(parts)


class DigestChallenger:
    """The server side: issues challenges and checks answers, for one realm.

    Interop: SIPp 3.6 (Debian's sip-tester) reads the ``algorithm`` of the first
    challenge only and knows MD5 alone, so with the default order it gives up
    ("authentication must use MD5 or AKAv1-MD5"); give such peers
    ``algorithms=("MD5", "SHA-256")`` or ``("MD5",)``. RFC 8760 clients take the first
    algorithm they support, so the default keeps SHA-256 first.
    """

    def __init__(
        self, realm: str, secret: bytes, *, nonce_ttl_s: float = 300.0,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"), replay_window: int = 10_000,
    ) -> None:  # fmt: skip
        canonical = tuple(_canonical_algorithm(a) for a in algorithms)
        if not canonical or None in canonical:
            raise ValueError(f"algorithms must be among {sorted(_HASHES)}, got {algorithms!r}")
        if not secret:
            raise ValueError("an empty secret would let anyone mint nonces")
        self.realm = realm
        self.algorithms: tuple[str, ...] = canonical  # type: ignore[assignment]
        self.nonce_ttl_s = nonce_ttl_s
        self._secret = secret
        self._realm_bytes = realm.encode("utf-8", "surrogateescape")
        self._window = replay_window
        self._highest_nc: OrderedDict[str, int] = OrderedDict()
        self._evicted_upto = float("-inf")  # newest issue time pushed out of the window

    def challenge(self, now: float, *, stale: bool = False) -> list[str]:
        """WWW-Authenticate / Proxy-Authenticate values, one per algorithm, preferred
        first (RFC 7616 §3.7, RFC 8760 §2.4), all with the same fresh nonce."""
        nonce = self._nonce(now)
        tail = ", stale=true" if stale else ""
        realm = _quote(self.realm)
        return [
            f'Digest realm={realm}, qop="auth", algorithm={a}, nonce="{nonce}"{tail}'
            for a in self.algorithms
        ]

    def verify(
        self, authorization: str, method: str, password_for: Callable[[str], str | None],
        now: float, *, uri: str | None = None,
    ) -> AuthResult:  # fmt: skip
        """Check an Authorization / Proxy-Authorization value for a ``method`` request.

        ``password_for`` maps a username to its password (None: no such user). With
        ``uri``, the answer's ``uri`` must equal it (the request's Request-URI); leave it
        None for SIPp, whose answers carry ``sip:<remote host:port>`` instead."""
        scheme = authorization.split(None, 1)[0] if authorization.strip() else ""
        if scheme.lower() != "digest":  # checked first: other schemes have other syntax
            return _refuse(f"malformed Authorization: scheme {scheme[:20]!r} is not Digest")
        try:
            _, p = parse_challenge(authorization)
        except ValueError as exc:
            return _refuse(f"malformed Authorization: {exc}")
        missing = [k for k in _REQUIRED if k not in p]
        if missing:
            return _refuse(f"malformed Authorization: missing {', '.join(missing)}")
        username, nonce = p["username"], p["nonce"]
        if p["realm"] != self.realm:
            return _refuse(f"realm mismatch: {p['realm'][:40]!r}", username)
        algorithm = _canonical_algorithm(p.get("algorithm", "MD5"))
        if algorithm is None or algorithm not in self.algorithms:
            return _refuse(f"unsupported algorithm {p.get('algorithm', '')[:20]!r}", username)
        if p.get("userhash", "false").lower() != "false":
            return _refuse("unsupported userhash (only userhash=false)", username)
        qop = p.get("qop")
        nc_value: int | None = None
        if qop is None:
            if algorithm != "MD5":
                return _refuse("malformed Authorization: qop missing (only MD5 may omit it)", username)
        elif qop.lower() != "auth":
            return _refuse(f"unsupported qop {qop[:20]!r}", username)
        else:
            nc, cnonce = p.get("nc"), p.get("cnonce")
            if nc is None or cnonce is None:
                return _refuse("malformed Authorization: qop=auth without nc and cnonce", username)
            if len(nc) != 8 or not all(c in "0123456789abcdefABCDEF" for c in nc):
                return _refuse(f"malformed Authorization: nc {nc[:20]!r} is not 8 hex digits", username)
            nc_value = int(nc, 16)
        if uri is not None and p["uri"] != uri:
            return _refuse(f"uri mismatch: {p['uri'][:60]!r}", username)
        issued = self._nonce_issued(nonce)
        if issued is None:
            return _refuse("nonce not issued by us", username)
        password = password_for(username)
        if password is None:
            return _refuse(f"unknown user {username[:40]!r}", username)
        try:
            expected = compute_response(
                algorithm, username=username, realm=self.realm, password=password,
                method=method, uri=p["uri"], nonce=nonce, nc=p.get("nc"),
                cnonce=p.get("cnonce"), qop=None if qop is None else "auth",
            )  # fmt: skip
            given = p["response"].lower().encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return _refuse("malformed Authorization: not encodable as UTF-8", username)
        if not hmac.compare_digest(expected.encode(), given):
            return _refuse("wrong password", username)
        # only now may stale be said: the digest is right, the nonce merely old (§3.4.1)
        if now - issued > self.nonce_ttl_s:
            return AuthResult(False, username, True, "nonce expired")
        if nc_value is not None:
            highest = self._highest_nc.get(nonce)
            if highest is None and issued <= self._evicted_upto:
                return AuthResult(False, username, True, "nonce expired (left the replay window)")
            if highest is not None and nc_value <= highest:
                return _refuse("nonce count replayed", username)
            self._remember_nc(nonce, nc_value, issued)
        return AuthResult(True, username, False, "ok")

    # -- nonces ------------------------------------------------------------------------
    def _mac(self, stamp: bytes) -> bytes:
        return hmac.new(self._secret, stamp + self._realm_bytes, hashlib.sha256).digest()[:16]

    def _nonce(self, now: float) -> str:
        stamp = struct.pack(">d", now)
        return base64.urlsafe_b64encode(stamp + self._mac(stamp)).decode().rstrip("=")

    def _nonce_issued(self, nonce: str) -> float | None:
        """The issue time of a nonce we minted, or None."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except ValueError:  # binascii.Error, or non-ASCII text
            return None
        if len(raw) != _NONCE_BYTES or not hmac.compare_digest(raw[8:], self._mac(raw[:8])):
            return None
        return float(struct.unpack(">d", raw[:8])[0])

    def _remember_nc(self, nonce: str, nc: int, issued: float) -> None:
        table = self._highest_nc
        table[nonce] = nc
        table.move_to_end(nonce)
        while len(table) > self._window:
            old_nonce, _ = table.popitem(last=False)
            old_issued = self._nonce_issued(old_nonce)
            if old_issued is not None and old_issued > self._evicted_upto:
                self._evicted_upto = old_issued


def _refuse(reason: str, username: str | None = None) -> AuthResult:
    return AuthResult(False, username, False, reason)


def _canonical_algorithm(name: str) -> str | None:
    upper = name.upper()
    return upper if upper in _HASHES else None


def _is_token(text: str) -> bool:
    return bool(text) and all(c in _TOKEN_CHARS for c in text)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

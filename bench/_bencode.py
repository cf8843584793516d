"""Bencode, as rtpengine's ng control protocol speaks it (benchmark tooling).

An ng message is ``COOKIE SP bencoded-dict``. Strings are returned as ``bytes``
(SDP bodies are bytes on the wire); dictionary keys are decoded as text.
rtpengine does not sort its dictionary keys, so the decoder accepts any order.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BencodeError", "decode", "encode"]


class BencodeError(ValueError):
    """The bytes are not valid bencode."""


def encode(value: Any) -> bytes:
    """``str``/``bytes`` -> string, ``int`` -> integer, ``list``/``tuple``, ``dict``."""
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: Any, out: list[bytes]) -> None:
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, (bytes, bytearray, str)):
        raw = value.encode() if isinstance(value, str) else bytes(value)
        out.append(b"%d:%s" % (len(raw), raw))
    elif isinstance(value, (list, tuple)):
        out.append(b"l")
        for item in value:
            _encode(item, out)
        out.append(b"e")
    elif isinstance(value, dict):
        out.append(b"d")
        for key in sorted(value, key=lambda k: k.encode() if isinstance(k, str) else k):
            _encode(key, out)
            _encode(value[key], out)
        out.append(b"e")
    else:
        raise TypeError(f"cannot bencode {type(value).__name__}")


def decode(data: bytes) -> Any:
    """Decode one complete value; trailing bytes are an error."""
    value, end = _decode(data, 0)
    if end != len(data):
        raise BencodeError(f"{len(data) - end} trailing bytes after the value")
    return value


def _decode(data: bytes, pos: int) -> tuple[Any, int]:
    if pos >= len(data):
        raise BencodeError("truncated")
    lead = data[pos:pos + 1]
    if lead == b"i":
        end = data.find(b"e", pos)
        if end < 0:
            raise BencodeError("unterminated integer")
        try:
            return int(data[pos + 1:end]), end + 1
        except ValueError:
            raise BencodeError(f"bad integer at {pos}") from None
    if lead == b"l":
        items, pos = [], pos + 1
        while data[pos:pos + 1] != b"e":
            item, pos = _decode(data, pos)
            items.append(item)
        return items, pos + 1
    if lead == b"d":
        result: dict[str, Any] = {}
        pos += 1
        while data[pos:pos + 1] != b"e":
            key, pos = _decode(data, pos)
            if not isinstance(key, bytes):
                raise BencodeError("dictionary key is not a string")
            result[key.decode(errors="replace")], pos = _decode(data, pos)
        return result, pos + 1
    if lead.isdigit():
        colon = data.find(b":", pos)
        if colon < 0:
            raise BencodeError("unterminated string length")
        start = colon + 1
        end = start + int(data[pos:colon])
        if end > len(data):
            raise BencodeError("truncated string")
        return data[start:end], end
    raise BencodeError(f"unexpected byte {lead!r} at {pos}")

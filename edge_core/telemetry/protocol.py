"""The edge <-> fleet MQTT protocol, v1: topics, payloads, and config signatures.

One module both sides import, so the contract cannot drift. Payloads are JSON objects
validated by pydantic (a malformed payload raises :class:`ProtocolError` naming the
field; the receiver counts it and drops it, it never crashes on one). Only MQTT 3.1.1
features are used: QoS 1, retained messages, the last-will; correlation ids travel in
the payload (see ../shared/ARCHITECTURE.md, "MQTT topics (v1)").

Configs are signed with ed25519 over a canonical JSON encoding (sorted keys, no
whitespace, UTF-8) of ``{"site", "version", "config"}``: the signature binds a config
to its site and version, so a config for another site or a replayed older version
cannot be passed off as this one.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PREFIX = "bl/v1/site"
SHARE_GROUP = "$share/fleet/"
"""Prefix of a shared subscription: fleet workers split the edges' messages."""

OFFLINE = b'{"status":"offline"}'
"""The last-will payload on ``state`` (retained): the broker says it when an edge vanishes."""


def topic(site: str, kind: str) -> str:
    """``bl/v1/site/{site}/{kind}``; ``kind`` is ``state``, ``metrics``, ``outbox``,
    ``ack``, ``config``, ``config/report``, ``cmd`` or ``cmd/result``."""
    if not site or "/" in site or "+" in site or "#" in site:
        raise ProtocolError(f"site id {site!r} cannot be part of a topic")
    return f"{PREFIX}/{site}/{kind}"


def parse_topic(name: str) -> tuple[str, str]:
    """``(site, kind)`` of a v1 topic; ProtocolError for anything else."""
    parts = name.split("/")
    if len(parts) < 5 or "/".join(parts[:3]) != PREFIX or not parts[3]:
        raise ProtocolError(f"not a v1 site topic: {name!r}")
    return parts[3], "/".join(parts[4:])


class ProtocolError(ValueError):
    """A payload or topic that does not follow v1; the message names what is wrong."""


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes | str) -> Any:
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            where = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(payload)'}: {e['msg']}" for e in exc.errors()
            )
            raise ProtocolError(f"bad {cls.__name__} payload: {where}") from None


class State(_Msg):
    """Retained on ``state``: what the fleet's site registry shows."""

    status: Literal["online", "offline"]
    version: str = ""
    """The software version running."""
    mode: Literal["normal", "survivable"] = "normal"
    mode_since: float | None = None
    config_version: int | None = None
    """The config version applied (None: the box's own file, never pushed)."""
    started_at: float | None = None
    kernels: dict[str, str] = Field(default_factory=dict)
    """Which implementation each Cython kernel loaded (``cython`` or ``python``)."""
    at: float = 0.0


class Metrics(_Msg):
    """Periodic, not retained. Free-form gauges by name (numbers only) plus queue stats."""

    at: float
    gauges: dict[str, float] = Field(default_factory=dict)
    queues: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    trunks: dict[str, bool] = Field(default_factory=dict)


OUTBOX_KINDS = ("cdr", "interval", "task", "event", "voicemail")


class Record(_Msg):
    seq: int = Field(ge=1)
    """Per-site, gapless, increasing: the fleet stores ``(site, seq)`` once."""
    kind: Literal["cdr", "interval", "task", "event", "voicemail"]
    at: float
    body: dict[str, Any]


class OutboxBatch(_Msg):
    """QoS 1 on ``outbox``: records in sequence order."""

    records: list[Record] = Field(min_length=1)


class Ack(_Msg):
    """On ``ack``: every record with ``seq <= upto`` is stored; the edge may delete them."""

    upto: int = Field(ge=0)


class ConfigEnvelope(_Msg):
    """Retained on ``config``: the desired config, signed by the fleet."""

    site: str
    version: int = Field(ge=1)
    config: dict[str, Any]
    """A SiteConfig as a mapping (edge_core.config.schema validates it on both sides)."""
    signature: str
    """base64 of the ed25519 signature over :func:`signed_bytes`."""
    author: str = ""
    reason: str = ""


class ConfigReport(_Msg):
    """On ``config/report``: what the edge did with a config version."""

    version: int
    status: Literal["applied", "rejected"]
    reason: str = ""
    at: float = 0.0


class Command(_Msg):
    """On ``cmd``: ``op`` is ``ping``, ``logs``, ``diagnostics`` or ``maintenance``."""

    id: str = Field(min_length=1, max_length=64)
    op: str
    args: dict[str, Any] = Field(default_factory=dict)


class CommandResult(_Msg):
    id: str
    ok: bool
    result: Any = None
    error: str = ""


# -- signatures --------------------------------------------------------------------------


def signed_bytes(site: str, version: int, config: dict[str, Any]) -> bytes:
    """The canonical bytes a config signature covers."""
    doc = {"site": site, "version": version, "config": config}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_config(private_key: Any, site: str, version: int, config: dict[str, Any], **meta: str) -> ConfigEnvelope:
    """An envelope signed with an ``Ed25519PrivateKey``."""
    signature = private_key.sign(signed_bytes(site, version, config))
    return ConfigEnvelope(
        site=site, version=version, config=config, signature=base64.b64encode(signature).decode(), **meta
    )


def verify_config(public_key: Any, envelope: ConfigEnvelope, site: str) -> None:
    """Raise ProtocolError unless the envelope is for ``site`` and signed by ``public_key``
    (an ``Ed25519PublicKey``)."""
    from cryptography.exceptions import InvalidSignature

    if envelope.site != site:
        raise ProtocolError(f"config is for site {envelope.site!r}, this is {site!r}")
    try:
        signature = base64.b64decode(envelope.signature, validate=True)
        public_key.verify(signature, signed_bytes(envelope.site, envelope.version, envelope.config))
    except (InvalidSignature, ValueError):
        raise ProtocolError(f"config v{envelope.version}: bad signature") from None


def load_public_key(pem_or_raw: bytes) -> Any:
    """An ed25519 public key from PEM, or from 32 raw bytes / their base64."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = pem_or_raw.strip()
    if data.startswith(b"-----BEGIN"):
        return serialization.load_pem_public_key(data)
    raw = data if len(data) == 32 else base64.b64decode(data)
    return Ed25519PublicKey.from_public_bytes(raw)


# -- software updates (op ``update`` on ``cmd``) ------------------------------------------

UPDATE_OP = "update"
UpdateOutcomeName = Literal["committed", "rolled_back", "refused", "failed"]


class UpdateArgs(_Msg):
    """``args`` of the ``update`` command: where the bundle is and what it must be."""

    url: str = Field(min_length=1, max_length=2000)
    """HTTP(S) URL of the bundle at the fleet (``GET`` with ``Range`` to resume), or a
    ``file://`` URL of a bundle on the box (an install from the console, from a USB stick)."""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """SHA-256 of the whole bundle file (checked after download, before the installer)."""
    size: int = Field(ge=1)
    version: str = Field(min_length=1, max_length=64)
    report_id: str = Field(min_length=1, max_length=64)
    """The id the final ``done`` result is published under (the command's own id: the
    update agent that publishes it is a separate process and does not see the command)."""
    campaign: int | None = None


class UpdateResult(_Msg):
    """The ``result`` of an ``update`` command on ``cmd/result``. The edge answers twice
    with the command's id: ``stage`` ``accepted`` when the update agent has started
    (the edge is about to be restarted by it), then ``done`` with the outcome, published
    by the agent itself (it outlives the edge's restart). A final ``done`` has
    ``ok = (outcome == "committed")`` and the reason in the result's ``error``."""

    stage: Literal["accepted", "done"]
    version: str
    outcome: UpdateOutcomeName | None = None
    check: str = ""
    """The check that refused or failed (``signature``, ``api``, ``crash_loop``, ``download`` ...)."""
    reason: str = ""
    timings: dict[str, float] = Field(default_factory=dict)

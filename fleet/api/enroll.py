"""Enrollment of new boxes: one-time tokens (admin) and ``POST /enroll`` (the box).

An admin issues a token for a site (``POST /enroll-tokens``); it is shown once, only its
SHA-256 is kept, it expires (``expires_in_s``) and works once. Provisioning presents it
with the box's public identity key (generated on the box; the private half never leaves
it) to ``POST /enroll`` -- no bearer token, the enrollment token is the credential. The
fleet records the key for the site and answers what the box needs to report: its site
id, the broker URL, the fleet's config-signing public key, and MQTT credentials.

The MQTT password is returned once and stored hashed; loading it into the broker's
authentication (mosquitto ``password_file``, EMQX/HiveMQ auth) is the broker side's job.
Tables ``enroll_tokens`` and ``devices`` are this module's own (created on the fleet
store's engine by the rollouts router's lifespan).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Column, Float, MetaData, String, Table, Text, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from fleet.api.auth import Admin, Viewer
from fleet.api.tokens import audit

SITE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
BROKER_ENV = "BRANCHLINE_FLEET_BROKER"

metadata = MetaData()

enroll_tokens = Table(
    "enroll_tokens", metadata,
    Column("sha256", String(64), primary_key=True),
    Column("site_id", String(64), nullable=False),
    Column("broker_url", String(500), nullable=False, server_default=""),
    Column("created_by", String(100), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float),
)

devices = Table(
    "devices", metadata,
    Column("site_id", String(64), primary_key=True),
    Column("public_key", Text, nullable=False),
    Column("key_sha256", String(64), nullable=False),
    Column("mqtt_username", String(100), nullable=False),
    Column("mqtt_password_sha256", String(64), nullable=False),
    Column("enrolled_at", Float, nullable=False),
)


async def create_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


router = APIRouter(tags=["enrollment"])


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class EnrollTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str = Field(pattern=SITE_PATTERN)
    expires_in_s: float = Field(default=86_400, gt=0, le=30 * 86_400)
    broker_url: str | None = Field(default=None, max_length=500,
                                   description="the broker as the box reaches it (default: the fleet's)")


class EnrollTokenOut(BaseModel):
    site: str
    token: str
    """Shown once."""
    expires_at: float


class EnrollIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=16, max_length=200)
    public_key: str = Field(min_length=40, max_length=2000, description="the box's ed25519 public key (PEM)")


class EnrollOut(BaseModel):
    site_id: str
    broker_url: str
    fleet_public_key: str
    """base64 of the fleet's ed25519 config-signing key ('' when config push is off)."""
    mqtt_username: str
    mqtt_password: str
    """Shown once."""
    telemetry: dict[str, Any]
    """The edge's ``telemetry:`` section, ready to write into its site config."""


class DeviceOut(BaseModel):
    site_id: str
    key_sha256: str
    mqtt_username: str
    enrolled_at: float


def _broker_for_boxes(request: Request) -> str:
    import os

    state = request.app.state
    url = getattr(state, "enroll_broker_url", None) or getattr(state, "rollout_broker", None)
    publish = getattr(state.ctx.configs, "publish", None)
    return str(url or getattr(publish, "url", None) or os.environ.get(BROKER_ENV) or "mqtt://127.0.0.1:1883")


def _check_public_key(pem: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError) as exc:
        raise HTTPException(422, f"public_key: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise HTTPException(422, "public_key: not an ed25519 key")
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@router.post("/enroll-tokens", status_code=201, summary="Issue a one-time enrollment token for a site (admin); audited")
async def issue_enroll_token(principal: Admin, request: Request, body: EnrollTokenIn) -> EnrollTokenOut:
    token = "ben_" + secrets.token_urlsafe(32)
    now = time.time()
    engine = request.app.state.ctx.store.engine
    async with engine.begin() as conn:
        await conn.execute(enroll_tokens.insert().values(
            sha256=_sha(token), site_id=body.site, broker_url=body.broker_url or "", created_by=principal.name,
            created_at=now, expires_at=now + body.expires_in_s))
    await audit(request, principal.name, "enroll.token", body.site, {"expires_in_s": body.expires_in_s})
    return EnrollTokenOut(site=body.site, token=token, expires_at=now + body.expires_in_s)


@router.post("/enroll", summary="Enroll a box with a one-time token and its public key (no bearer token)",
             responses={401: {"description": "unknown, used or expired token"}})
async def enroll(request: Request, body: EnrollIn) -> EnrollOut:
    from fleet.configs import public_key_b64

    pem = _check_public_key(body.public_key)
    now = time.time()
    password = secrets.token_urlsafe(24)
    engine = request.app.state.ctx.store.engine
    async with engine.begin() as conn:
        row = (await conn.execute(select(enroll_tokens).where(enroll_tokens.c.sha256 == _sha(body.token)))).first()
        if row is None or row.used_at is not None or row.expires_at < now:
            why = "unknown" if row is None else "used already" if row.used_at is not None else "expired"
            raise HTTPException(401, f"enrollment token {why}")
        taken = await conn.execute(update(enroll_tokens).where(
            (enroll_tokens.c.sha256 == row.sha256) & enroll_tokens.c.used_at.is_(None)).values(used_at=now))
        if taken.rowcount != 1:  # a concurrent enroll took it
            raise HTTPException(401, "enrollment token used already")
        site = str(row.site_id)
        values = {"public_key": pem, "key_sha256": _sha(pem), "mqtt_username": f"site-{site}",
                  "mqtt_password_sha256": _sha(password), "enrolled_at": now}
        existing = (await conn.execute(select(devices.c.site_id).where(devices.c.site_id == site))).first()
        if existing is None:
            await conn.execute(devices.insert().values(site_id=site, **values))
        else:  # a replaced box: the new key wins
            await conn.execute(update(devices).where(devices.c.site_id == site).values(**values))
        broker = str(row.broker_url or _broker_for_boxes(request))
    configs = request.app.state.ctx.configs
    fleet_key = public_key_b64(configs.signing_key) if configs is not None else ""
    await audit(request, f"enroll:{site}", "enroll.device", site, {"key_sha256": _sha(pem)})
    telemetry = {"enabled": True, "broker_url": broker, "site_id": site, "fleet_public_key": fleet_key,
                 "username": f"site-{site}", "password": password}
    return EnrollOut(site_id=site, broker_url=broker, fleet_public_key=fleet_key, mqtt_username=f"site-{site}",
                     mqtt_password=password, telemetry=telemetry)


@router.get("/devices", summary="Enrolled boxes: site, identity key hash, MQTT user")
async def list_devices(principal: Viewer, request: Request) -> list[DeviceOut]:
    engine = request.app.state.ctx.store.engine
    async with engine.connect() as conn:
        rows = (await conn.execute(select(devices).order_by(devices.c.site_id))).all()
    return [DeviceOut(site_id=r.site_id, key_sha256=r.key_sha256, mqtt_username=r.mqtt_username,
                      enrolled_at=r.enrolled_at) for r in rows]


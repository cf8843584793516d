"""Enrollment of new boxes: one-time tokens (admin) and ``POST /enroll`` (the box).

An admin issues a token for a site (``POST /enroll-tokens``); it is shown once, only its
SHA-256 is kept, it expires (``expires_in_s``) and works once. Provisioning presents it
with the box's public identity key (generated on the box; the private half never leaves
it) to ``POST /enroll`` -- no bearer token, the enrollment token is the credential. The
fleet records the key for the site and answers what the box needs to report: its site
id, the broker URL, the fleet's config-signing public key, and MQTT credentials.

The MQTT password (user ``site-{site}``) is returned once and stored hashed twice: a
SHA-256 and the mosquitto ``$7$`` hash. An admin can replace it:
``POST /devices/{site}/credentials`` answers a new password (once) and the ``telemetry:``
section with it, in the shape enrollment answers; the old one stops working.

With ``app.state.broker_auth`` (a :class:`fleet.broker_auth.BrokerAuth`; ``--mosquitto-*``
options of ``fleet run``) both enrollment and rotation rewrite mosquitto's password and
ACL files from this table, SIGHUP mosquitto and (given the broker's URL) wait until it
accepts the new password, all before the database commit: an answer means the broker takes the credentials it
holds, and a failure (503) changes nothing (the enrollment token still works; the files
are written back from the committed table). The router's lifespan writes the files once
at start. Without ``broker_auth`` only the table changes, and loading the password into
the broker (EMQX/HiveMQ auth, a hand-kept mosquitto file) is the broker side's job.

Tables ``enroll_tokens`` and ``devices`` are this module's own (created on the fleet
store's engine by the rollouts router's lifespan and by this router's own, which also
adds the ``mqtt_password_mosquitto`` column to a ``devices`` table of an older fleet).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    Column,
    Connection,
    Float,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fleet.api.auth import Admin, Viewer
from fleet.api.tokens import audit
from fleet.broker_auth import (
    BrokerAuth,
    BrokerAuthError,
    SiteCredentials,
    hash_password,
    site_username,
)
from fleet.mqtt import BROKER_ENV, public_broker_url

log = logging.getLogger(__name__)

SITE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

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
    # mosquitto ``$7$`` hash; NULL for a box enrolled before the fleet kept it
    Column("mqtt_password_mosquitto", String(200)),
)

_ADDED_COLUMNS = {"devices": [("mqtt_password_mosquitto", "VARCHAR(200)")]}
"""Columns added after a table's first release: ``create_all`` leaves existing tables alone."""


def _add_columns(conn: Connection) -> None:
    for table, columns in _ADDED_COLUMNS.items():
        have = {c["name"] for c in inspect(conn).get_columns(table)}
        for name, sql_type in columns:
            if name not in have:
                # IF NOT EXISTS: two fleet processes starting at once on PostgreSQL
                guard = "IF NOT EXISTS " if conn.dialect.name == "postgresql" else ""
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {guard}{name} {sql_type}"))


async def create_tables(engine: AsyncEngine) -> None:
    """Create the tables, and add columns an older fleet's tables lack (idempotent)."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.run_sync(_add_columns)


def broker_auth_of(request: Request) -> BrokerAuth | None:
    return getattr(request.app.state, "broker_auth", None)


async def _site_credentials(conn: AsyncConnection) -> list[SiteCredentials]:
    rows = (await conn.execute(select(devices.c.site_id, devices.c.mqtt_username,
                                      devices.c.mqtt_password_mosquitto))).all()
    return [SiteCredentials(r.site_id, r.mqtt_username, r.mqtt_password_mosquitto) for r in rows]


async def sync_broker_auth(engine: AsyncEngine, auth: BrokerAuth, *, reload: bool = True) -> None:
    """Write the broker's files from the committed table (and reload mosquitto)."""
    async with auth.locked():
        async with engine.connect() as conn:
            sites = await _site_credentials(conn)
        auth.write(sites)
        if reload:
            auth.reload()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    engine = app.state.ctx.store.engine
    await create_tables(engine)
    auth = getattr(app.state, "broker_auth", None)
    if auth is not None:
        try:
            await sync_broker_auth(engine, auth, reload=False)
        except BrokerAuthError as exc:  # enrollment answers 503 with the reason until it is fixed
            log.error("broker auth at start: %s", exc)
        else:
            try:
                auth.reload()
            except BrokerAuthError as exc:  # mosquitto reads the files when it starts
                log.warning("broker auth at start: files written, mosquitto not reloaded: %s", exc)
    yield


router = APIRouter(tags=["enrollment"], lifespan=_lifespan)


@dataclass
class _CredentialChange:
    conn: AsyncConnection
    changed: tuple[str, str] | None = None
    """(username, new password) once the handler has written the row."""


@asynccontextmanager
async def _device_transaction(request: Request) -> AsyncIterator[_CredentialChange]:
    """A transaction that changes a site's MQTT password. With broker auth configured:
    under its lock, the files are written from what this transaction sees, mosquitto
    reloads and takes the new password, then the commit; on any failure the transaction
    rolls back and the files are written again from the committed table (503)."""
    engine = request.app.state.ctx.store.engine
    auth = broker_auth_of(request)
    if auth is None:
        async with engine.begin() as conn:
            yield _CredentialChange(conn)
        return
    try:
        async with auth.locked():
            applying = False
            try:
                async with engine.begin() as conn:
                    change = _CredentialChange(conn)
                    yield change
                    if change.changed is not None:
                        applying = True
                        await auth.apply(await _site_credentials(conn), change.changed)
            except BaseException:
                if applying:  # the broker may hold what was not committed: back to the table
                    try:
                        async with engine.connect() as conn:
                            sites = await _site_credentials(conn)
                        auth.write(sites)
                        auth.reload()
                    except BrokerAuthError as exc:
                        log.error("broker auth: restoring the files after a failure: %s", exc)
                raise
    except BrokerAuthError as exc:
        raise HTTPException(503, f"broker authentication not updated: {exc}") from None


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


class CredentialsOut(BaseModel):
    site_id: str
    mqtt_username: str
    mqtt_password: str
    """Shown once; the previous password is refused from now on."""
    telemetry: dict[str, Any]
    """The edge's ``telemetry:`` section with the new password (as ``EnrollOut.telemetry``)."""


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
    url = str(url or getattr(publish, "url", None) or os.environ.get(BROKER_ENV) or "mqtt://127.0.0.1:1883")
    return public_broker_url(url)  # never the fleet's own credentials


def _telemetry(broker: str, site: str, fleet_key: str, username: str, password: str) -> dict[str, Any]:
    return {"enabled": True, "broker_url": broker, "site_id": site, "fleet_public_key": fleet_key,
            "username": username, "password": password}


def _fleet_key(request: Request) -> str:
    from fleet.configs import public_key_b64

    configs = request.app.state.ctx.configs
    return public_key_b64(configs.signing_key) if configs is not None else ""


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
             responses={401: {"description": "unknown, used or expired token"},
                        503: {"description": "the broker did not take the credentials (nothing changed)"}})
async def enroll(request: Request, body: EnrollIn) -> EnrollOut:
    pem = _check_public_key(body.public_key)
    now = time.time()
    password = secrets.token_urlsafe(24)
    async with _device_transaction(request) as change:
        conn = change.conn
        row = (await conn.execute(select(enroll_tokens).where(enroll_tokens.c.sha256 == _sha(body.token)))).first()
        if row is None or row.used_at is not None or row.expires_at < now:
            why = "unknown" if row is None else "used already" if row.used_at is not None else "expired"
            raise HTTPException(401, f"enrollment token {why}")
        taken = await conn.execute(update(enroll_tokens).where(
            (enroll_tokens.c.sha256 == row.sha256) & enroll_tokens.c.used_at.is_(None)).values(used_at=now))
        if taken.rowcount != 1:  # a concurrent enroll took it
            raise HTTPException(401, "enrollment token used already")
        site = str(row.site_id)
        username = site_username(site)
        values = {"public_key": pem, "key_sha256": _sha(pem), "mqtt_username": username,
                  "mqtt_password_sha256": _sha(password), "mqtt_password_mosquitto": hash_password(password),
                  "enrolled_at": now}
        existing = (await conn.execute(select(devices.c.site_id).where(devices.c.site_id == site))).first()
        if existing is None:
            await conn.execute(devices.insert().values(site_id=site, **values))
        else:  # a replaced box: the new key wins
            await conn.execute(update(devices).where(devices.c.site_id == site).values(**values))
        broker = str(row.broker_url or _broker_for_boxes(request))
        change.changed = (username, password)
    fleet_key = _fleet_key(request)
    await audit(request, f"enroll:{site}", "enroll.device", site, {"key_sha256": _sha(pem)})
    return EnrollOut(site_id=site, broker_url=broker, fleet_public_key=fleet_key, mqtt_username=username,
                     mqtt_password=password, telemetry=_telemetry(broker, site, fleet_key, username, password))


@router.post("/devices/{site}/credentials",
             summary="Issue a new MQTT password for an enrolled site (admin); the old one stops working; audited",
             responses={404: {"description": "no device enrolled for that site"},
                        503: {"description": "the broker did not take the credentials (nothing changed)"}})
async def rotate_credentials(principal: Admin, request: Request,
                             site: Annotated[str, Path(pattern=SITE_PATTERN)]) -> CredentialsOut:
    password = secrets.token_urlsafe(24)
    async with _device_transaction(request) as change:
        conn = change.conn
        row = (await conn.execute(select(devices.c.mqtt_username).where(devices.c.site_id == site))).first()
        if row is None:
            raise HTTPException(404, f"no device enrolled for site {site!r}")
        username = str(row.mqtt_username)
        await conn.execute(update(devices).where(devices.c.site_id == site).values(
            mqtt_password_sha256=_sha(password), mqtt_password_mosquitto=hash_password(password)))
        change.changed = (username, password)
        # the broker the box was enrolled with (its token's), else the fleet's
        token_broker = (await conn.execute(
            select(enroll_tokens.c.broker_url).where(
                (enroll_tokens.c.site_id == site) & enroll_tokens.c.used_at.is_not(None))
            .order_by(enroll_tokens.c.used_at.desc()).limit(1))).scalar()
    broker = str(token_broker or _broker_for_boxes(request))
    await audit(request, principal.name, "device.credentials", site, {"mqtt_username": username})
    return CredentialsOut(site_id=site, mqtt_username=username, mqtt_password=password,
                          telemetry=_telemetry(broker, site, _fleet_key(request), username, password))


@router.get("/devices", summary="Enrolled boxes: site, identity key hash, MQTT user")
async def list_devices(principal: Viewer, request: Request) -> list[DeviceOut]:
    engine = request.app.state.ctx.store.engine
    async with engine.connect() as conn:
        rows = (await conn.execute(select(devices).order_by(devices.c.site_id))).all()
    return [DeviceOut(site_id=r.site_id, key_sha256=r.key_sha256, mqtt_username=r.mqtt_username,
                      enrolled_at=r.enrolled_at) for r in rows]


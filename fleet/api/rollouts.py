"""Update bundles and rollout campaigns (``/api/v1/bundles``, ``/api/v1/rollouts``).

* ``POST /bundles`` (operator; the raw bundle file as the body) stores a bundle under
  its SHA-256 and reads its manifest; ``GET /bundles`` lists them.
* ``GET /bundles/{sha256}`` is the boxes' download: no bearer token (a box has none;
  the bundle is signed, not secret, and addressed by its hash), ``Range`` honoured so
  an interrupted download resumes.
* ``POST /rollouts`` (operator) creates a campaign: a bundle, the target sites (a list,
  or a region / site type, or every registered site), waves, thresholds, concurrency,
  window; ``GET /rollouts`` and ``GET /rollouts/{id}`` show each campaign and every
  site's state with its rollback reason; ``POST /rollouts/{id}/pause|resume|abort``
  (operator). Creating and every state change is audited.
* The window (``window_start_h``..``window_end_h``) is local to each site: it is read in
  the site's own zone (``site.timezone`` of its desired config), so every branch updates
  outside its own business hours. The campaign's ``timezone`` is the fallback for a site
  without one (or with a zone this fleet does not know); it must itself be a known zone.
  A site of the current wave that waits for its window says so in its ``reason``:
  ``waiting for window (20:00 local, Europe/Paris)``.

The router's lifespan creates the rollout tables, and starts the control loop
(:class:`fleet.rollout_control.RolloutController`) when a broker is known:
``app.state.rollout_broker``, else the config publisher's broker, else
``$BRANCHLINE_FLEET_BROKER``. Bundles live in ``app.state.bundle_dir``, else
``$BRANCHLINE_FLEET_BUNDLES``, else ``var/bundles``.

Enrollment (``fleet.api.enroll``) is included from here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import tarfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Path, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fleet.api import enroll
from fleet.api.auth import Operator, Viewer
from fleet.api.sites import store_of
from fleet.api.tokens import audit
from fleet.rollouts import DEFAULT_WAVES, Campaign, CampaignSpec, RolloutStore, zone

BUNDLES_ENV = "BRANCHLINE_FLEET_BUNDLES"
BROKER_ENV = "BRANCHLINE_FLEET_BROKER"
MAX_BUNDLE_BYTES = 4 << 30
SHA256 = r"^[0-9a-f]{64}$"
_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    from fleet.rollout_control import RolloutController

    store = app.state.ctx.store
    rollouts = RolloutStore(store.engine)
    await rollouts.create_tables()
    await enroll.create_tables(store.engine)
    app.state.rollouts = rollouts
    broker = getattr(app.state, "rollout_broker", None) or _publisher_url(app) or os.environ.get(BROKER_ENV)
    task: asyncio.Task[None] | None = None
    if broker:
        controller = RolloutController(rollouts, broker, tick_s=getattr(app.state, "rollout_tick_s", 1.0))
        app.state.rollout_controller = controller
        task = asyncio.create_task(controller.run(), name="rollout-control")
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _publisher_url(app: FastAPI) -> str | None:
    configs = app.state.ctx.configs
    url = getattr(getattr(configs, "publish", None), "url", None)
    return url if isinstance(url, str) else None


router = APIRouter(tags=["rollouts"], lifespan=lifespan)
router.include_router(enroll.router)


def rollouts_of(request: Request) -> RolloutStore:
    rollouts = getattr(request.app.state, "rollouts", None)
    if rollouts is None:  # the app was not started through its lifespan
        raise HTTPException(503, "rollouts are not initialised")
    return rollouts  # type: ignore[no-any-return]


def bundle_dir(request: Request) -> FsPath:
    path = FsPath(getattr(request.app.state, "bundle_dir", None) or os.environ.get(BUNDLES_ENV) or "var/bundles")
    path.mkdir(parents=True, exist_ok=True)
    return path


# ------------------------------------------------------------------ bundles


class BundleOut(BaseModel):
    sha256: str
    size: int
    version: str
    platform: str
    python: str
    min_upgrade_from: str
    build_time: int
    uploaded_at: float
    uploaded_by: str


def _read_manifest(path: FsPath) -> dict[str, Any]:
    """The manifest inside a bundle (its signature is the boxes' to check)."""
    try:
        with tarfile.open(path, "r:") as tar:
            member = tar.next()
            if member is None or member.name != "manifest.json" or not member.isreg() or member.size > 1 << 20:
                raise ValueError("the first member is not manifest.json")
            f = tar.extractfile(member)
            assert f is not None
            doc = json.loads(f.read())
    except (OSError, tarfile.TarError, ValueError) as exc:
        raise HTTPException(422, f"not a bundle: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), str):
        raise HTTPException(422, "not a bundle: the manifest has no version")
    return doc


@router.post("/bundles", status_code=201, summary="Upload a bundle (operator; the file is the body); audited")
async def upload_bundle(principal: Operator, request: Request) -> BundleOut:
    folder = bundle_dir(request)
    tmp = folder / f".upload-{os.getpid()}-{time.monotonic_ns()}"
    digest, size = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BUNDLE_BYTES:
                    raise HTTPException(413, f"a bundle is at most {MAX_BUNDLE_BYTES} bytes")
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise HTTPException(422, "empty body: send the bundle file")
        manifest = _read_manifest(tmp)
        sha = digest.hexdigest()
        os.replace(tmp, folder / f"{sha}.bundle")
    finally:
        tmp.unlink(missing_ok=True)
    info = BundleOut(sha256=sha, size=size, version=manifest["version"], platform=str(manifest.get("platform", "")),
                     python=str(manifest.get("python", "")), min_upgrade_from=str(manifest.get("min_upgrade_from", "")),
                     build_time=int(manifest.get("build_time", 0)), uploaded_at=time.time(),
                     uploaded_by=principal.name)
    (folder / f"{sha}.json").write_text(info.model_dump_json())
    await audit(request, principal.name, "bundle.upload", sha, {"version": info.version, "size": size})
    return info


@router.get("/bundles", summary="Uploaded bundles, newest first")
async def list_bundles(principal: Viewer, request: Request) -> list[BundleOut]:
    infos = [BundleOut.model_validate_json(p.read_text()) for p in bundle_dir(request).glob("*.json")]
    return sorted(infos, key=lambda b: b.uploaded_at, reverse=True)


@router.get("/bundles/{sha256}", summary="Download a bundle (boxes; no token; Range supported)",
            response_class=FileResponse, responses={404: {"description": "no such bundle"}})
async def download_bundle(request: Request, sha256: Annotated[str, Path(pattern=SHA256)]) -> FileResponse:
    path = bundle_dir(request) / f"{sha256}.bundle"
    if not path.is_file():
        raise HTTPException(404, f"no bundle {sha256}")
    return FileResponse(path, media_type="application/octet-stream", filename=f"{sha256}.bundle")


# ------------------------------------------------------------------ campaigns


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    bundle: str = Field(pattern=SHA256, description="SHA-256 of an uploaded bundle")
    sites: list[str] | None = Field(default=None, max_length=100_000,
                                    description="target sites; or leave out for region/site_type/all registered")
    region: str | None = None
    site_type: str | None = None
    waves: list[int | float] = Field(default=list(DEFAULT_WAVES), min_length=1, max_length=20,
                                     description="cumulative: an integer (1) is a site count, a number with a "
                                                 "point (0.25, 1.0) a fraction of the target")
    success_threshold: float = Field(default=0.9, ge=0, le=1)
    error_threshold: float = Field(default=0.2, ge=0, le=1)
    max_concurrent: int = Field(default=10, ge=1, le=10_000)
    window_start_h: int = Field(default=20, ge=0, le=23)
    window_end_h: int = Field(default=6, ge=0, le=23)
    timezone: str = Field(default="UTC", max_length=64,
                          description="fallback zone of the window (IANA name): each site's window is read in "
                                      "its own zone (site.timezone of its desired config); this one is used for a "
                                      "site without one, or with a zone this fleet does not know")
    install_timeout_s: float = Field(default=1800, gt=0, le=86_400)
    bundle_base_url: str | None = Field(default=None, max_length=500,
                                        description="the fleet's URL as the boxes reach it (default: this request's)")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if zone(value) is None:
            raise ValueError(f"unknown time zone {value!r}")
        return value


class SiteStateOut(BaseModel):
    site_id: str
    wave: int
    state: str
    reason: str = Field(description="why the site is where it is: the rollback or failure reason, or, for a "
                                    "waiting site of the current wave, 'waiting for window (HH:00 local, <zone>)'")
    check: str
    started_at: float | None
    done_at: float | None


class CampaignOut(BaseModel):
    id: int
    name: str
    state: str
    version: str
    bundle: str
    wave: int
    waves: list[list[str]]
    halt_reason: str
    counts: dict[str, int]
    spec: dict[str, Any]
    created_at: float
    updated_at: float
    sites: list[SiteStateOut] | None = None


async def _campaign_out(rollouts: RolloutStore, row: dict[str, Any], with_sites: bool) -> CampaignOut:
    cid = int(row["id"])
    campaign = await rollouts.load(cid)
    summary = campaign.summary()
    sites = None
    if with_sites:
        sites = [SiteStateOut(site_id=r["site_id"], wave=r["wave"] + 1, state=r["state"], reason=r["reason"],
                              check=r["failed_check"], started_at=r["started_at"], done_at=r["done_at"])
                 for r in await rollouts.site_rows(cid)]
    return CampaignOut(id=cid, name=row["name"], state=campaign.state, version=campaign.spec.bundle_version,
                       bundle=campaign.spec.bundle_sha256, wave=summary["wave"], waves=campaign.waves,
                       halt_reason=campaign.halt_reason, counts=summary["sites"], spec=dict(row["spec"]),
                       created_at=row["created_at"], updated_at=row["updated_at"], sites=sites)


async def _row(rollouts: RolloutStore, cid: int) -> dict[str, Any]:
    for row in await rollouts.list_campaigns():
        if int(row["id"]) == cid:
            return row
    raise HTTPException(404, f"no campaign {cid}")


@router.post("/rollouts", status_code=201, summary="Create a campaign (operator); audited")
async def create_campaign(principal: Operator, request: Request, body: CampaignIn) -> CampaignOut:
    rollouts = rollouts_of(request)
    info_path = bundle_dir(request) / f"{body.bundle}.json"
    if not info_path.exists():
        raise HTTPException(404, f"no bundle {body.bundle} (upload it first: POST /api/v1/bundles)")
    bundle = BundleOut.model_validate_json(info_path.read_text())
    if body.sites is not None:
        sites = list(dict.fromkeys(body.sites))
        bad = [s for s in sites if not _SITE.match(s)]
        if bad:
            raise HTTPException(422, f"sites: not site ids: {bad[:5]}")
    else:
        rows = await store_of(request).list_sites(region=body.region, site_type=body.site_type)
        sites = [r.id for r in rows]
    if not sites:
        raise HTTPException(422, "sites: the target is empty")
    base = (body.bundle_base_url or str(request.base_url)).rstrip("/")
    spec = CampaignSpec(
        name=body.name, bundle_version=bundle.version, bundle_url=f"{base}/api/v1/bundles/{bundle.sha256}",
        sites=sites, waves=tuple(body.waves), success_threshold=body.success_threshold,
        error_threshold=body.error_threshold, max_concurrent=body.max_concurrent,
        window_start_h=body.window_start_h, window_end_h=body.window_end_h, timezone=body.timezone,
        bundle_sha256=bundle.sha256, bundle_size=bundle.size, install_timeout_s=body.install_timeout_s,
    )
    try:
        campaign = Campaign(spec)
    except (ValueError, KeyError) as exc:
        raise HTTPException(422, f"campaign: {exc}") from None
    async with rollouts.lock:
        cid = await rollouts.create(campaign)
    await audit(request, principal.name, "rollout.create", f"rollout/{cid}",
                {"version": bundle.version, "bundle": bundle.sha256, "sites": len(sites), "waves": campaign.waves})
    return await _campaign_out(rollouts, await _row(rollouts, cid), True)


@router.get("/rollouts", summary="Every campaign, newest first, with per-state site counts")
async def list_campaigns(principal: Viewer, request: Request) -> list[CampaignOut]:
    rollouts = rollouts_of(request)
    return [await _campaign_out(rollouts, row, False) for row in await rollouts.list_campaigns()]


@router.get("/rollouts/{cid}", summary="One campaign with every site's state and rollback reason")
async def show_campaign(principal: Viewer, request: Request, cid: int) -> CampaignOut:
    rollouts = rollouts_of(request)
    return await _campaign_out(rollouts, await _row(rollouts, cid), True)


_ACTIONS = {"pause": ("running",), "resume": ("paused",), "abort": ("running", "paused")}


@router.post("/rollouts/{cid}/{action}", summary="Pause, resume or abort a campaign (operator); audited",
             responses={409: {"description": "not possible in the campaign's state"}})
async def change_campaign(principal: Operator, request: Request, cid: int,
                          action: Annotated[str, Path(pattern=r"^(pause|resume|abort)$")]) -> CampaignOut:
    rollouts = rollouts_of(request)
    await _row(rollouts, cid)
    async with rollouts.lock:
        campaign = await rollouts.load(cid)
        before = campaign.state
        if before not in _ACTIONS[action]:
            raise HTTPException(409, f"cannot {action} a campaign that is {before}")
        getattr(campaign, action)()
        await rollouts.save(cid, campaign)
    await audit(request, principal.name, f"rollout.{action}", f"rollout/{cid}", {"from": before, "to": campaign.state})
    return await _campaign_out(rollouts, await _row(rollouts, cid), True)

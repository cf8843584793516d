"""Configuration: versions per site and per layer, diffs, push, rollback, drift.

Writes go through :class:`fleet.configs.ConfigStore` (validation with the edge's
schema, immutable versions with author and reason, audit entry in the same
transaction, signed retained publish after the commit). The author is the token's name.
A config the schema refuses is a 422 whose ``problems`` list every ``(path, reason)``.
"""

from __future__ import annotations

import difflib
import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request

from fleet.api.auth import Operator, Viewer
from fleet.api.models import (
    MAX_INT32,
    ConfigChangeOut,
    ConfigPushIn,
    ConfigVersionOut,
    DiffOut,
    DriftOut,
    LayerVersionOut,
    RollbackIn,
)
from fleet.api.sites import SiteId, site_or_404, store_of
from fleet.configs import ConfigRejected, ConfigStore

SCOPE_PATTERN = r"^(base|(region|type|site):[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$"
Scope = Annotated[str, Path(pattern=SCOPE_PATTERN, description="base, region:<name>, type:<name> or site:<id>")]
Version = Annotated[int, Query(ge=1, le=MAX_INT32)]
Limit = Annotated[int, Query(ge=1, le=10_000)]

router = APIRouter(tags=["configs"])

_REJECTED: dict[int | str, dict[str, Any]] = {422: {"description": "invalid config: `problems` lists each field path and reason"}}
_WRITE: dict[int | str, dict[str, Any]] = {**_REJECTED, 404: {"description": "no such site or version"},
          503: {"description": "config push is not configured"}, 502: {"description": "stored, not published"}}


class ConfigProblems(HTTPException):
    def __init__(self, exc: ConfigRejected) -> None:
        first = exc.problems[0] if exc.problems else ("config", "rejected")
        super().__init__(422, f"config rejected: {first[0]}: {first[1]}")
        self.field = first[0]
        self.extra = {"problems": [{"path": p, "reason": r} for p, r in exc.problems]}


def unified_diff(old: Any, new: Any, old_name: str, new_name: str) -> str:
    def lines(body: Any) -> list[str]:
        return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False).splitlines()

    return "\n".join(difflib.unified_diff(lines(old), lines(new), old_name, new_name, lineterm=""))


def config_store(request: Request) -> ConfigStore:
    configs: ConfigStore | None = request.app.state.ctx.configs
    if configs is None:
        raise HTTPException(503, "config push is not configured on this API (no signing key / publisher)")
    return configs


async def _write(coro: Any) -> Any:
    try:
        return await coro
    except ConfigRejected as exc:
        raise ConfigProblems(exc) from None
    except (ConnectionError, OSError, TimeoutError) as exc:
        raise HTTPException(502, f"stored, but publishing to the broker failed ({exc}); "
                                 "edges get it when the fleet publishes again") from None


# -- layers ----------------------------------------------------------------------------


@router.get("/configs/scopes", summary="Every config layer scope that has versions")
async def scopes(principal: Viewer, request: Request) -> list[str]:
    return await store_of(request).list_scopes()


@router.get("/configs/layers/{scope}/versions", summary="A layer's versions, newest first")
async def layer_versions(principal: Viewer, request: Request, scope: Scope, limit: Limit = 100) -> list[LayerVersionOut]:
    return [LayerVersionOut.model_validate(v) for v in await store_of(request).list_layer_versions(scope, limit=limit)]


@router.get("/configs/layers/{scope}/diff", summary="Unified diff between two versions of a layer",
            responses={404: {"description": "no such version"}})
async def layer_diff(principal: Viewer, request: Request, scope: Scope, from_version: Version,
                     to_version: Version) -> DiffOut:
    versions = {v.version: v for v in await store_of(request).list_layer_versions(scope, limit=1_000_000)}
    for field, v in (("from_version", from_version), ("to_version", to_version)):
        if v not in versions:
            raise HTTPException(404, f"{field}: {scope} has no version {v}")
    return DiffOut(target=scope, from_version=from_version, to_version=to_version,
                   diff=unified_diff(versions[from_version].body, versions[to_version].body,
                                     f"{scope} v{from_version}", f"{scope} v{to_version}"))


@router.post("/configs/layers/{scope}", summary="Push a new version of a layer (operator); audited",
             responses=_WRITE)
async def push_layer(principal: Operator, request: Request, scope: Scope, body: ConfigPushIn) -> ConfigChangeOut:
    change = await _write(config_store(request).set_layer(scope, body.config, author=principal.name,
                                                          reason=body.reason))
    return ConfigChangeOut(scope=change.scope, layer_version=change.layer_version, site_versions=change.site_versions)


@router.post("/configs/layers/{scope}/rollback", summary="Roll a layer back to an earlier version (operator)",
             responses=_WRITE)
async def rollback_layer(principal: Operator, request: Request, scope: Scope, body: RollbackIn) -> ConfigChangeOut:
    configs = config_store(request)
    known = {v.version for v in await store_of(request).list_layer_versions(scope, limit=1_000_000)}
    if body.to_version not in known:
        raise HTTPException(404, f"to_version: {scope} has no version {body.to_version}")
    change = await _write(configs.rollback(scope, body.to_version, author=principal.name, reason=body.reason))
    return ConfigChangeOut(scope=change.scope, layer_version=change.layer_version, site_versions=change.site_versions)


# -- sites -----------------------------------------------------------------------------


@router.get("/sites/{site_id}/configs", summary="A site's desired-config versions, newest first (no bodies)",
            responses={404: {"description": "no such site"}})
async def site_versions(principal: Viewer, request: Request, site_id: SiteId, limit: Limit = 100) -> list[ConfigVersionOut]:
    store = store_of(request)
    await site_or_404(store, site_id)
    return [ConfigVersionOut.model_validate({**v.__dict__, "body": None})
            for v in await store.list_config_versions(site_id, limit=limit)]


@router.get("/sites/{site_id}/configs/diff", summary="Unified diff between two config versions of a site",
            responses={404: {"description": "no such site or version"}})
async def site_diff(principal: Viewer, request: Request, site_id: SiteId, from_version: Version,
                    to_version: Version) -> DiffOut:
    store = store_of(request)
    old = await store.get_config_version(site_id, from_version)
    new = await store.get_config_version(site_id, to_version)
    for field, v, row in (("from_version", from_version, old), ("to_version", to_version, new)):
        if row is None:
            raise HTTPException(404, f"{field}: site {site_id!r} has no config version {v}")
    assert old is not None and new is not None
    return DiffOut(target=f"site:{site_id}", from_version=from_version, to_version=to_version,
                   diff=unified_diff(old.body, new.body, f"{site_id} v{from_version}", f"{site_id} v{to_version}"))


@router.get("/sites/{site_id}/configs/{version}", summary="One config version of a site, with its body",
            responses={404: {"description": "no such site or version"}})
async def site_version(principal: Viewer, request: Request, site_id: SiteId,
                       version: Annotated[int, Path(ge=1, le=MAX_INT32)]) -> ConfigVersionOut:
    row = await store_of(request).get_config_version(site_id, version)
    if row is None:
        raise HTTPException(404, f"site {site_id!r} has no config version {version}")
    return ConfigVersionOut.model_validate(row)


@router.post("/sites/{site_id}/configs", summary="Push a new site override layer (operator); audited",
             responses=_WRITE)
async def push_site(principal: Operator, request: Request, site_id: SiteId, body: ConfigPushIn) -> ConfigChangeOut:
    configs = config_store(request)
    await site_or_404(store_of(request), site_id)
    scope = f"site:{site_id}"
    if not _scope_ok(scope):
        raise HTTPException(422, f"site id {site_id!r} cannot name a config layer")
    change = await _write(configs.set_layer(scope, body.config, author=principal.name, reason=body.reason))
    return ConfigChangeOut(scope=change.scope, layer_version=change.layer_version, site_versions=change.site_versions)


@router.post("/sites/{site_id}/configs/rollback",
             summary="Republish an earlier composed version of a site as its newest (operator); audited",
             responses=_WRITE)
async def rollback_site(principal: Operator, request: Request, site_id: SiteId, body: RollbackIn) -> ConfigChangeOut:
    configs = config_store(request)
    store = store_of(request)
    if await store.get_config_version(site_id, body.to_version) is None:
        await site_or_404(store, site_id)
        raise HTTPException(404, f"to_version: site {site_id!r} has no config version {body.to_version}")
    version = await _write(configs.rollback_site(site_id, body.to_version, author=principal.name,
                                                 reason=body.reason))
    return ConfigChangeOut(scope=f"site:{site_id}", layer_version=None, site_versions={site_id: version})


@router.get("/sites/{site_id}/drift", summary="Desired vs reported config of a site",
            responses={404: {"description": "no such site"}})
async def drift(principal: Viewer, request: Request, site_id: SiteId) -> DriftOut:
    store = store_of(request)
    site = await store.get_site(site_id)
    if site is None:
        raise HTTPException(404, f"no site {site_id!r}")
    diff = None
    if site.desired_version is not None and site.config_version is not None and site.drift:
        reported = await store.get_config_version(site_id, site.config_version)
        desired = await store.get_config_version(site_id, site.desired_version)
        if reported is not None and desired is not None:
            diff = unified_diff(reported.body, desired.body, f"{site_id} v{site.config_version} (reported)",
                                f"{site_id} v{site.desired_version} (desired)")
    return DriftOut(site_id=site_id, desired_version=site.desired_version, reported_version=site.config_version,
                    drift=site.drift, rejected_version=site.config_rejected_version,
                    rejection=site.config_rejection, diff=diff)


def _scope_ok(scope: str) -> bool:
    import re

    return re.match(SCOPE_PATTERN, scope) is not None

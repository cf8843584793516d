"""Request and response bodies of the NOC API (pydantic): what the OpenAPI spec shows.

Responses are built from the store's frozen rows (``fleet.store.rows``) with
``from_attributes``; requests forbid unknown fields so a typo is named, not ignored.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fleet.api.auth import NAME_PATTERN, Role
from fleet.store.rows import SiteRow

MAX_INT32 = 2**31 - 1
_MAX_DEPTH = 32


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class SiteOut(_Out):
    id: str
    status: str
    """``online``, ``offline`` or ``unknown``."""
    health: str
    """What the grid colours by: ``offline``, ``unknown``, ``survivable``, ``alarms`` or ``online``."""
    status_at: float | None
    last_seen: float | None
    version: str
    mode: str
    mode_since: float | None
    config_version: int | None
    desired_version: int | None
    drift: bool
    config_rejected_version: int | None
    config_rejection: str
    contiguous_seq: int
    region: str
    site_type: str
    kernels: dict[str, str]
    started_at: float | None
    active_alarms: int

    @classmethod
    def of(cls, row: SiteRow) -> SiteOut:
        return cls.model_validate({**row.__dict__, "drift": row.drift, "health": health(row)})


def health(row: SiteRow) -> str:
    if row.status != "online":
        return "offline" if row.status == "offline" else "unknown"
    if row.mode == "survivable":
        return "survivable"
    return "alarms" if row.active_alarms else "online"


class SitesOut(BaseModel):
    summary: dict[str, int]
    """Counts: sites, online, offline, survivable, active_alarms."""
    sites: list[SiteOut]


class MetricsOut(_Out):
    site_id: str
    at: float
    gauges: dict[str, float]
    queues: dict[str, dict[str, float | None]]
    trunks: dict[str, bool]


class AlarmOut(_Out):
    id: int
    site_id: str
    kind: str
    subject: str
    severity: str
    message: str
    raised_at: float
    last_seen_at: float
    count: int
    active: bool
    acked_by: str | None
    acked_at: float | None
    cleared_at: float | None


class SiteDetailOut(BaseModel):
    site: SiteOut
    metrics: MetricsOut | None
    """The latest metrics, null before the first."""
    agents: dict[str, float]
    """Agents per state, from the ``agents.<state>`` gauges."""
    alarms: list[AlarmOut]
    """Active alarms, newest first."""


class MetricsHistoryOut(BaseModel):
    site_id: str
    points: list[MetricsOut]
    """Oldest first."""


class IntervalOut(BaseModel):
    start: float
    end: float
    offered: int
    answered: int
    abandoned: int
    service_level: float | None
    """answered_in_sl / (answered + abandoned - abandoned_in_sl) over all queues; null when nothing counts."""


class IntervalsOut(BaseModel):
    site_id: str
    tz: str
    day_start: float
    day_end: float
    intervals: list[IntervalOut]


class ConfigVersionOut(_Out):
    site_id: str
    version: int
    sources: dict[str, int]
    author: str
    reason: str
    created_at: float
    published_at: float | None
    body: dict[str, Any] | None = None
    """The composed config (only when one version is asked for)."""


class LayerVersionOut(_Out):
    scope: str
    version: int
    body: dict[str, Any]
    author: str
    reason: str
    created_at: float


class DiffOut(BaseModel):
    target: str
    from_version: int
    to_version: int
    diff: str
    """A unified diff of the two bodies as sorted, indented JSON (empty when equal)."""


class DriftOut(BaseModel):
    site_id: str
    desired_version: int | None
    reported_version: int | None
    drift: bool
    rejected_version: int | None
    rejection: str
    diff: str | None
    """Reported -> desired as a unified diff, when the reported version is known here."""


def _check_json(value: Any, path: str, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError(f"{path}: nested deeper than {_MAX_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path}: NUL characters are not allowed")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: numbers must be finite")
    elif isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 2**63 - 1:
            raise ValueError(f"{path}: integer out of range")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json(key, f"{path}.{key}", depth + 1)
            _check_json(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]", depth + 1)


class ConfigPushIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: dict[str, Any]
    """The layer's sections (deep-merged over the lower layers), e.g. ``{"sip": {...}}``."""
    reason: str = Field(min_length=1, max_length=500, pattern=r"^[^\x00]*$")
    """Why: kept with the version and in the audit log."""

    @field_validator("config")
    @classmethod
    def _plain_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_json(value, "config")
        return value


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_version: int = Field(ge=1, le=MAX_INT32)
    reason: str = Field(default="", max_length=500, pattern=r"^[^\x00]*$")


class ConfigChangeOut(BaseModel):
    scope: str
    layer_version: int | None
    """The new layer version (null for a site rollback, which writes no layer)."""
    site_versions: dict[str, int]
    """New desired versions by site (sites whose composed config did not change are absent)."""


class CdrOut(_Out):
    site_id: str
    seq: int
    call_id: str
    start_time: float
    start_local: str | None
    """``start_time`` in the requested time zone, ISO 8601 with offset."""
    caller: str
    callee: str
    queue: str
    disposition: str
    duration_s: float | None
    body: dict[str, Any]


class CdrPage(BaseModel):
    items: list[CdrOut]
    limit: int
    offset: int
    next_offset: int | None
    """Offset of the next page, null on the last one."""
    tz: str


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    """Who holds it: the actor in the audit log."""
    role: Role


class TokenOut(BaseModel):
    name: str
    role: Role
    created_at: float
    created_by: str


class TokenIssued(TokenOut):
    token: str
    """The secret, shown this once."""


class WhoAmI(BaseModel):
    name: str
    role: Role


class AuditOut(_Out):
    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


class ErrorOut(BaseModel):
    error: str
    field: str | None = None
    detail: list[dict[str, Any]] | None = None

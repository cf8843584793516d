"""What the store's query functions return: frozen dataclasses, one per thing shown.

Plain dataclasses (not ORM objects) so a reader can hold them after the session is
gone and FastAPI can serialise them as they are. Times are float Unix epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SiteRow:
    id: str
    status: str
    """``online``, ``offline`` or ``unknown`` (never heard from)."""
    status_at: float | None
    last_seen: float | None
    """When the fleet last received anything from the site."""
    version: str
    mode: str
    """``normal`` or ``survivable``."""
    mode_since: float | None
    config_version: int | None
    """The config version the edge reports running."""
    desired_version: int | None
    """The latest config version the fleet published for the site (None: none yet)."""
    config_rejected_version: int | None
    config_rejection: str
    contiguous_seq: int
    """Every record with seq <= this is stored (the last ack)."""
    region: str
    site_type: str
    kernels: dict[str, str] = field(default_factory=dict)
    started_at: float | None = None
    active_alarms: int = 0

    @property
    def drift(self) -> bool:
        """Desired differs from reported (a site with no desired config has no drift)."""
        return self.desired_version is not None and self.desired_version != self.config_version


@dataclass(frozen=True)
class MetricsRow:
    site_id: str
    at: float
    gauges: dict[str, float]
    queues: dict[str, dict[str, float | None]]
    trunks: dict[str, bool]


@dataclass(frozen=True)
class SiteDetail:
    site: SiteRow
    metrics: MetricsRow | None
    """The latest metrics, None before the first."""
    alarms: list[AlarmRow]
    """Active alarms, newest first."""


@dataclass(frozen=True)
class RecordRow:
    site_id: str
    seq: int
    kind: str
    at: float
    body: dict[str, Any]


@dataclass(frozen=True)
class CdrRow:
    site_id: str
    seq: int
    call_id: str
    start_time: float
    caller: str
    callee: str
    queue: str
    disposition: str
    duration_s: float | None
    body: dict[str, Any]
    """The full CDR as the edge sent it."""


@dataclass(frozen=True)
class AlarmRow:
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


@dataclass(frozen=True)
class ConfigVersionRow:
    site_id: str
    version: int
    body: dict[str, Any]
    sources: dict[str, int]
    author: str
    reason: str
    created_at: float
    published_at: float | None


@dataclass(frozen=True)
class LayerVersionRow:
    scope: str
    version: int
    body: dict[str, Any]
    author: str
    reason: str
    created_at: float


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]

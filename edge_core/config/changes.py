"""What changes between two site configs, for applying one to a running edge.

A running edge swaps what it can without dropping a call (extensions, dial plan,
trunks, flows, queues, agents, prompts and a few SIP settings); what is bound at start
(listening sockets, the media port range, the store, the control API socket, the
telemetry connection...) waits for a restart, which comes back on the applied config.
"""

from __future__ import annotations

from typing import Any

from edge_core.config.schema import SiteConfig

# per section, the fields a running edge takes over at once; every other field of
# these sections waits for a restart
SWAPPABLE: dict[str, set[str]] = {
    "site": {"name", "timezone"},
    "sip": {"auth_required", "ring_timeout_s", "user_agent",
            "registration_min_expires_s", "registration_max_expires_s"},  # fmt: skip
    "media": {"voicemail_dir"},
    "store": set(),
    "api": set(),
    "telemetry": set(),
}
CONTACT_CENTER = ("flows", "queues", "agents", "feature_codes", "prompts")
"""Sections only ``HostedCalls.reconfigure`` can take over while calls are up."""


def restart_fields(old: SiteConfig, new: SiteConfig, *, contact_center_swappable: bool) -> list[str]:
    """Paths of the fields that differ and wait for a restart to take effect."""
    o, n = old.model_dump(), new.model_dump()
    fields = []
    for section, swappable in SWAPPABLE.items():
        for key, value in n[section].items():
            if key not in swappable and o[section].get(key) != value:
                fields.append(f"{section}.{key}")
    if not contact_center_swappable:
        fields += [name for name in CONTACT_CENTER if o[name] != n[name]]
    return fields


_SECRETS = {"password", "fleet_public_key"}


def redacted(data: Any) -> Any:
    """A config mapping with passwords replaced by ``"***"`` (for the control API)."""
    if isinstance(data, dict):
        return {k: ("***" if k in _SECRETS and v else redacted(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redacted(v) for v in data]
    return data

"""The dial plan v0: the dialled number -> an extension or a trunk, first match wins."""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge_core.config.schema import Route, SiteConfig, Trunk


@dataclass(frozen=True, slots=True)
class ExtensionTarget:
    number: str
    """The extension the call rings."""


@dataclass(frozen=True, slots=True)
class TrunkTarget:
    trunk: Trunk
    """The trunk the call leaves by."""
    number: str
    """The number sent to the trunk, after the route's rewrite."""


RouteTarget = ExtensionTarget | TrunkTarget


class DialPlan:
    def __init__(self, config: SiteConfig) -> None:
        self._trunks = {t.name: t for t in config.trunks}
        self._routes: list[tuple[re.Pattern[str], Route]] = [
            (re.compile(r.match), r) for r in config.routes
        ]

    def route(self, dialled: str) -> RouteTarget | None:
        """Where a call to ``dialled`` goes, or None (the caller gets 404)."""
        for pattern, route in self._routes:
            m = pattern.fullmatch(dialled)
            if m is None:
                continue
            if route.extension is not None:
                return ExtensionTarget(m.expand(route.extension))
            assert route.trunk is not None  # the schema guarantees exactly one target
            return TrunkTarget(self._trunks[route.trunk], m.expand(route.number))
        return None

    def trunk_for_source(self, host: str, port: int) -> Trunk | None:
        """The trusted trunk a request came from, matched on its address."""
        for trunk in self._trunks.values():
            if trunk.trusted and trunk.host == host and trunk.port == port:
                return trunk
        return None

"""The dial plan: the dialled number -> an extension, an IVR flow, or an ordered list of
trunks; first match wins. Emergency numbers (``routing.emergency_numbers``) come before
every route and go to the local trunks first."""

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
    trunks: tuple[Trunk, ...]
    """The trunks the call may leave by, in the order they are tried."""
    number: str
    """The number sent to the trunk, after the route's rewrite."""
    emergency: bool = False
    """An emergency number: local trunks first, never queued, in any mode."""

    @property
    def trunk(self) -> Trunk:
        """The first choice."""
        return self.trunks[0]


@dataclass(frozen=True, slots=True)
class FlowTarget:
    flow: str
    """The IVR flow the edge answers the call with."""


RouteTarget = ExtensionTarget | TrunkTarget | FlowTarget


_GROUP_REF = re.compile(r"\\(\d+)|\\g<(\w+)>")


class Rewrite:
    """A ``\\1`` / ``\\g<name>`` template, split once into literals and group references
    (``Match.expand`` re-parses its template on every call: 4 % of the edge's CPU)."""

    def __init__(self, template: str) -> None:
        self.parts: list[str | int] = []
        pos = 0
        for m in _GROUP_REF.finditer(template):
            if m.start() > pos:
                self.parts.append(template[pos : m.start()])
            ref = m.group(1) or m.group(2)
            self.parts.append(int(ref) if ref.isdigit() else ref)
            pos = m.end()
        if pos < len(template):
            self.parts.append(template[pos:])

    def expand(self, match: re.Match[str]) -> str:
        return "".join(p if isinstance(p, str) else (match.group(p) or "") for p in self.parts)


class DialPlan:
    def __init__(self, config: SiteConfig) -> None:
        self._trunks = {t.name: t for t in config.trunks}
        self._emergency = set(config.routing.emergency_numbers)
        # emergency calls: the branch's own gateways first, the WAN only as a last resort
        self._emergency_trunks = tuple(
            sorted(config.trunks, key=lambda t: t.kind != "local")
        )
        self._trusted = {(t.host, t.port): t for t in config.trunks if t.trusted}
        self._routes: list[tuple[re.Pattern[str], Route, Rewrite]] = [
            (re.compile(r.match), r, Rewrite(r.extension if r.extension is not None else r.number or ""))
            for r in config.routes
        ]

    def is_emergency(self, dialled: str) -> bool:
        return dialled in self._emergency

    def route(self, dialled: str) -> RouteTarget | None:
        """Where a call to ``dialled`` goes, or None (the caller gets 404)."""
        if dialled in self._emergency and self._emergency_trunks:
            return TrunkTarget(self._emergency_trunks, dialled, emergency=True)
        for pattern, route, rewrite in self._routes:
            m = pattern.fullmatch(dialled)
            if m is None:
                continue
            if route.flow is not None:
                return FlowTarget(route.flow)
            if route.extension is not None:
                return ExtensionTarget(rewrite.expand(m))
            names = route.trunks or ([route.trunk] if route.trunk else [])  # exactly one target
            return TrunkTarget(tuple(self._trunks[n] for n in names), rewrite.expand(m))
        return None

    def trunk_for_source(self, host: str, port: int) -> Trunk | None:
        """The trusted trunk a request came from, matched on its address."""
        return self._trusted.get((host, port))

"""The ACD part of the site config: queues, agents and the agent feature codes.

Field-level rules (ranges, names, one-of choices) are pydantic's; rules that need the
whole list (duplicate names, an agent's queue exists, an overflow target exists, an
agent's extension exists) are in :func:`check_acd`, which returns ``(path, reason)``
pairs in the same form as :class:`edge_core.config.schema.ConfigError.problems`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "MAX_SKILL_NAMES",
    "STRATEGIES",
    "Strategy",
    "OverflowTarget",
    "QueueConfig",
    "AgentConfig",
    "FeatureCodes",
    "check_acd",
]

MAX_SKILL_NAMES = 63
"""Distinct skill names per site: the matcher's skill sets are 64 bits, one kept back."""

STRATEGIES: tuple[str, ...] = (
    "longest-idle",
    "fewest-calls",
    "round-robin",
    "linear",
    "random",
    "skills",
    "ring-all",
)
"""The matcher's strategies plus ``ring-all`` (ring every free agent, first answer wins)."""

Strategy = Literal[
    "longest-idle", "fewest-calls", "round-robin", "linear", "random", "skills", "ring-all"
]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Number = Annotated[str, Field(pattern=r"^[0-9*#+]{1,32}$")]
Proficiency = Annotated[int, Field(ge=1, le=10)]
DialCode = Annotated[str, Field(pattern=r"^[*#][0-9*#]{1,7}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OverflowTarget(_Strict):
    """Where a call goes when it has waited ``max_wait_s`` (or its queue emptied)."""

    type: Literal["queue", "voicemail", "callback", "number"]
    target: str = ""
    """queue name, voicemail box, number to dial; for ``callback`` the queue that calls
    back (empty: the same queue)."""

    @model_validator(mode="after")
    def _target_needed(self) -> OverflowTarget:
        if self.type != "callback" and not self.target:
            raise ValueError(f"overflow of type {self.type!r} needs a 'target'")
        if self.type == "number" and not all(c in "0123456789*#+" for c in self.target):
            raise ValueError(f"overflow number {self.target!r} may hold only 0-9 * # +")
        return self


class QueueConfig(_Strict):
    name: Name
    strategy: Strategy = "longest-idle"
    service_level_s: float = Field(default=30.0, gt=0)
    """A call answered within this many seconds of joining counts as served in time."""
    max_wait_s: float = Field(default=300.0, gt=0)
    """After this long waiting the call goes to ``overflow`` (or back to the flow)."""
    max_length: int = Field(default=50, ge=0)
    """Callers waiting at most (0: no limit); one more is rejected with ``full``."""
    overflow: OverflowTarget | None = None
    join_empty: bool = False
    """Accept a call while no agent able to take it is logged in."""
    leave_when_empty: bool = True
    """Send waiting calls away when the last agent able to take them logs out."""
    ring_timeout_s: float = Field(default=15.0, gt=0)
    auto_pause_after: int = Field(default=3, ge=0)
    """Unanswered rings in a row that pause an agent (0: never)."""
    wrap_up_s: float = Field(default=10.0, ge=0)
    announce_every_s: float = Field(default=30.0, ge=0)
    """Position and estimated wait announced this often (0: never)."""
    moh: str | None = None
    """Music-on-hold prompt name; None: the site default."""
    skills: list[Name] = []
    """Skills every call of this queue needs, on top of those the flow adds."""
    callback_key: Annotated[str, Field(pattern=r"^[0-9*#]$")] | None = None
    """A waiting caller who presses this key keeps their place and hangs up; when their
    turn comes the edge rings an agent, then calls the caller back. None: not offered."""
    callback_attempts: int = Field(default=3, ge=1, le=10)
    """Calls to the customer before the callback is given up (and a task opened)."""
    callback_retry_s: float = Field(default=120.0, gt=0)
    """Wait before calling again a customer who did not answer."""
    callback_ring_s: float = Field(default=30.0, gt=0)
    """How long the customer's phone rings on a callback before it counts as no answer."""
    ewt_smoothing: float = Field(default=0.2, gt=0, le=1)
    """Weight of the newest handle time in the moving average behind the estimated wait."""


class AgentConfig(_Strict):
    id: Name
    name: str = ""
    extension: Number
    """The extension the agent logs into when they dial the login code without an id."""
    skills: dict[Name, Proficiency] = {}
    queues: list[Name] = Field(min_length=1)
    order: int = 0
    """Rank for the ``linear`` strategy (lower rings first)."""


class FeatureCodes(_Strict):
    login: DialCode = "*71"
    """``*71`` logs in the agent whose extension this is; ``*71<agent id>`` logs that agent in here."""
    logout: DialCode = "*72"
    pause: DialCode = "*73"
    """``*73`` pauses; ``*73<digits>`` pauses with that reason (named via ``pause_reasons``)."""
    unpause: DialCode = "*74"
    echo: DialCode = "*43"
    """The echo test: the edge answers and sends the caller's own audio back (a
    technician hears the path through the edge; the CDR carries its loss, jitter, MOS)."""
    pause_reasons: dict[Annotated[str, Field(pattern=r"^[0-9]{1,4}$")], str] = {}
    """Digits after the pause code -> reason name, e.g. ``{"1": "lunch"}``."""

    @model_validator(mode="after")
    def _distinct(self) -> FeatureCodes:
        codes = {
            "login": self.login,
            "logout": self.logout,
            "pause": self.pause,
            "unpause": self.unpause,
            "echo": self.echo,
        }
        for a, code_a in codes.items():
            for b, code_b in codes.items():
                if a != b and code_b.startswith(code_a):
                    raise ValueError(f"feature code {b} ({code_b}) starts with {a} ({code_a})")
        return self


def _dupes(values: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    dupes: set[str] = set()
    for value in values:
        (dupes if value in seen else seen).add(value)
    return dupes


def check_acd(
    queues: Sequence[QueueConfig], agents: Sequence[AgentConfig], extensions: set[str]
) -> list[tuple[str, str]]:
    """Cross-references of the ACD config; each problem is ``(path, reason)``.

    Paths use the config's own names (``queues[1].overflow.target``,
    ``agents[0].queues[2]``). An empty list means the config is consistent.
    """
    problems: list[tuple[str, str]] = []
    names = [q.name for q in queues]
    dup_queues = _dupes(names)
    for i, q in enumerate(queues):
        if q.name in dup_queues and names.index(q.name) != i:
            problems.append((f"queues[{i}].name", f"duplicate queue name {q.name!r}"))
        if q.overflow is not None and q.overflow.type == "queue":
            if q.overflow.target not in names:
                problems.append(
                    (f"queues[{i}].overflow.target", f"no queue named {q.overflow.target!r}")
                )
            elif q.overflow.target == q.name:
                problems.append(
                    (f"queues[{i}].overflow.target", "a queue cannot overflow into itself")
                )
        if q.overflow is not None and q.overflow.type == "callback" and q.overflow.target:
            if q.overflow.target not in names:
                problems.append(
                    (f"queues[{i}].overflow.target", f"no queue named {q.overflow.target!r}")
                )
        if (
            q.overflow is not None
            and q.overflow.type == "voicemail"
            and q.overflow.target not in extensions
        ):
            problems.append(
                (
                    f"queues[{i}].overflow.target",
                    f"no extension {q.overflow.target!r} for voicemail",
                )
            )
    problems.extend(_overflow_cycles(queues))

    ids = [a.id for a in agents]
    dup_ids = _dupes(ids)
    exts = [a.extension for a in agents]
    dup_exts = _dupes(exts)
    known = set(names)
    for i, a in enumerate(agents):
        if a.id in dup_ids and ids.index(a.id) != i:
            problems.append((f"agents[{i}].id", f"duplicate agent id {a.id!r}"))
        if a.extension not in extensions:
            problems.append((f"agents[{i}].extension", f"no extension {a.extension!r}"))
        elif a.extension in dup_exts and exts.index(a.extension) != i:
            problems.append(
                (
                    f"agents[{i}].extension",
                    f"extension {a.extension!r} is already agent {ids[exts.index(a.extension)]!r}'s",
                )
            )
        for j, qname in enumerate(a.queues):
            if qname not in known:
                problems.append((f"agents[{i}].queues[{j}]", f"no queue named {qname!r}"))
        if len(set(a.queues)) != len(a.queues):
            problems.append((f"agents[{i}].queues", "a queue is listed twice"))

    skill_names = {s for q in queues for s in q.skills} | {s for a in agents for s in a.skills}
    if len(skill_names) > MAX_SKILL_NAMES:
        problems.append(
            ("agents", f"{len(skill_names)} distinct skill names; at most {MAX_SKILL_NAMES}")
        )
    for i, q in enumerate(queues):
        members = [a for a in agents if q.name in a.queues]
        if q.skills and members and not any(set(q.skills) <= set(a.skills) for a in members):
            problems.append(
                (
                    f"queues[{i}].skills",
                    f"no agent of queue {q.name!r} has all of {', '.join(q.skills)}",
                )
            )
    return problems


def _overflow_cycles(queues: Sequence[QueueConfig]) -> list[tuple[str, str]]:
    """Queue overflow chains that come back to where they started (callers would circle forever)."""
    nxt = {
        q.name: q.overflow.target
        for q in queues
        if q.overflow is not None and q.overflow.type == "queue"
    }
    index = {q.name: i for i, q in enumerate(queues)}
    reported: set[str] = set()
    problems = []
    for start in nxt:
        path = [start]
        while path[-1] in nxt and nxt[path[-1]] not in path:
            path.append(nxt[path[-1]])
        if path[-1] in nxt and nxt[path[-1]] == start and start not in reported and len(path) > 1:
            reported.update(path)
            chain = " -> ".join([*path, start])
            problems.append((f"queues[{index[start]}].overflow.target", f"overflow cycle {chain}"))
    return problems

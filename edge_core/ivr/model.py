"""IVR flows as data: pydantic models for the site config's ``flows`` section.

A flow is a start node and a mapping of named nodes; a node's ``type`` picks its model.
:class:`IvrFlow` checks the graph as a whole (every target exists, every node is
reachable, no loop runs without a prompt or input) and reports every problem at once,
each at its own path (``nodes.welcome.next: unknown node 'menu1'``), so the site
:class:`~edge_core.config.schema.ConfigError` names ``flows.main.nodes.welcome.next``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

NodeName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]
PromptName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")]
VarName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")]


def _quoted_number(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"put the number in quotes: YAML read it as the integer {value}")
    return value


Number = Annotated[str, BeforeValidator(_quoted_number), Field(pattern=r"^[0-9*#+]{1,32}$")]


def _dtmf_key(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # YAML reads an unquoted 1: as the integer 1
    if not isinstance(value, str) or len(value) != 1 or value not in "0123456789*#":
        raise ValueError("not a single DTMF key (0-9, *, #)")
    return value


DtmfKey = Annotated[str, BeforeValidator(_dtmf_key)]
VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]{0,31})\}")
_PRIORITY_REF = r"^\$\{[A-Za-z_][A-Za-z0-9_]{0,31}\}$"
# a number to dial, digits and ${var} references mixed: "9${ext}", "${transfer_to}"
_TARGET_TEMPLATE = r"^(?:[0-9*#+]|\$\{[A-Za-z_][A-Za-z0-9_]{0,31}\}){1,32}$"
_TIME = re.compile(r"^(?:([01]\d|2[0-3]):([0-5]\d)|(24):(00))$")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Node(_Strict):
    def targets(self) -> Iterator[tuple[str, str]]:
        """``(field path, node name)`` for every node this one can go to."""
        for field in (
            "next",
            "on_fail",
            "open",
            "closed",
            "not_found",
            "fallback",
            "next_on_overflow",
            "after_call",
        ):
            value = getattr(self, field, None)
            if value is not None:
                yield field, value

    def prompts(self) -> Iterator[tuple[str, str]]:
        """``(field, prompt name)`` for every prompt this node plays."""
        for field in ("prompt", "invalid_prompt", "timeout_prompt"):
            value = getattr(self, field, None)
            if value is not None:
                yield field, value

    @property
    def instant(self) -> bool:
        """True when the node moves on without a prompt, input or outside answer."""
        return False


class PlayNode(_Node):
    type: Literal["play"]
    prompt: PromptName
    next: NodeName


class MenuNode(_Node):
    type: Literal["menu"]
    prompt: PromptName
    options: dict[DtmfKey, NodeName] = Field(min_length=1)
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    retries: int = Field(default=2, ge=0, le=10)
    invalid_prompt: PromptName = "invalid"
    timeout_prompt: PromptName = "timeout"
    on_fail: NodeName

    def targets(self) -> Iterator[tuple[str, str]]:
        for key, target in self.options.items():
            yield f"options.{key}", target
        yield from super().targets()


class CollectNode(_Node):
    type: Literal["collect"]
    prompt: PromptName
    variable: VarName
    min_digits: int = Field(default=1, ge=1, le=64)
    max_digits: int = Field(default=16, ge=1, le=64)
    terminator: Literal["#", "*"] | None = "#"
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    """Time allowed for the first digit after the prompt, and between digits."""
    pattern: str | None = None
    """A regular expression the whole entry must match (``re.fullmatch``)."""
    retries: int = Field(default=2, ge=0, le=10)
    invalid_prompt: PromptName = "invalid"
    timeout_prompt: PromptName = "timeout"
    on_fail: NodeName
    next: NodeName

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _lengths(self) -> CollectNode:
        if self.min_digits > self.max_digits:
            raise ValueError("min_digits is above max_digits")
        return self

    @cached_property
    def compiled(self) -> re.Pattern[str] | None:
        return re.compile(self.pattern) if self.pattern is not None else None


def parse_days(spec: str) -> frozenset[int]:
    """``"mon-fri,sun"`` -> weekday numbers (Monday 0); ranges may wrap (``fri-mon``)."""
    days: set[int] = set()
    for part in spec.lower().replace(" ", "").split(","):
        first, sep, last = part.partition("-")
        if first not in DAY_NAMES or (sep and last not in DAY_NAMES):
            raise ValueError(f"not a day list like 'mon-fri' or 'sat,sun': {spec!r}")
        a = DAY_NAMES.index(first)
        b = DAY_NAMES.index(last) if sep else a
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(days)


def minute_of_day(value: str) -> int:
    """``"08:30"`` -> 510; ``"24:00"`` (end of day) -> 1440."""
    m = _TIME.match(value)
    if m is None:
        raise ValueError(f"not a time HH:MM (00:00-24:00): {value!r}")
    hh, mm = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    return int(hh) * 60 + int(mm)


class OpeningHours(_Strict):
    days: str
    """Weekdays, e.g. ``"mon-fri"``, ``"sat,sun"``, ``"mon-fri,sun"``."""
    open: str
    """Local opening time ``HH:MM``."""
    close: str
    """Local closing time ``HH:MM`` (exclusive; ``24:00`` is midnight at the end of the day)."""

    @field_validator("days")
    @classmethod
    def _days(cls, value: str) -> str:
        parse_days(value)
        return value

    @field_validator("open", "close")
    @classmethod
    def _time(cls, value: str) -> str:
        minute_of_day(value)
        return value

    @model_validator(mode="after")
    def _order(self) -> OpeningHours:
        if minute_of_day(self.close) <= minute_of_day(self.open):
            raise ValueError(
                "close must be after open (split hours past midnight into two entries)"
            )
        return self

    @cached_property
    def weekdays(self) -> frozenset[int]:
        return parse_days(self.days)

    @cached_property
    def minutes(self) -> tuple[int, int]:
        return minute_of_day(self.open), minute_of_day(self.close)


class ScheduleNode(_Node):
    type: Literal["schedule"]
    timezone: str | None = None
    """IANA zone of the hours and holidays; None: the site's."""
    hours: list[OpeningHours] = []
    holidays: list[date] = []
    """Dates (in ``timezone``) closed all day."""
    open: NodeName
    closed: NodeName

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def instant(self) -> bool:
        return True


class LookupEntry(_Strict):
    tier: str = "standard"
    vip: bool = False
    name: str = ""
    priority: int | None = None
    """Queue priority for this caller; None: from ``vip``/``tier`` (see LookupNode)."""


class LookupNode(_Node):
    """Finds the caller and sets the call variables ``tier``, ``vip``, ``name`` and
    ``priority`` (higher is answered sooner): the entry's own priority, else
    ``vip_priority`` for a VIP, else ``tier_priorities[tier]``, else ``default_priority``.
    A caller not found gets tier ``standard``, not VIP, and goes to ``not_found``
    (default: ``next``); a failed or timed-out http lookup goes to ``fallback``."""

    type: Literal["lookup"]
    source: Literal["table", "http"]
    table: dict[Number, LookupEntry] = {}
    url: str | None = None
    """http only: the URL to ask; ``${caller}`` and other variables are substituted."""
    timeout_s: float = Field(default=2.0, gt=0, le=30)
    vip_priority: int = 10
    tier_priorities: dict[str, int] = {}
    default_priority: int = 0
    next: NodeName
    not_found: NodeName | None = None
    fallback: NodeName | None = None

    @model_validator(mode="after")
    def _source(self) -> LookupNode:
        if self.source == "http":
            if self.url is None:
                raise ValueError("an http lookup needs 'url'")
            if self.fallback is None:
                raise ValueError("an http lookup needs 'fallback' (where a failed lookup goes)")
        elif self.url is not None:
            raise ValueError("'url' is for source 'http'")
        return self

    @property
    def instant(self) -> bool:
        return self.source == "table"


class SetNode(_Node):
    type: Literal["set"]
    variables: dict[VarName, bool | int | str] = Field(min_length=1)
    """Values to set; ``${var}`` in a string is replaced by that variable."""
    next: NodeName

    @property
    def instant(self) -> bool:
        return True


class QueueNode(_Node):
    type: Literal["queue"]
    queue: str = Field(min_length=1)
    priority: int | Annotated[str, Field(pattern=_PRIORITY_REF)] = 0
    """An int, or ``"${var}"`` read from a call variable (0 when it is not a number)."""
    skills: list[str] = []
    next_on_overflow: NodeName | None = None
    """Where the call goes when the queue overflows; None: hang up (cause queue-overflow)."""
    after_call: NodeName | None = None
    """Where the caller goes when the agent hangs up (e.g. a survey); None: the call ends."""


class CallbackNode(_Node):
    type: Literal["callback"]
    queue: str = Field(min_length=1)
    number: Annotated[str, Field(pattern=_TARGET_TEMPLATE)] = "${caller}"
    """The number to call back."""
    next: NodeName

    @property
    def instant(self) -> bool:
        return True


class VoicemailNode(_Node):
    type: Literal["voicemail"]
    mailbox: str = Field(min_length=1)
    prompt: PromptName = "voicemail_greeting"
    max_s: float = Field(default=120.0, gt=0, le=3600)
    next: NodeName
    notify: Annotated[str, Field(pattern=r"^[0-9*#+]{1,32}$")] | None = None
    """The extension whose phones are told a message is waiting (RFC 3842 NOTIFY);
    None: the mailbox itself when it is an extension number, else nobody."""


class SurveyNode(_Node):
    """One digit from ``min`` to ``max``; a score at or below ``low_threshold`` is low.
    Without a valid answer after the retries the call goes on to ``next`` unscored."""

    type: Literal["survey"]
    prompt: PromptName = "survey_ask"
    variable: VarName = "score"
    min: int = Field(default=1, ge=0, le=9)
    max: int = Field(default=5, ge=0, le=9)
    low_threshold: int = 2
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    retries: int = Field(default=1, ge=0, le=10)
    invalid_prompt: PromptName = "invalid"
    timeout_prompt: PromptName = "timeout"
    next: NodeName

    @model_validator(mode="after")
    def _range(self) -> SurveyNode:
        if self.min > self.max:
            raise ValueError("min is above max")
        if not self.min <= self.low_threshold <= self.max:
            raise ValueError("low_threshold must lie between min and max")
        return self


class TransferNode(_Node):
    type: Literal["transfer"]
    target: Annotated[str, Field(pattern=_TARGET_TEMPLATE)]
    """A number dialled through the dial plan; ``${var}`` references allowed."""


class HangupNode(_Node):
    type: Literal["hangup"]
    cause: str = "normal"


Node = Annotated[
    PlayNode
    | MenuNode
    | CollectNode
    | ScheduleNode
    | LookupNode
    | SetNode
    | QueueNode
    | CallbackNode
    | VoicemailNode
    | SurveyNode
    | TransferNode
    | HangupNode,
    Field(discriminator="type"),
]


def _problem(loc: tuple[str | int, ...], reason: str, value: object = None) -> InitErrorDetails:
    # the reason is final text: escape braces, PydanticCustomError formats its template
    text = reason.replace("{", "{{").replace("}", "}}")
    return InitErrorDetails(type=PydanticCustomError("ivr_flow", text), loc=loc, input=value)


class IvrFlow(_Strict):
    start: NodeName
    nodes: dict[NodeName, Node] = Field(min_length=1)

    @field_validator("nodes", mode="wrap")
    @classmethod
    def _drop_type_from_paths(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # A tagged union puts the tag in the error path (nodes.welcome.play.next); the
        # config names fields as they are written, so take it out again.
        try:
            return handler(value)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                loc = err["loc"]
                if len(loc) >= 2 and loc[-1] == "[key]":  # a bad mapping key: the key is the path
                    loc = (*loc[:-2], str(loc[-2]))
                if len(loc) >= 2 and isinstance(value, dict):
                    node = value.get(loc[0])
                    if isinstance(node, dict) and node.get("type") == loc[1]:
                        loc = (loc[0], *loc[2:])
                problems.append(
                    _problem(loc, err["msg"].removeprefix("Value error, "), err["input"])
                )
            raise ValidationError.from_exception_data(cls.__name__, problems) from None

    @model_validator(mode="after")
    def _graph(self) -> IvrFlow:
        problems: list[InitErrorDetails] = []
        if self.start not in self.nodes:
            problems.append(_problem(("start",), f"unknown node {self.start!r}", self.start))
        for name, node in self.nodes.items():
            for field, target in node.targets():
                if target not in self.nodes:
                    loc = ("nodes", name, *field.split("."))
                    problems.append(_problem(loc, f"unknown node {target!r}", target))
        if self.start in self.nodes:
            seen = reachable(self, self.start)
            for name in self.nodes:
                if name not in seen:
                    problems.append(
                        _problem(("nodes", name), f"not reachable from start {self.start!r}")
                    )
        for cycle in _instant_cycles(self):
            text = " -> ".join([*cycle, cycle[0]])
            problems.append(_problem(("nodes", cycle[0]), f"loop with no prompt or input: {text}"))
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self


def reachable(flow: IvrFlow, start: str) -> set[str]:
    """Names of the nodes reachable from ``start`` (targets that do not exist are skipped)."""
    seen = {start}
    todo = [start]
    while todo:
        for _, target in flow.nodes[todo.pop()].targets():
            if target in flow.nodes and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _instant_cycles(flow: IvrFlow) -> list[list[str]]:
    """Cycles made only of nodes that move on at once: the run would never wait."""
    graph = {
        name: [t for _, t in node.targets() if t in flow.nodes and flow.nodes[t].instant]
        for name, node in flow.nodes.items()
        if node.instant
    }
    cycles: list[list[str]] = []
    done: set[str] = set()
    stack: list[str] = []

    def visit(name: str) -> None:
        stack.append(name)
        for nxt in graph[name]:
            if nxt in stack:
                cycles.append(stack[stack.index(nxt) :])
            elif nxt not in done:
                visit(nxt)
        stack.pop()
        done.add(name)

    for root in graph:
        if root not in done:
            visit(root)
    return cycles


def check_prompts(flow: IvrFlow, available: set[str], prefix: str = "") -> list[tuple[str, str]]:
    """``(path, reason)`` for every prompt the flow plays that ``available`` lacks;
    ``prefix`` (e.g. ``"flows.main"``) is put in front of each path."""
    lead = f"{prefix}." if prefix else ""
    return [
        (f"{lead}nodes.{name}.{field}", f"unknown prompt {prompt!r}")
        for name, node in flow.nodes.items()
        for field, prompt in node.prompts()
        if prompt not in available
    ]


def check_queues(flow: IvrFlow, queues: set[str], prefix: str = "") -> list[tuple[str, str]]:
    """``(path, reason)`` for every queue/callback node naming a queue not in ``queues``."""
    lead = f"{prefix}." if prefix else ""
    return [
        (f"{lead}nodes.{name}.queue", f"unknown queue {node.queue!r}")
        for name, node in flow.nodes.items()
        if isinstance(node, QueueNode | CallbackNode) and node.queue not in queues
    ]


def check_transfers(
    flow: IvrFlow, routable: Callable[[str], bool], prefix: str = ""
) -> list[tuple[str, str]]:
    """``(path, reason)`` for every transfer to a fixed number that ``routable`` (e.g.
    ``lambda n: dial_plan.route(n) is not None``) refuses; ``${var}`` targets are skipped."""
    lead = f"{prefix}." if prefix else ""
    return [
        (f"{lead}nodes.{name}.target", f"no route in the dial plan for {node.target!r}")
        for name, node in flow.nodes.items()
        if isinstance(node, TransferNode) and "$" not in node.target and not routable(node.target)
    ]

"""The site configuration schema: one module, shared by the edge and (later) the fleet.

Every number a person might tune lives here with its unit in the name. Loading an
invalid file raises :class:`ConfigError` whose lines name the path of each bad field
(``routes[1].match: not a valid regular expression: ...``); nothing starts on it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from appliance.host.config import HardwareConfig
from edge_core.acd.model import AgentConfig, FeatureCodes, QueueConfig, check_acd
from edge_core.ivr.model import IvrFlow, check_prompts, check_queues, check_transfers

Port = Annotated[int, Field(ge=0, le=65535)]  # 0: pick a free port at start
Number = Annotated[str, Field(pattern=r"^[0-9*#+]{1,32}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteInfo(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    name: str = ""
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class SipSettings(_Strict):
    listen_host: str = "127.0.0.1"
    udp_port: Port = 5060
    tcp_port: Port = 5060
    domain: str = "branch.local"
    realm: str = "branch.local"
    auth_required: bool = True
    max_message_bytes: int = Field(default=65535, ge=1500, le=1_048_576)
    udp_receive_buffer_bytes: int = Field(default=4 * 1024 * 1024, ge=65536, le=256 * 1024 * 1024)
    nonce_ttl_s: float = Field(default=300.0, gt=0)
    # Challenge order, preferred first (RFC 7616 §3.7). MD5 leads by default because
    # SIPp 3.6 and many desk phones read only the first challenge and know only MD5.
    digest_algorithms: list[Literal["MD5", "SHA-256"]] = Field(default=["MD5", "SHA-256"], min_length=1)
    registration_min_expires_s: int = Field(default=60, ge=1)
    registration_max_expires_s: int = Field(default=3600, ge=1)
    ring_timeout_s: float = Field(default=60.0, gt=0)
    t1_ms: int = Field(default=500, ge=50, le=5000)
    overload_lag_ms: int = Field(default=250, ge=0, le=10_000)
    """When the event loop runs this late, new calls get 503 + Retry-After (emergency
    calls excepted) until it has caught up: shed load rather than let ring and
    retransmission timers fire on answers still unread in the socket (0: never)."""
    user_agent: str = "Branchline-edge"

    @model_validator(mode="after")
    def _expires_order(self) -> SipSettings:
        if self.registration_min_expires_s > self.registration_max_expires_s:
            raise ValueError("registration_min_expires_s is above registration_max_expires_s")
        return self


class MediaSettings(_Strict):
    host: str = "127.0.0.1"
    rtp_port_min: int = Field(default=20000, ge=1024, le=65534)
    rtp_port_max: int = Field(default=29999, ge=1025, le=65535)
    # an answered call whose RTP stops for this long is ended (CDR cause rtp-timeout);
    # not while on hold, when silence is what the peer asked for
    rtp_timeout_s: float = Field(default=30.0, gt=0)
    record_calls: bool = True
    recordings_dir: str = "var/recordings"
    voicemail_dir: str = "var/voicemail"
    recording_flush_interval_s: float = Field(default=0.2, gt=0, le=5)

    @model_validator(mode="after")
    def _range(self) -> MediaSettings:
        if self.rtp_port_max - self.rtp_port_min < 3:
            raise ValueError("rtp_port_max must be at least rtp_port_min + 3 (two legs)")
        return self


class StoreSettings(_Strict):
    path: str = "var/edge.db"
    outbox_max_bytes: int = Field(default=256 * 1024 * 1024, ge=64 * 1024)
    """What the outbox may hold for the fleet while the WAN is down; past it, records
    are shed (kept as tombstones: order and sequence stay) in ``shed_order``."""
    shed_order: list[Literal["event", "interval", "voicemail", "task", "cdr"]] = [
        "event", "interval", "voicemail", "task",
    ]  # fmt: skip
    """Kinds given up first to last, oldest first in each; CDRs only if listed."""


class Extension(_Strict):
    number: Number
    password: str = Field(min_length=4)
    name: str = ""


class Trunk(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    host: str
    port: Port = 5060
    transport: Literal["udp", "tcp"] = "udp"
    username: str | None = None
    password: str | None = None
    # calls from this address are accepted without digest auth (the peer authenticates by IP)
    trusted: bool = True
    kind: Literal["wan", "local"] = "local"
    """``wan``: the central platform, reached over the WAN (skipped in survivable mode);
    ``local``: the branch's PSTN gateway or local carrier."""
    options_interval_s: float | None = Field(default=None, ge=0)
    """SIP OPTIONS keepalive period (0: no keepalive, the trunk is taken as up; None:
    1 s for a ``wan`` trunk, whose loss decides survivable mode, 30 s for a local one)."""
    options_timeout_s: float = Field(default=1.0, gt=0)
    """A keepalive not answered within this long counts as a failure."""
    failover_after_s: float = Field(default=2.0, gt=0)
    """An INVITE to this trunk with no answer at all (not even 100 Trying) after this
    long goes to the route's next trunk (instead of waiting out Timer B, 32 s)."""
    down_after: int = Field(default=2, ge=1, le=100)
    """Consecutive failed keepalives that mark the trunk down."""
    up_after: int = Field(default=2, ge=1, le=100)
    """Consecutive answered keepalives that bring a down trunk back."""
    max_calls: int = Field(default=0, ge=0)
    """Concurrent calls at most (0: no limit); a full trunk is skipped like a down one."""
    registration: bool = False
    """Register to the carrier (``username``/``password``, digest auth) and keep it fresh."""
    register_expires_s: int = Field(default=600, ge=60, le=86400)

    @property
    def keepalive_s(self) -> float:
        """The keepalive period in force (0: none)."""
        if self.options_interval_s is not None:
            return self.options_interval_s
        return 1.0 if self.kind == "wan" else 30.0

    @model_validator(mode="after")
    def _register_needs_user(self) -> Trunk:
        if self.registration and not self.username:
            raise ValueError("registration: true needs a username (and usually a password)")
        return self


class Route(_Strict):
    """``match`` is a regular expression on the dialled number; ``\\1`` etc. in
    ``extension`` / ``number`` refer to its groups. The target is an extension, a trunk,
    or an IVR ``flow`` the edge answers itself."""

    match: str
    extension: str | None = None
    trunk: str | None = None
    trunks: list[str] | None = Field(default=None, min_length=1)
    """Trunks tried in order: one down, full, skipped in survivable mode, or answering
    408/5xx hands the call to the next within the same attempt. ``trunk: x`` is ``[x]``."""
    flow: str | None = None
    number: str = r"\g<0>"

    @field_validator("match")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _one_target(self) -> Route:
        if sum(t is not None for t in (self.extension, self.trunk, self.trunks, self.flow)) != 1:
            raise ValueError("a route needs exactly one of 'extension', 'trunk', 'trunks' or 'flow'")
        pattern = re.compile(self.match)
        field = "extension" if self.extension is not None else "number"
        template = self.extension if self.extension is not None else self.number
        for ref in re.findall(r"\\(\d+)|\\g<(\w+)>", template):
            group = ref[0] or ref[1]
            known = int(group) <= pattern.groups if group.isdigit() else group in pattern.groupindex
            if not known:
                raise ValueError(f"{field} {template!r} refers to group {group}, which 'match' does not have")
        return self


class PromptSettings(_Strict):
    # 8 kHz mono WAVs named after the prompts; missing defaults are generated there
    # at start when the site has flows or agents: spoken by espeak-ng when present
    # ("auto"), or distinct beep patterns ("tones")
    dir: str = "var/prompts"
    generate: Literal["auto", "espeak", "tones"] = "auto"


class ApiSettings(_Strict):
    # the local control API (TUI, simulators, provisioning): HTTP/JSON on this unix
    # socket, relative to the working directory like store.path; "" turns it off
    socket: str = "var/edge.sock"
    event_queue_limit: int = Field(default=1000, ge=10, le=1_000_000)
    """Events kept per event-stream subscriber; past it the oldest are dropped (counted)."""
    stats_interval_s: float = Field(default=1.0, gt=0, le=60)
    sse_keepalive_s: float = Field(default=15.0, gt=0, le=300)

    @field_validator("socket")
    @classmethod
    def _socket_path(cls, value: str) -> str:
        if len(value.encode()) > 107:
            raise ValueError("a unix socket path is at most 107 bytes (use a relative or shorter path)")
        return value


class TelemetrySettings(_Strict):
    """Reporting to the fleet over MQTT (edge_core/telemetry). Off by default: the edge
    never depends on the WAN, and with ``enabled: false`` nothing connects anywhere."""

    enabled: bool = False
    broker_url: str = "mqtt://127.0.0.1:1883"
    """``mqtt://host:port`` (port 1883 when left out)."""
    site_id: str | None = None
    """The site's name in the topics; None: ``site.id``."""
    fleet_public_key: str = ""
    """The fleet's ed25519 config-signing key inline: base64 of the 32 raw bytes, or PEM."""
    fleet_public_key_file: str = ""
    """...or a PEM / base64 file holding it (relative to the working directory)."""
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    username: str | None = None
    password: str | None = None
    metrics_interval_s: float = Field(default=30.0, gt=0, le=3600)
    batch_size: int = Field(default=100, ge=1, le=10_000)
    """Outbox records per published batch."""
    max_inflight_batches: int = Field(default=10, ge=1, le=1000)
    """Batches published and not yet acked before the drain waits for an ack."""
    ack_timeout_s: float = Field(default=30.0, gt=0)
    """No ack for records in flight this long: send again from the last acked seq."""
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    connect_timeout_s: float = Field(default=5.0, gt=0, le=120)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    shutdown_flush_s: float = Field(default=3.0, ge=0, le=60)
    """At shutdown, how long to wait for records in flight to be acked."""
    log_lines: int = Field(default=1000, ge=10, le=100_000)
    """Log lines kept in memory for the ``logs`` command."""

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        broker_address(value)
        return value

    @field_validator("site_id")
    @classmethod
    def _site_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value):
            raise ValueError("a site id is letters, digits, '_', '.', '-' (no '/', '+', '#')")
        return value

    @field_validator("fleet_public_key")
    @classmethod
    def _public_key(cls, value: str) -> str:
        if value:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            from edge_core.telemetry.protocol import load_public_key

            try:
                key = load_public_key(value.encode())
            except (ValueError, TypeError) as exc:
                raise ValueError(f"not an ed25519 public key (base64 of 32 bytes, or PEM): {exc}") from None
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not an ed25519 public key")
        return value

    @model_validator(mode="after")
    def _backoff_order(self) -> TelemetrySettings:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s is above reconnect_max_s")
        return self


class WanSettings(_Strict):
    """How the edge judges the WAN, and the hysteresis of the NORMAL/SURVIVABLE switch."""

    signals: list[Literal["trunks", "fleet"]] = Field(default=["trunks", "fleet"], min_length=1)
    """What says the WAN is up, in order of trust: any ``wan`` trunk answering its
    keepalives, the MQTT session to the fleet. The first with something behind it
    decides (``trunks`` without wan trunks with a keepalive has nothing behind it)."""
    up_after_s: float = Field(default=5.0, ge=0)
    """The WAN must stay up this long before the edge leaves survivable mode."""
    min_dwell_s: float = Field(default=10.0, ge=0)
    """At most one mode change per this many seconds (a flapping link flaps nothing)."""


class RoutingSettings(_Strict):
    emergency_numbers: list[Annotated[str, Field(pattern=r"^[0-9]{2,6}$")]] = ["112", "911"]
    """Dialled exactly, these go out at once: local trunks first, never queued, whatever
    the routes say and whatever the mode."""
    wan: WanSettings = WanSettings()


def broker_address(url: str) -> tuple[str, int]:
    """``(host, port)`` of an ``mqtt://host[:port]`` URL; ValueError for anything else."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ValueError(f"expected mqtt://host:port, got {url!r}")
    try:
        port = parts.port or 1883
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}: {exc}") from None
    return parts.hostname, port


class SiteConfig(_Strict):
    site: SiteInfo
    sip: SipSettings = SipSettings()
    media: MediaSettings = MediaSettings()
    store: StoreSettings = StoreSettings()
    prompts: PromptSettings = PromptSettings()
    api: ApiSettings = ApiSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    routing: RoutingSettings = RoutingSettings()
    extensions: list[Extension] = []
    trunks: list[Trunk] = []
    routes: list[Route] = []
    flows: dict[str, IvrFlow] = {}
    queues: list[QueueConfig] = []
    agents: list[AgentConfig] = []
    feature_codes: FeatureCodes = FeatureCodes()
    hardware: HardwareConfig = HardwareConfig()

    @model_validator(mode="after")
    def _references(self) -> SiteConfig:
        numbers = [e.number for e in self.extensions]
        dupes = sorted({n for n in numbers if numbers.count(n) > 1})
        if dupes:
            raise ValueError(f"extensions: duplicate number(s) {', '.join(dupes)}")
        trunk_names = {t.name for t in self.trunks}
        for i, route in enumerate(self.routes):
            if route.trunk is not None and route.trunk not in trunk_names:
                raise ValueError(f"routes[{i}].trunk: no trunk named {route.trunk!r}")
            for j, name in enumerate(route.trunks or ()):
                if name not in trunk_names:
                    raise ValueError(f"routes[{i}].trunks[{j}]: no trunk named {name!r}")
            if route.flow is not None and route.flow not in self.flows:
                raise ValueError(f"routes[{i}].flow: no flow named {route.flow!r}")
        return self


def cross_check(config: SiteConfig) -> list[tuple[str, str]]:
    """What only the whole site can tell: queues, agents, prompts and transfers that
    the flows and the ACD refer to. Each problem keeps its own path."""
    from edge_core.routing.dialplan import DialPlan

    problems = check_acd(config.queues, config.agents, {e.number for e in config.extensions})
    queues = {q.name for q in config.queues}
    prompts = available_prompts(config.prompts.dir)
    plan = DialPlan(config)
    for name, flow in config.flows.items():
        prefix = f"flows.{name}"
        problems += check_queues(flow, queues, prefix)
        problems += check_prompts(flow, prompts, prefix)
        problems += check_transfers(flow, lambda n: plan.route(n) is not None, prefix)
    codes = config.feature_codes
    for i, ext in enumerate(config.extensions):
        for code in (codes.login, codes.logout, codes.pause, codes.unpause):
            if ext.number.startswith(code):
                problems.append((f"extensions[{i}].number", f"starts with the feature code {code}"))
    return problems


def available_prompts(directory: str) -> set[str]:
    """The default prompt names plus every WAV already in ``directory``."""
    from edge_core.ivr.prompts import DEFAULT_TEXTS

    names = set(DEFAULT_TEXTS)
    path = Path(directory)
    if path.is_dir():
        names |= {p.stem for p in path.glob("*.wav")}
    return names


class ConfigError(Exception):
    """An invalid site configuration; ``problems`` are ``(path, reason)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {path}: {reason}" for path, reason in problems)
        super().__init__(f"invalid configuration {source}:\n{lines}")


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def parse_config(data: object, source: str = "<config>") -> SiteConfig:
    """Validate already-loaded YAML/JSON data."""
    if not isinstance(data, dict):
        raise ConfigError(source, [("(top level)", "expected a mapping of sections")])
    try:
        config = SiteConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            problems.append((_path(err["loc"]), msg))
        raise ConfigError(source, problems) from None
    problems = cross_check(config)
    if problems:
        raise ConfigError(source, problems)
    return config


def load_config(path: str | Path) -> SiteConfig:
    """Read and validate a YAML site config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), [("(file)", exc.strerror or str(exc))]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError(str(path), [(where, f"YAML syntax: {getattr(exc, 'problem', exc)}")]) from None
    return parse_config(data, str(path))

"""``ConsoleApp``: the technician console on one edge's control API.

Two workers keep it live without ever blocking the screen:

* the **event stream** (:meth:`ConsoleApp.follow_events`) subscribes to ``/v1/events``,
  posts each event (the events tab) and marks what it makes stale; when the stream
  fails or ends it posts ``Connection(False)`` ("disconnected, retrying") and tries
  again with backoff, from :data:`RETRY_MIN_S` up to :data:`RETRY_MAX_S`;
* the **refresher** (:meth:`ConsoleApp.refresher`) reads what is stale at once and
  everything every :data:`REFRESH_S` (durations move), posting ``Snapshot`` messages
  that coalesce per kind.

Actions (hang up, pause, drill, apply...) run in their own workers and report with a
notification and a line in the events tab; the ones that change calls or the site ask
for confirmation first.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from tui.client import EdgeClient, EdgeError, EdgeUnavailable
from tui.commands import ConsoleCommands
from tui.format import config_diff, mode_line
from tui.messages import Connection, EdgeEvent, Snapshot
from tui.panes import Pane
from tui.panes.calls import CallsPane
from tui.panes.config import ConfigPane
from tui.panes.diagnostics import CHECKS, DiagnosticsPane
from tui.panes.drill import DrillPane
from tui.panes.events import EventsPane
from tui.panes.lines import LinesPane
from tui.panes.overview import OverviewPane
from tui.panes.software import SoftwarePane
from tui.screens import ConfirmScreen, HelpScreen

__all__ = ["ConsoleApp", "READS"]

READS = {
    "status": "/v1/status", "calls": "/v1/calls", "queues": "/v1/queues", "agents": "/v1/agents",
    "registrations": "/v1/registrations", "trunks": "/v1/trunks", "config": "/v1/config",
    "fleet": "/v1/diagnostics/fleet", "hardware": "/v1/hardware", "software": "/v1/software",
}  # fmt: skip
"""Snapshot kind -> the endpoint it is read from."""
STALE = {
    "call_started": ("calls", "status", "queues"), "call_ended": ("calls", "status", "queues", "agents"),
    "media_timeout": ("calls",), "agent": ("agents", "queues", "status"),
    "registration": ("registrations", "status"), "trunk": ("trunks", "status"), "mode": ("status", "trunks"),
    "config_applied": ("config", "status", "agents", "queues", "trunks", "registrations"),
    "maintenance": ("status",), "stats": ("status", "queues"), "overflow": tuple(READS),
    "alarm": ("hardware",), "hardware_readings": ("hardware",), "panel": ("hardware",),
}  # fmt: skip
"""Event type -> the snapshots it makes stale."""
TABS = ("overview", "calls", "lines", "diagnostics", "config", "drill", "events", "software")
REFRESH_S = 2.0
FLEET_S = 15.0
RETRY_MIN_S = 0.5
RETRY_MAX_S = 4.0
SLOW_TIMEOUT_S = 30.0
INSTALL_TIMEOUT_S = 300.0
"""The edge checks a bundle (signature, every hash) before it answers an install."""


class ConsoleApp(App[None]):
    TITLE = "Branchline console"
    AUTO_FOCUS = None
    """Focus is the tabs' business (a tab's activation focuses its main widget): Textual's
    own first-focusable focus, arriving late under load, took it from a tab a key chose."""
    CSS_PATH = "console.tcss"
    COMMANDS: ClassVar[set[Any]] = App.COMMANDS | {ConsoleCommands}
    BINDINGS = [
        # priority, so a table cannot swallow them; not while typing in a field (check_action)
        *(Binding(str(i + 1), f"tab('{tab}')", tab.title(), show=False, priority=True) for i, tab in enumerate(TABS)),
        Binding("escape", "leave_field", "Leave field", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("ctrl+r", "refresh", "Refresh", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, socket_path: str, *, bundle_dir: str | Path = ".") -> None:
        super().__init__()
        self.socket_path = socket_path
        self.bundle_dir = Path(bundle_dir)
        self.edge = EdgeClient(socket_path)
        self.connected = False
        self.disconnect_reason = "connecting"
        self.data: dict[str, Any] = {}
        """The latest snapshot of each kind."""
        self.loaded: tuple[str, bytes] | None = None
        """The config file loaded and found valid: (path, its bytes)."""
        self.last_bundle: Path | None = None
        self._stale: set[str] = set(READS)
        self._wanted_tab: str | None = None
        """The tab a key asked for, until its activation arrives."""
        self._wake = asyncio.Event()

    # -- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("connecting…", id="connection", markup=False)
        with TabbedContent(id="tabs"):
            with TabPane("1 Overview", id="overview"), VerticalScroll():
                yield OverviewPane(id="overview-pane")
            with TabPane("2 Calls", id="calls"):
                yield CallsPane(id="calls-pane")
            with TabPane("3 Trunks", id="lines"):
                yield LinesPane(id="lines-pane")
            with TabPane("4 Diag", id="diagnostics"):
                yield DiagnosticsPane(id="diagnostics-pane")
            with TabPane("5 Config", id="config"):
                yield ConfigPane(id="config-pane")
            with TabPane("6 Drill", id="drill"):
                yield DrillPane(id="drill-pane")
            with TabPane("7 Events", id="events"):
                yield EventsPane(id="events-pane")
            with TabPane("8 Software", id="software"):
                yield SoftwarePane(id="software-pane")
        yield Footer()

    def on_mount(self) -> None:
        # kept: ``query_one`` on the app searches the active screen, a modal one included
        self.panes: dict[str, Any] = {tab: self.query_one(f"#{tab}-pane", Pane) for tab in TABS}
        self.tabs = self.query_one("#tabs", TabbedContent)
        self.connection_bar = self.query_one("#connection", Static)
        self._draw_connection()
        self.follow_events()
        self.refresher()

    async def on_unmount(self) -> None:
        await self.edge.aclose()

    def pane(self, tab: str) -> Any:
        return self.panes[tab]

    @property
    def events_pane(self) -> EventsPane:
        return self.panes["events"]  # type: ignore[no-any-return]

    # -- the live data ------------------------------------------------------------------------
    def mark_stale(self, *kinds: str) -> None:
        self._stale.update(kinds)
        self._wake.set()

    @work(exclusive=True, group="stream")
    async def follow_events(self) -> None:
        """Follow the event stream forever; reconnect with backoff when it goes."""
        backoff = RETRY_MIN_S
        while True:
            reason = "the edge closed the event stream"
            try:
                async for event in self.edge.events():
                    kind = str(event.get("type"))
                    if kind == "subscribed":
                        backoff = RETRY_MIN_S
                        self.post_message(Connection(True))
                        self.mark_stale(*READS)
                        continue
                    if kind == "closed":
                        break
                    self.post_message(EdgeEvent(event))
                    self.mark_stale(*STALE.get(kind, ()))
            except EdgeError as exc:
                reason = exc.message
            self.post_message(Connection(False, reason))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RETRY_MAX_S)

    @work(exclusive=True, group="refresh")
    async def refresher(self) -> None:
        """Read what is stale, and everything now and then; never while disconnected."""
        loop = asyncio.get_running_loop()
        last_full = last_fleet = -1e9
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), REFRESH_S)
            except TimeoutError:
                pass
            self._wake.clear()
            if not self.connected:
                continue
            now = loop.time()
            if now - last_full >= REFRESH_S:
                self._stale.update(k for k in READS if k != "fleet")
                last_full = now
            if now - last_fleet >= FLEET_S or "fleet" in self._stale:
                last_fleet = now
                self.run_worker(self._read("fleet"), group="fleet", exclusive=True)
            kinds, self._stale = self._stale - {"fleet"}, set()
            await asyncio.gather(*(self._read(kind) for kind in sorted(kinds)))

    async def _read(self, kind: str) -> None:
        try:
            data = await self.edge.get(READS[kind])
        except EdgeUnavailable:
            self._stale.add(kind)  # read again once the stream is back
            return
        except EdgeError as exc:
            self.log.warning(f"{kind}: {exc}")
            return
        self.post_message(Snapshot(kind, data))

    def on_snapshot(self, message: Snapshot) -> None:
        self.data[message.kind] = message.data
        for tab in TABS:
            pane = self.pane(tab)
            if message.kind in pane.KINDS:
                pane.deliver(message.kind, message.data)
        if message.kind == "status":
            self._draw_connection()

    def on_edge_event(self, message: EdgeEvent) -> None:
        self.events_pane.add(message.event)

    def on_connection(self, message: Connection) -> None:
        if message.connected == self.connected and message.reason == self.disconnect_reason:
            return
        was = self.connected
        self.connected, self.disconnect_reason = message.connected, message.reason
        self._draw_connection()
        if message.connected:
            self.events_pane.note(f"connected to {self.socket_path}")
        elif was:
            self.events_pane.note(f"disconnected: {message.reason}")
            self.notify("edge disconnected, retrying", severity="error")

    def _draw_connection(self) -> None:
        bar = self.connection_bar
        if not self.connected:
            bar.update(f"✖ disconnected, retrying — {self.socket_path}: {self.disconnect_reason}")
            bar.set_class(True, "-disconnected")
            return
        bar.set_class(False, "-disconnected")
        status = self.data.get("status") or {}
        site = status.get("site", {})
        bar.update(f"● connected  {site.get('name', '…')} ({site.get('id', '…')})  "
                   f"{mode_line(status.get('mode'))}  {'MAINTENANCE' if status.get('maintenance') else ''}")  # fmt: skip

    # -- keys -------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "tab" and isinstance(self.focused, Input):
            return False  # the digit is typed into the field
        return True

    def action_leave_field(self) -> None:
        if isinstance(self.focused, Input):
            self.pane(self.tabs.active).focus_main()

    def action_tab(self, tab: str) -> None:
        if self.tabs.active != tab:  # (no activation comes for the tab that is open)
            self._wanted_tab = tab
        self.tabs.active = tab
        self.pane(tab).focus_main()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id not in TABS:
            return
        wanted = self._wanted_tab
        if wanted is not None and event.pane.id != wanted:
            # the first tab's activation at start, arriving after a key chose another
            # (a key pressed while the tabs were still mounting): the key wins
            self.tabs.active = wanted
            return
        self._wanted_tab = None
        self.call_after_refresh(self._focus_if_active, event.pane.id)

    def _focus_if_active(self, tab: str) -> None:
        """Focus a tab's main widget, unless another tab was opened meanwhile (the first
        tab's activation at start, arriving late, took the focus from a later one)."""
        if self.tabs.active == tab:
            self.pane(tab).focus_main()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_refresh(self) -> None:
        self.mark_stale(*READS)

    def action_start_drill(self) -> None:
        self.pane("drill").action_drill()

    def action_run_all(self) -> None:
        self.pane("diagnostics").action_run_all()

    # -- acting on the edge ---------------------------------------------------------------------
    def _report(self, text: str, *, error: bool = False) -> None:
        self.notify(text, severity="error" if error else "information", timeout=6)
        self.events_pane.note(text)

    def _confirm(self, question: str, then: Any) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                then()

        self.push_screen(ConfirmScreen(question), answered)

    def _act(self, what: str, request: Any, *stale: str) -> None:
        """Run ``request`` (a coroutine) in a worker; report its outcome."""

        async def run() -> None:
            try:
                await request
            except EdgeError as exc:
                self._report(f"{what}: failed: {exc}", error=True)
                return
            finally:
                self.mark_stale(*stale)
            self._report(f"{what}: done")

        self.run_worker(run(), group="actions")

    def hang_up(self, call_id: str) -> None:
        call: dict[str, Any] = next((c for c in (self.data.get("calls") or {}).get("calls", []) if c["id"] == call_id), {})
        question = f"Hang up the call {call.get('from', '?')} → {call.get('to', '?')} ({call_id})?"
        self._confirm(question, lambda: self._act(f"hang up {call_id}", self.edge.delete(f"/v1/calls/{call_id}"),
                                                  "calls", "status"))  # fmt: skip

    def agent_action(self, agent_id: str, action: str) -> None:
        body = {"reason": "technician"} if action == "pause" else None
        self._act(f"{action} agent {agent_id}", self.edge.post(f"/v1/agents/{agent_id}/{action}", body),
                  "agents", "queues", "status")  # fmt: skip

    def start_drill(self, seconds: int) -> None:
        self._confirm(f"Start a survivable drill for {seconds} s? WAN trunks are not used meanwhile.",
                      lambda: self._act(f"drill for {seconds} s", self.edge.post("/v1/drill", {"seconds": seconds}),
                                        "status", "trunks"))  # fmt: skip

    def end_drill(self) -> None:
        self._act("end drill", self.edge.delete("/v1/drill"), "status", "trunks")

    def set_maintenance(self, on: bool) -> None:
        def go() -> None:
            self._act(f"maintenance {'on' if on else 'off'}",
                      self.edge.post("/v1/maintenance", {"on": on, "reason": "technician console"}), "status")  # fmt: skip

        if on:
            self._confirm("Maintenance on? New calls are refused; calls in progress finish.", go)
        else:
            go()

    # -- diagnostics ----------------------------------------------------------------------------
    def run_diagnostic(self, name: str) -> None:
        pane: DiagnosticsPane = self.pane("diagnostics")
        if name == "ping" and not pane.target():
            self.notify("type a ping target first: a trunk, an extension or host:port", severity="warning")
            return
        pane.running(name)

        async def run() -> None:
            try:
                if name == "ping":
                    result = await self.edge.post("/v1/diagnostics/ping", {"target": pane.target()})
                elif name == "test-call":
                    result = await self.edge.post("/v1/diagnostics/test-call", {}, timeout_s=SLOW_TIMEOUT_S)
                else:
                    result = await self.edge.get(f"/v1/diagnostics/{name}", timeout_s=SLOW_TIMEOUT_S)
            except EdgeError as exc:
                result = {"ok": False, "error": str(exc)}
            pane.record(name, result)

        self.run_worker(run(), group=f"diag-{name}", exclusive=True)

    def save_bundle(self) -> None:
        pane: DiagnosticsPane = self.pane("diagnostics")
        results = [{"name": CHECKS[name], **result} for name, result in pane.results.items()]

        async def run() -> None:
            try:
                response = await self.edge.request("POST", "/v1/diagnostics/bundle", json_body={"results": results},
                                                   timeout_s=SLOW_TIMEOUT_S)  # fmt: skip
            except EdgeError as exc:
                self._report(f"support bundle: failed: {exc}", error=True)
                return
            disposition = response.headers.get("content-disposition", "")
            name = disposition.split("filename=")[-1].strip('"') if "filename=" in disposition else "bundle.tar.gz"
            path = self.bundle_dir / os.path.basename(name)
            await asyncio.to_thread(path.write_bytes, response.content)
            self.last_bundle = path
            self._report(f"support bundle saved: {path}")

        self.run_worker(run(), group="bundle", exclusive=True)

    # -- configuration ----------------------------------------------------------------------------
    def load_config_file(self, path: str) -> None:
        pane: ConfigPane = self.pane("config")
        self.loaded = None

        async def run() -> None:
            try:
                raw = await asyncio.to_thread(Path(path).expanduser().read_bytes)
            except OSError as exc:
                pane.result(f"cannot read {path}: {exc.strerror or exc}")
                return
            try:
                check = await self.edge.request("POST", "/v1/diagnostics/config-check", content=raw,
                                                headers={"Content-Type": "application/yaml"})  # fmt: skip
                running = await self.edge.get("/v1/config")
            except EdgeError as exc:
                pane.result(f"INVALID — nothing changed.\n{_problems(exc.problems())}")
                return
            result = check.json()
            if not result["valid"]:
                problems = [(p["field"], p["message"]) for p in result["problems"]]
                pane.result(f"INVALID — nothing changed. {path}:\n{_problems(problems)}")
                return
            self.loaded = (path, raw)
            diff = config_diff(running.get("config"), result["config"])
            head = [f"VALID: {path}", f"{sum(1 for d in diff if d[:1] in '+-' and d[:3] not in ('+++', '---'))} "
                    "changed lines against the running config (secrets shown as ***)"]  # fmt: skip
            if result.get("secrets_changed"):
                head.append(f"secrets changed: {', '.join(result['secrets_changed'])}")
            if result.get("restart_fields"):
                head.append(f"restart needed for: {', '.join(result['restart_fields'])}")
            head.append("a: apply as a local override    r: roll back" if diff or result.get("secrets_changed")
                        else "no difference: nothing to apply")  # fmt: skip
            pane.result("\n".join(head + [""] + diff))
            pane.query_one("#config-result-box").focus()

        self.run_worker(run(), group="config", exclusive=True)

    def apply_loaded_config(self) -> None:
        if self.loaded is None:
            self.notify("load and validate a config file first (config tab)", severity="warning")
            return
        path, raw = self.loaded
        pane: ConfigPane = self.pane("config")

        async def run() -> None:
            try:
                await self.edge.post("/v1/diagnostics/config-checkpoint")
                applied = (await self.edge.request("POST", "/v1/config", content=raw,
                                                   headers={"Content-Type": "application/yaml"})).json()  # fmt: skip
            except EdgeError as exc:
                pane.result(f"NOT APPLIED — nothing changed. {path}:\n{_problems(exc.problems())}")
                self._report(f"apply {path}: refused: {exc}", error=True)
                return
            finally:
                self.mark_stale("config", "status", "queues", "agents", "trunks")
            self.loaded = None
            note = f"; {applied['note']}" if applied.get("note") else ""
            pane.result(f"APPLIED {path}: running version {applied.get('version')}, origin "
                        f"{applied.get('origin')} (local override){note}\nr: roll back to the previous config")  # fmt: skip
            self._report(f"config {path} applied{note}")

        self._confirm(f"Apply {path} to the running edge as a local override?", lambda: self.run_worker(run(), group="config"))

    def rollback_config(self) -> None:
        pane: ConfigPane = self.pane("config")

        async def run() -> None:
            try:
                result = await self.edge.post("/v1/diagnostics/config-rollback")
            except EdgeError as exc:
                self._report(f"roll back: {exc}", error=True)
                return
            finally:
                self.mark_stale("config", "status", "queues", "agents", "trunks")
            back = result.get("rolled_back_to", {})
            pane.result(f"ROLLED BACK to the config that ran before (version {back.get('version')}, "
                        f"origin {back.get('origin')})")  # fmt: skip
            self._report("config rolled back")

        self._confirm("Roll back to the config that ran before the console's last apply?",
                      lambda: self.run_worker(run(), group="config"))  # fmt: skip

    # -- software -------------------------------------------------------------------------------
    def install_bundle(self, path: str) -> None:
        """Install the bundle file ``path`` (on this box) after a confirmation; the edge
        verifies it first and refuses it with the check that failed."""
        pane: SoftwarePane = self.pane("software")
        path = os.path.abspath(os.path.expanduser(path))

        async def run() -> None:
            pane.result(f"checking {path} … (the edge verifies the signature and every hash)")
            try:
                answer = await self.edge.post("/v1/software/install", {"path": path}, timeout_s=INSTALL_TIMEOUT_S)
            except EdgeError as exc:
                what = "failed: the edge did not answer" if exc.status == 0 else "refused"
                pane.result(f"{what}: {exc.message}", error=True)
                self._report(f"install {path}: {what}: {exc.message}", error=True)
                return
            finally:
                self.mark_stale("software")
            version = answer.get("version", "?")
            pane.pending = {"version": version, "report_id": answer.get("report_id")}
            pane.result(f"accepted: installing {version} … the edge restarts when no call is active; "
                        f"the console reconnects (report {answer.get('report_id', '?')})")  # fmt: skip
            self._report(f"install {path}: accepted, installing {version}")

        self._confirm(f"Install {path}? The edge restarts when no call is active; a failed health check rolls back.",
                      lambda: self.run_worker(run(), group="software", exclusive=True))  # fmt: skip


def _problems(problems: list[tuple[str, str]]) -> str:
    return "\n".join(f"  {path or '(config)'}: {reason}" for path, reason in problems)

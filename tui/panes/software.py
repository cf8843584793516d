"""Software: which release runs in which A/B slot and each slot's status, why the last
rollback happened (the failing check and its output), the last update's result (and
whether the fleet got it), the recent installs; and an install from a bundle file on
the box (a USB stick), verified and health-checked as a fleet update is.

The install is asked of the edge (``POST /v1/software/install``): it checks the bundle
first (a refusal is shown here, nothing is written), then the box's update agent
installs it into the other slot and restarts the edge; the console loses its connection
meanwhile, reconnects, and the outcome appears in ``GET /v1/software``."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Static

from tui.format import local_time, software_event_line
from tui.panes import Pane

HISTORY_SHOWN = 8
OUTPUT_LINES = 6
"""Lines of a failing check's output shown under "Last rollback"."""
PLACEHOLDER = "/media/usb/branchline-1.2.0.bundle"
HINT = "i: type the path of a bundle file (USB stick); enter asks, then installs it"
WARN = "bold red"


class SoftwarePane(Pane):
    KINDS: ClassVar[tuple[str, ...]] = ("software",)
    BINDINGS = [
        Binding("i", "install", "Install file"),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.software: dict[str, Any] | None = None
        self.pending: dict[str, Any] | None = None
        """The install the edge accepted from this console (``version``, ``report_id``)
        until its result shows up."""

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="software-box", can_focus=True):
            yield Static("waiting for the edge…", markup=False, id="software-state")
        with Horizontal(id="software-install"):
            yield Input(placeholder=PLACEHOLDER, id="software-path")
            yield Button("Install", id="software-install-button", variant="warning")
        yield Static(HINT, markup=False, id="software-result")

    def focus_main(self) -> None:
        self.query_one("#software-box", VerticalScroll).focus()

    # -- drawing ------------------------------------------------------------------------
    def show(self, kind: str, data: Any) -> None:
        self.software = data
        self.query_one("#software-state", Static).update(render_software(data))
        self._check_pending(data)

    def _check_pending(self, data: dict[str, Any]) -> None:
        last = data.get("last_result") or {}
        if self.pending is None or last.get("id") != self.pending["report_id"]:
            return
        self.pending = None
        outcome = str((last.get("result") or {}).get("outcome") or "failed")
        version = (last.get("result") or {}).get("version") or "?"
        ok = last.get("ok") and outcome == "committed"
        self.result(f"finished: {outcome.upper().replace('_', ' ')} {version}"
                    + ("" if ok else f" — {_why(last)}"), error=not ok)  # fmt: skip

    def result(self, text: str, *, error: bool = False) -> None:
        """The line under the path field: what became of the last install asked for."""
        line = self.query_one("#software-result", Static)
        line.update(text)
        line.set_class(error, "-error")

    # -- acting -------------------------------------------------------------------------
    def path(self) -> str:
        return self.query_one("#software-path", Input).value.strip()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_install()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "software-install-button":
            event.stop()
            self.action_install()

    def action_install(self) -> None:
        """Install the file in the path field (asks first); with none typed yet, go to
        the field."""
        if not self.path():
            self.query_one("#software-path", Input).focus()
            self.result("type the path of a bundle file, then enter")
            return
        self.app.install_bundle(self.path())  # type: ignore[attr-defined]


def _why(last: dict[str, Any]) -> str:
    result = last.get("result") or {}
    check = result.get("check")
    reason = str(result.get("reason") or last.get("error") or "").strip().splitlines()
    return (f"{check}: " if check else "") + (reason[0] if reason else "no reason recorded")


def last_rollback(data: dict[str, Any]) -> dict[str, Any] | None:
    """The newest rollback the edge knows of: from the history (or the last result,
    whichever is newer), else a failed slot's reason. ``{version, check, reason, at}``."""
    found: list[dict[str, Any]] = [
        {"version": e.get("version"), "check": e.get("check"), "reason": e.get("reason"), "at": e.get("at")}
        for e in data.get("history") or [] if e.get("event") == "rolled_back"
    ]  # fmt: skip
    last = data.get("last_result") or {}
    result = last.get("result") or {}
    if result.get("outcome") == "rolled_back":
        found.append({"version": result.get("version"), "check": result.get("check"), "reason": result.get("reason"),
                      "at": last.get("at")})  # fmt: skip
    if found:
        return max(found, key=lambda r: r.get("at") or 0.0)
    for slot in (data.get("slots") or {}).values():
        if slot.get("status") == "failed" and slot.get("reason"):
            return {"version": slot.get("version"), "check": None, "reason": slot["reason"], "at": slot.get("installed_at")}
    return None


def slot_line(name: str | None, slot: dict[str, Any] | None) -> str:
    if not name or slot is None:
        return "?"
    status = str(slot.get("status") or "?")
    text = f"slot {name}  {slot.get('version') or '-'}  {status.upper() if status == 'failed' else status}"
    if slot.get("installed_at"):
        text += f"  (installed {local_time(slot['installed_at'])})"
    return text  # a failed slot's reason: under "Last rollback"


def render_software(data: dict[str, Any]) -> Text:
    """The pane's text; every state in words (colour only underlines the rollback)."""
    out = Text()

    def line(label: str, value: str, style: str = "") -> None:
        out.append(f"{label:<14}{value}\n", style=style)

    if not data.get("installed"):
        line("Software", "NOT INSTALLED from an A/B bundle", "bold")
        line("  why", str(data.get("reason") or "no reason given"))
        line("", "installing from a file needs a box installed with `branchline image install`")
        return out
    slots: dict[str, Any] = data.get("slots") or {}
    current = data.get("current")
    line("Running", slot_line(current, slots.get(current or "")))
    others = [name for name in sorted(slots) if name != current]
    for name in others:
        line("Other slot", slot_line(name, slots[name]))
    update = data.get("update") or {}
    if update.get("running"):
        line("Update", "IN PROGRESS — the agent is installing; the edge restarts when no call is active", "bold")
    elif update.get("pending"):
        line("Update", "REQUESTED — waiting for the box's updater to start it", "bold")
    else:
        line("Update", "none running")
    rollback = last_rollback(data)
    if rollback is not None:
        reason = str(rollback.get("reason") or "").strip().splitlines() or ["no reason recorded"]
        check = f"{rollback['check']}: " if rollback.get("check") else ""
        out.append(f"Last rollback: {rollback.get('version') or '?'} — {check}{reason[0]}\n", style=WARN)
        for extra in reason[1 : 1 + OUTPUT_LINES]:
            out.append(f"    {extra}\n", style="red")
        if len(reason) > 1 + OUTPUT_LINES:
            out.append(f"    … {len(reason) - 1 - OUTPUT_LINES} more lines\n", style="red")
        if rollback.get("at"):
            out.append(f"    at {local_time(rollback['at'])}\n")
    else:
        line("Last rollback", "none recorded")
    line("Last update", last_update(data.get("last_result")))
    history = data.get("history") or []
    out.append(f"\nHistory (last {min(len(history), HISTORY_SHOWN)} of {len(history)}, newest last)\n", style="bold")
    for entry in history[-HISTORY_SHOWN:]:
        out.append(f"  {software_event_line(entry)}\n")
    if not history:
        out.append("  nothing installed yet\n")
    out.rstrip()
    return out


def last_update(last: dict[str, Any] | None) -> str:
    if not last:
        return "none recorded"
    result = last.get("result") or {}
    fleet = "fleet informed" if last.get("sent") else "fleet NOT informed yet"
    when = local_time(last.get("at"))
    if not last.get("ok") and not result.get("outcome"):
        return f"FAILED at {when}: {last.get('error') or 'no reason recorded'} ({fleet}; {last.get('id', '?')})"
    outcome = str(result.get("outcome") or "?").upper().replace("_", " ")
    text = f"{outcome} {result.get('version') or '?'} at {when} ({fleet}; {last.get('id', '?')})"
    if result.get("outcome") in ("refused", "failed"):
        text += f" — {_why(last)}"
    return text

"""Configuration: the running version and origin; load a file (a USB stick, say), have
the edge validate it (nothing changes), see the diff against the running config, apply
it as a local override (origin ``api``: the fleet sees the drift), roll back.

Rollback: the edge keeps only the applied config and ``GET /v1/config`` is redacted, so
before applying, the console asks the edge to keep the running config as a rollback
point (``POST /v1/diagnostics/config-checkpoint``, in the edge's memory, secrets never
leaving the box); "roll back" applies that point again. It is lost when the edge
restarts (which comes back on the last applied config)."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Input, Static

from tui.panes import Pane


class ConfigPane(Pane):
    KINDS: ClassVar[tuple[str, ...]] = ("config",)
    BINDINGS = [
        Binding("a", "apply", "Apply"),
        Binding("r", "rollback", "Roll back"),
        Binding("l", "edit_path", "Load file"),
    ]

    def compose(self) -> ComposeResult:
        yield Static("running config: …", markup=False, id="config-running")
        yield Input(placeholder="path of a site config (YAML/JSON), enter to load", id="config-path")
        with VerticalScroll(id="config-result-box", can_focus=True):
            yield Static("l: type the path of a config file (enter loads and validates it)", markup=False,
                         id="config-result")

    def focus_main(self) -> None:
        self.query_one("#config-result-box", VerticalScroll).focus()

    def action_edit_path(self) -> None:
        self.query_one("#config-path", Input).focus()

    def show(self, kind: str, data: Any) -> None:
        pending = data.get("pending_restart") or []
        self.query_one("#config-running", Static).update(
            f"Running: version {data.get('version') if data.get('version') is not None else '-'}, "
            f"origin {data.get('origin', '?')}"
            + (f"; restart needed for {', '.join(pending)}" if pending else "")
        )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_load()

    def action_load(self) -> None:
        path = self.query_one("#config-path", Input).value.strip()
        if not path:
            self.notify("type the path of a config file first", severity="warning")
            return
        self.app.load_config_file(path)  # type: ignore[attr-defined]

    def action_apply(self) -> None:
        self.app.apply_loaded_config()  # type: ignore[attr-defined]

    def action_rollback(self) -> None:
        self.app.rollback_config()  # type: ignore[attr-defined]

    def result(self, text: str) -> None:
        self.query_one("#config-result", Static).update(text)
        self.query_one("#config-result-box", VerticalScroll).scroll_home(animate=False)

"""Drill and maintenance: start or end the survivable drill (survivable mode forced for
a while, the WAN judged again afterwards); maintenance mode (new calls refused with
503, calls in progress finish)."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Static

from tui.format import mode_line, updown
from tui.panes import Pane


class DrillPane(Pane):
    KINDS: ClassVar[tuple[str, ...]] = ("status",)
    BINDINGS = [
        Binding("d", "drill", "Start drill"),
        Binding("e", "end_drill", "End drill"),
        Binding("m", "maintenance", "Maintenance"),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.status: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        state = Static("…", markup=False, id="drill-state")
        state.can_focus = True  # the pane's keys act while it has the focus
        yield state
        yield Static("Drill length in seconds:", markup=False, classes="section")
        yield Input("300", id="drill-seconds", restrict=r"[0-9]*", max_length=5)
        yield Static("d start the drill   e end it   m maintenance on/off", markup=False, id="drill-keys")

    def focus_main(self) -> None:
        self.query_one("#drill-state", Static).focus()

    def show(self, kind: str, data: Any) -> None:
        self.status = data
        mode = data.get("mode", {})
        drill = mode.get("drill_until")
        self.query_one("#drill-state", Static).update("\n".join([
            f"Mode          {mode_line(mode)}",
            f"WAN           {updown(mode.get('wan_up'))}",
            f"Drill         {'running until ' + str(drill)[11:19] if drill else 'not running'}",
            f"Maintenance   {'ON' if data.get('maintenance') else 'off'}",
            f"New calls     {'accepted' if data.get('accepting_calls', True) else 'REFUSED'}",
        ]))  # fmt: skip

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_drill()

    def action_drill(self) -> None:
        text = self.query_one("#drill-seconds", Input).value or "300"
        seconds = max(1, min(86400, int(text)))
        self.app.start_drill(seconds)  # type: ignore[attr-defined]

    def action_end_drill(self) -> None:
        self.app.end_drill()  # type: ignore[attr-defined]

    def action_maintenance(self) -> None:
        self.app.set_maintenance(not self.status.get("maintenance", False))  # type: ignore[attr-defined]

"""Calls and queues: active calls (from/to, legs, duration, state, live MOS), queues (waiting,
longest wait, service level, agents by state) and agents (state, reason, time in state),
with actions on the selected row: hang up a call, pause/unpause/log out an agent."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from tui.format import duration, percent
from tui.panes import Pane, selected_key, sync_table


class CallsPane(Pane):
    KINDS: ClassVar[tuple[str, ...]] = ("calls", "queues", "agents")
    BINDINGS = [
        Binding("h", "hangup", "Hang up"),
        Binding("p", "agent('pause')", "Pause"),
        Binding("u", "agent('unpause')", "Unpause"),
        Binding("o", "agent('logout')", "Log out"),
    ]

    def compose(self) -> ComposeResult:
        yield Static("Calls", classes="section")
        calls: DataTable[str] = DataTable(id="calls-table", cursor_type="row", zebra_stripes=True)
        calls.add_columns("From", "To", "State", "Queue/agent", "Dur", "Legs", "MOS")
        yield calls
        yield Static("Queues", classes="section")
        queues: DataTable[str] = DataTable(id="queues-table", cursor_type="row")
        queues.add_columns("Queue", "Wait", "Longest", "SL", "Abandon", "Agents")
        yield queues
        yield Static("Agents", classes="section")
        agents: DataTable[str] = DataTable(id="agents-table", cursor_type="row", zebra_stripes=True)
        agents.add_columns("Agent", "Name", "State", "Reason", "In state", "Calls")
        yield agents

    def focus_main(self) -> None:
        self.query_one("#calls-table", DataTable).focus()

    def show(self, kind: str, data: Any) -> None:
        if kind == "calls":
            rows = []
            for c in data.get("calls", []):
                legs = " ".join(f"{leg['side']}:{'ok' if leg.get('confirmed') else '..'}" for leg in c.get("legs", []))
                where = c.get("agent") or c.get("queue") or c.get("destination") or ""
                state = c.get("state", "?") + (" hold" if c.get("on_hold") else "")
                mos = c.get("mos")
                rows.append((c["id"], [c.get("from") or "?", c.get("to") or "?", state, where,
                                       duration(c.get("duration_s")), legs,
                                       "-" if mos is None else f"{mos:.1f}"]))  # fmt: skip
            sync_table(self.query_one("#calls-table", DataTable), rows)
        elif kind == "queues":
            rows = []
            for q in data.get("queues", []):
                agents = " ".join(f"{k[:5]}:{v}" for k, v in sorted(q.get("agents", {}).items()) if v)
                rows.append((q["name"], [q["name"], q.get("waiting", 0), duration(q.get("longest_wait_s")),
                                         percent(q.get("service_level")), percent(q.get("abandon_rate")),
                                         agents or "-"]))  # fmt: skip
            sync_table(self.query_one("#queues-table", DataTable), rows)
        elif kind == "agents":
            rows = [(a["id"], [a["id"], a.get("name") or "", a.get("state", "?"), a.get("reason") or "",
                               duration(a.get("time_in_state_s")), a.get("calls", 0)])
                    for a in data.get("agents", [])]  # fmt: skip
            sync_table(self.query_one("#agents-table", DataTable), rows)

    def selected_call(self) -> str | None:
        return selected_key(self.query_one("#calls-table", DataTable))

    def selected_agent(self) -> str | None:
        return selected_key(self.query_one("#agents-table", DataTable))

    def action_hangup(self) -> None:
        call = self.selected_call()
        if call is None:
            self.notify("no call selected", severity="warning")
            return
        self.app.hang_up(call)  # type: ignore[attr-defined]

    def action_agent(self, action: str) -> None:
        agent = self.selected_agent()
        if agent is None:
            self.notify("no agent selected", severity="warning")
            return
        self.app.agent_action(agent, action)  # type: ignore[attr-defined]

"""Trunks and phones: trunk health (up/down, last keepalive RTT, failures, calls) and
the registrations (extension, contact address, expiry), both filtered by one search."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from tui.format import duration, matches, number, updown
from tui.panes import Pane, sync_table


class LinesPane(Pane):
    KINDS: ClassVar[tuple[str, ...]] = ("trunks", "registrations")
    BINDINGS = [Binding("slash", "search", "Filter")]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.data: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ filter: trunk, extension, address…", id="lines-filter")
        yield Static("Trunks", classes="section")
        trunks: DataTable[str] = DataTable(id="trunks-table", cursor_type="row")
        trunks.add_columns("Trunk", "Kind", "Address", "State", "RTT", "Fail", "Last", "Calls")
        yield trunks
        yield Static("Phones", markup=False, classes="section", id="phones-title")
        phones: DataTable[str] = DataTable(id="phones-table", cursor_type="row", zebra_stripes=True)
        phones.add_columns("Ext", "Name", "Contact", "Source", "Expires", "UA")
        yield phones

    def focus_main(self) -> None:
        self.query_one("#trunks-table", DataTable).focus()

    def action_search(self) -> None:
        self.query_one("#lines-filter", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "lines-filter":
            for kind in self.KINDS:
                if kind in self.data:
                    self.show(kind, self.data[kind])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#phones-table", DataTable).focus()

    def show(self, kind: str, data: Any) -> None:
        self.data[kind] = data
        needle = self.query_one("#lines-filter", Input).value
        if kind == "trunks":
            rows = []
            for t in data.get("trunks", []):
                cells = [t["name"], t.get("kind", ""), f"{t.get('transport')}:{t.get('host')}:{t.get('port')}",
                         updown(t.get("up")) if t.get("keepalive_s") else updown(t.get("up")) + " (no ka)",
                         number(t.get("rtt_ms"), " ms"), t.get("failures", 0), t.get("last_status") or "-",
                         f"{t.get('calls', 0)}/{t.get('max_calls') or '∞'}"]  # fmt: skip
                if matches(needle, *cells):
                    rows.append((t["name"], cells))
            sync_table(self.query_one("#trunks-table", DataTable), rows)
        elif kind == "registrations":
            regs = data.get("registrations", [])
            rows = []
            for r in regs:
                cells = [r["extension"], r.get("name") or "", r.get("contact", ""), r.get("source", ""),
                         duration(r.get("expires_in_s")), r.get("user_agent") or ""]  # fmt: skip
                if matches(needle, *cells):
                    rows.append((f"{r['extension']} {r.get('contact', '')}", cells))
            sync_table(self.query_one("#phones-table", DataTable), rows)
            self.query_one("#phones-title", Static).update(f"Phones: {len(rows)} of {len(regs)} registered")

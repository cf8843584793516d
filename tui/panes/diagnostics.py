"""Diagnostics: OPTIONS ping (a trunk, an extension or host:port), the media test call,
the database and outbox checks, fleet/MQTT reachability; every result is kept for the
support bundle."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Input, Static

from tui.panes import Pane, selected_key, sync_table

CHECKS = {"ping": "OPTIONS ping", "test-call": "Test call", "database": "Database",
          "outbox": "Outbox", "fleet": "Fleet/MQTT"}  # fmt: skip


def summary(name: str, result: dict[str, Any]) -> str:
    """One line a technician reads first."""
    if name == "fleet" and "broker" in result:
        reach = "reachable" if result.get("tcp_reachable") else f"unreachable ({result.get('error', '?')})"
        if not result.get("enabled"):
            return f"telemetry off; broker {result['broker']} {reach}"
        return f"{'connected' if result.get('connected') else 'NOT connected'} to {result['broker']}, {reach}"
    if "error" in result and not result.get("ok"):
        return str(result["error"])
    if name == "ping":
        if result.get("status") is None:
            return f"{result.get('addr', '')}: {result.get('reason')}"
        return f"{result.get('status')} {result.get('reason')} in {result.get('rtt_ms')} ms ({result.get('addr')})"
    if name == "test-call":
        legs = result.get("legs", [])
        loss = max((leg["loss_pct"] for leg in legs), default=0)
        jitter = max((leg["jitter_ms"] for leg in legs), default=0)
        return f"MOS {result.get('mos')}, loss {loss} %, jitter {jitter} ms ({result.get('codec')} loopback)"
    if name == "database":
        free = result.get("disk_free_pct")
        return f"integrity {', '.join(result.get('integrity', []))}; {result.get('size_bytes', 0) // 1024} KiB; disk {free} % free"
    if name == "outbox":
        return f"backlog {result.get('backlog')} records, last seq {result.get('last_seq')}" + (
            "" if result.get("draining") else " (telemetry off: not draining)")
    return ""


class DiagnosticsPane(Pane):
    KINDS: ClassVar[tuple[str, ...]] = ()
    BINDINGS = [
        Binding("o", "run('ping')", "Ping"),
        Binding("t", "run('test-call')", "Test call"),
        Binding("i", "run('database')", "DB"),
        Binding("x", "run('outbox')", "Outbox"),
        Binding("f", "run('fleet')", "Fleet"),
        Binding("a", "run_all", "All"),
        Binding("b", "bundle", "Bundle"),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.results: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        yield Input(placeholder="ping target: trunk name, extension or host:port", id="diag-target")
        table: DataTable[str] = DataTable(id="diag-table", cursor_type="row")
        table.add_columns("Check", "Result", "Summary")
        yield table
        with VerticalScroll(id="diag-detail-box"):
            yield Static("o ping  t test call  i database  x outbox  f fleet  a all  b bundle", markup=False,
                         id="diag-detail")

    def focus_main(self) -> None:
        self.query_one("#diag-table", DataTable).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_run("ping")

    def target(self) -> str:
        return self.query_one("#diag-target", Input).value.strip()

    def action_run(self, name: str) -> None:
        self.app.run_diagnostic(name)  # type: ignore[attr-defined]

    def action_run_all(self) -> None:
        for name in CHECKS:
            if name != "ping" or self.target():
                self.action_run(name)

    def action_bundle(self) -> None:
        self.app.save_bundle()  # type: ignore[attr-defined]

    def running(self, name: str) -> None:
        self.results.pop(name, None)
        self._draw(running=name)

    def record(self, name: str, result: dict[str, Any]) -> None:
        self.results[name] = result
        self._draw()
        self.query_one("#diag-detail", Static).update(f"{CHECKS[name]}:\n" + json.dumps(result, indent=1))

    def _draw(self, running: str | None = None) -> None:
        rows = []
        for name, label in CHECKS.items():
            result = self.results.get(name)
            if name == running:
                rows.append((name, [label, "running…", ""]))
            elif result is not None:
                rows.append((name, [label, "OK" if result.get("ok") else "FAIL", summary(name, result)]))
            else:
                rows.append((name, [label, "-", ""]))
        sync_table(self.query_one("#diag-table", DataTable), rows)

    def on_mount(self) -> None:
        self._draw()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = selected_key(event.data_table)
        if name in self.results:
            self.query_one("#diag-detail", Static).update(
                f"{CHECKS[name]}:\n" + json.dumps(self.results[name], indent=1))

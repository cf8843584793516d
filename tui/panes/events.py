"""Logs and events: the edge's live event stream, filterable by words (every word must
appear in the line), the newest at the bottom."""

from __future__ import annotations

import collections
import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, RichLog

from tui.format import event_line, matches
from tui.panes import Pane

KEEP = 2000


class EventsPane(Pane):
    BINDINGS = [
        Binding("slash", "search", "Filter"),
        Binding("c", "clear", "Clear"),
        Binding("s", "toggle_stats", "Stats on/off"),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.lines: collections.deque[str] = collections.deque(maxlen=KEEP)
        self.show_stats = False
        """The once-a-second ``stats`` events drown the rest: hidden unless asked for."""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ filter events (e.g. agent dana, trunk, call_ended)", id="events-filter")
        yield RichLog(id="events-log", max_lines=KEEP, wrap=False, markup=False, highlight=False)

    def focus_main(self) -> None:
        self.query_one("#events-log", RichLog).focus()

    def action_search(self) -> None:
        self.query_one("#events-filter", Input).focus()

    def action_clear(self) -> None:
        self.lines.clear()
        self.query_one("#events-log", RichLog).clear()

    def action_toggle_stats(self) -> None:
        self.show_stats = not self.show_stats
        self.notify(f"stats events {'shown' if self.show_stats else 'hidden'}")
        self._redraw()

    def add(self, event: dict[str, Any]) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(float(event.get("time") or time.time())))
        line = f"{stamp} {event_line(event)}"
        self.lines.append(line)
        if self._visible(line):
            self.query_one("#events-log", RichLog).write(Text(line))

    def note(self, text: str) -> None:
        """A line from the console itself (connection lost, action done)."""
        self.add({"type": "console", "note": text, "time": time.time()})

    def _visible(self, line: str) -> bool:
        if not self.show_stats and line[9:].startswith("stats "):
            return False
        return matches(self.query_one("#events-filter", Input).value, line)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._redraw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.focus_main()

    def _redraw(self) -> None:
        log = self.query_one("#events-log", RichLog)
        log.clear()
        for line in self.lines:
            if self._visible(line):
                log.write(Text(line))

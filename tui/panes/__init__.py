"""One module per tab of the console. A pane draws what the app hands it
(:meth:`Pane.show` with a snapshot's kind and data) and asks the app to act; it never
talks to the network itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.widgets import DataTable

__all__ = ["Pane", "sync_table"]


class Pane(Vertical):
    KINDS: ClassVar[tuple[str, ...]] = ()
    """The snapshot kinds this pane draws."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._early: dict[str, Any] = {}

    def deliver(self, kind: str, data: Any) -> None:
        """:meth:`show`, or keep it until the pane's widgets are there (the first
        snapshots can arrive while the app is still composing)."""
        try:
            self.show(kind, data)
        except NoMatches:
            self._early[kind] = data
            self.call_after_refresh(self._replay)

    def _replay(self) -> None:
        early, self._early = self._early, {}
        for kind, data in early.items():
            self.deliver(kind, data)

    def show(self, kind: str, data: Any) -> None:
        """A new snapshot of ``kind`` (one of :attr:`KINDS`)."""

    def focus_main(self) -> None:
        """Focus what the pane's keys act on (called when the tab opens)."""
        tables = self.query(DataTable)
        if tables:
            tables.first().focus()


def sync_table(table: DataTable[Any], rows: Sequence[tuple[str, Sequence[Any]]]) -> None:
    """Replace the rows of ``table`` with ``rows`` (``(key, cells)``), keeping the cursor
    on the same key when it is still there."""
    selected = selected_key(table)
    table.clear()
    for key, cells in rows:
        table.add_row(*(Text(str(c)) for c in cells), key=key)
    if selected is not None:
        for index, (key, _) in enumerate(rows):
            if key == selected:
                table.move_cursor(row=index, animate=False)
                break


def selected_key(table: DataTable[Any]) -> str | None:
    """The key of the row under the cursor, or None for an empty table."""
    if table.row_count == 0:
        return None
    try:
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
    except Exception:  # the cursor is outside the table (rows just removed)
        return None
    return None if row_key.value is None else str(row_key.value)

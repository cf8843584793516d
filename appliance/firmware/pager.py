"""The 2x16 character display: pages, scrolling of long lines, overlays (sans-I/O).

``render(now_ms)`` gives the two lines to show, each exactly ``width`` printable
ASCII characters (what an HD44780 can show; anything else becomes ``?``). A line
longer than the width scrolls as a marquee after ``scroll_pause_ms``, one character
every ``scroll_step_ms``. An overlay (drill confirmation, results) covers the pages
until it expires or is cleared.
"""

_TICKS_PERIOD = 1 << 30
_TICKS_HALF = _TICKS_PERIOD // 2
GAP = "   "
"""What separates the end of a scrolling line from its start coming round again."""


def _diff(a: int, b: int) -> int:
    return ((a - b + _TICKS_HALF) & (_TICKS_PERIOD - 1)) - _TICKS_HALF


def printable(text: str) -> str:
    """``text`` with everything outside printable ASCII replaced by ``?``."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def window(text: str, width: int, offset: int) -> str:
    """The ``width`` characters of marquee ``text`` seen at scroll ``offset``."""
    if len(text) <= width:
        return text + " " * (width - len(text))
    loop = text + GAP
    offset %= len(loop)
    return (loop + loop)[offset : offset + width]


class Pager:
    """Pages of two lines; one shown at a time."""

    def __init__(self, now_ms: int, width: int = 16, scroll_step_ms: int = 350,
                 scroll_pause_ms: int = 1500) -> None:  # fmt: skip
        self.width = width
        self.scroll_step_ms = scroll_step_ms
        self.scroll_pause_ms = scroll_pause_ms
        self.pages: list = [("", "")]
        self.index = 0
        """Index of the page shown."""
        self.shown_ms = now_ms
        self._overlay: tuple | None = None  # (line1, line2, since_ms, until_ms)

    def set_pages(self, pages: list, now_ms: int) -> None:
        """Replace the pages; the page shown stays (and keeps scrolling) if it did not
        change, otherwise the view starts again at its first character."""
        new = [(printable(a), printable(b)) for a, b in pages] or [("", "")]
        current = self.pages[self.index] if self.index < len(self.pages) else None
        self.pages = new
        if self.index >= len(new):
            self.index = 0
        if new[self.index] != current:
            self.shown_ms = now_ms

    def next_page(self, now_ms: int) -> None:
        """Show the next page (wrapping round) from its first character."""
        self.index = (self.index + 1) % len(self.pages)
        self.shown_ms = now_ms

    def show_overlay(self, line1: str, line2: str, now_ms: int, duration_ms: int) -> None:
        """Cover the pages with two lines for ``duration_ms``."""
        self._overlay = (printable(line1), printable(line2), now_ms, now_ms + duration_ms)

    def clear_overlay(self) -> None:
        self._overlay = None

    def overlay_active(self, now_ms: int) -> bool:
        if self._overlay is not None and _diff(now_ms, self._overlay[3]) >= 0:
            self._overlay = None
        return self._overlay is not None

    def _offset(self, since_ms: int, now_ms: int) -> int:
        elapsed = _diff(now_ms, since_ms) - self.scroll_pause_ms
        return elapsed // self.scroll_step_ms if elapsed > 0 else 0

    def render(self, now_ms: int) -> tuple:
        """The two lines on the display at ``now_ms``."""
        if self.overlay_active(now_ms) and self._overlay is not None:
            line1, line2, since = self._overlay[0], self._overlay[1], self._overlay[2]
        else:
            line1, line2 = self.pages[self.index]
            since = self.shown_ms
        offset = self._offset(since, now_ms)
        return window(line1, self.width, offset), window(line2, self.width, offset)

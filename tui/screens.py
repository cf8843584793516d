"""Modal screens: the confirmation asked before anything that changes calls or the
site, and the help screen (``?``)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

__all__ = ["ConfirmScreen", "HelpScreen", "HELP"]

HELP = """\
Branchline technician console — every action has a key.

Anywhere
  1..8         overview, calls, trunks, diagnostics, config, drill, events, software
  ctrl+p       command palette (every action by name)
  ctrl+r       refresh now            ?  this help        q  quit
  tab          next field/table       escape  leave a field

Calls and queues (2)
  h  hang up the selected call (asks first)
  p  pause   u  unpause   o  log out   the selected agent

Trunks and phones (3)
  /  filter (trunk, extension, address...)

Diagnostics (4)  — target: a trunk, an extension or host:port
  o  OPTIONS ping    t  media test call    i  database check
  x  outbox backlog  f  fleet/MQTT         a  run all
  b  save a support bundle (.tar.gz, secrets redacted)

Configuration (5)
  enter in the path field: load, validate and diff the file
  a  apply the loaded file as a local override (asks first)
  r  roll back to the config before the console's last apply

Drill and maintenance (6)
  d  start the survivable drill   e  end it
  m  maintenance on/off (new calls refused, calls in progress finish)

Events (7)
  /  filter (words, e.g. "agent dana")   c  clear

Software (8)  — A/B slots, last rollback and why, last update, installs
  i  install a bundle file (USB stick): type its path, enter (asks first;
     verified, health-checked, rolled back on failure; the edge restarts)
"""


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no; answers False on escape."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(self.question, id="question")
            with Horizontal(id="confirm-buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(HELP, id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)

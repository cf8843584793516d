"""What the console's workers post to the app. Snapshots of one kind coalesce
(``can_replace``): when the app is busy only the newest table of each kind is drawn."""

from __future__ import annotations

from typing import Any

from textual.message import Message

__all__ = ["Connection", "EdgeEvent", "Snapshot"]


class Snapshot(Message):
    """The latest answer of one read endpoint (``status``, ``calls``, ``queues`` ...)."""

    def __init__(self, kind: str, data: Any) -> None:
        super().__init__()
        self.kind = kind
        """Which endpoint: a key of ``tui.app.READS``."""
        self.data = data
        """Its JSON body."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Snapshot) and message.kind == self.kind


class EdgeEvent(Message):
    """One event from the edge's stream (never coalesced: the log shows them all)."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event


class Connection(Message):
    """The edge became reachable or went away; the newest state wins."""

    def __init__(self, connected: bool, reason: str = "") -> None:
        super().__init__()
        self.connected = connected
        self.reason = reason

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Connection)

"""A box's layout on disk: two slots, the ``current`` pointer, the state file.

::

    ROOT/slots/a|b/      venv/ (self-contained), files/ (prompts, defaults), etc/site.yaml,
                         release.json (the manifest it was installed from)
    ROOT/current      -> slots/a   a relative symlink, switched with one rename(2)
    ROOT/etc/site.yaml   the box's own site config (written by provisioning)
    ROOT/data/           the edge's working directory: store, API socket, prompts cache
    ROOT/state.json      per-slot version and status, and the history of installs

The service manager always runs ``ROOT/current/...``, so switching is one atomic
rename and needs no change to the service definition. ``state.json`` is replaced
atomically (write, fsync, rename) so a power cut leaves the old or the new state.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

SlotName = Literal["a", "b"]
SLOTS: tuple[SlotName, SlotName] = ("a", "b")
Status = Literal["empty", "installing", "pending", "good", "failed"]
HISTORY_LIMIT = 50


@dataclass
class SlotRecord:
    version: str = ""
    status: Status = "empty"
    installed_at: float | None = None
    manifest_sha256: str = ""
    reason: str = ""
    """Why the slot is ``failed``: the check that failed and its output."""


@dataclass
class BoxState:
    slots: dict[str, SlotRecord] = field(default_factory=lambda: {s: SlotRecord() for s in SLOTS})
    history: list[dict[str, Any]] = field(default_factory=list)
    """Newest last: ``{at, event, slot, version, reason}``; event is installed, committed,
    rolled_back, refused."""

    def good_version(self, current: SlotName | None) -> str | None:
        """The version that is running and proven (None on a blank box)."""
        if current is not None and self.slots[current].status == "good":
            return self.slots[current].version
        good = [r.version for r in self.slots.values() if r.status == "good"]
        return good[0] if good else None

    def to_json(self) -> dict[str, Any]:
        return {"slots": {k: asdict(v) for k, v in self.slots.items()}, "history": self.history}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> BoxState:
        slots: dict[str, SlotRecord] = {s: SlotRecord(**raw.get("slots", {}).get(s, {})) for s in SLOTS}
        return cls(slots=slots, history=list(raw.get("history", [])))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BoxLayout:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- paths
    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def current_link(self) -> Path:
        return self.root / "current"

    @property
    def site_config(self) -> Path:
        return self.root / "etc" / "site.yaml"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    def slot_dir(self, slot: SlotName) -> Path:
        return self.root / "slots" / slot

    def create(self) -> None:
        for d in (self.root / "slots" / "a", self.root / "slots" / "b", self.root / "etc",
                  self.data_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)

    # -- the pointer
    def current(self) -> SlotName | None:
        try:
            target = os.readlink(self.current_link)
        except FileNotFoundError:
            return None
        name = Path(target).name
        return name if name in SLOTS else None  # type: ignore[return-value]

    def inactive(self) -> SlotName:
        return "b" if self.current() == "a" else "a"

    def switch(self, slot: SlotName) -> None:
        """Point ``current`` at ``slot`` with one atomic rename."""
        tmp = self.root / ".current.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(f"slots/{slot}", tmp)
        os.replace(tmp, self.current_link)
        _fsync_dir(self.root)

    # -- state
    def load(self) -> BoxState:
        try:
            return BoxState.from_json(json.loads(self.state_path.read_text()))
        except FileNotFoundError:
            return BoxState()

    def save(self, state: BoxState) -> None:
        state.history = state.history[-HISTORY_LIMIT:]
        tmp = self.state_path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(state.to_json(), f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)
        _fsync_dir(self.root)

    def record(self, state: BoxState, event: str, slot: SlotName | None, version: str,
               reason: str = "", **extra: Any) -> None:
        state.history.append({"at": time.time(), "event": event, "slot": slot, "version": version,
                              "reason": reason, **extra})
        self.save(state)

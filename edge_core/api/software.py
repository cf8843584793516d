"""Control-API routes for the box's software: what runs in which A/B slot, and an
install from a local file (a USB stick) for the technician console.

* ``GET /v1/software`` -- the current slot, both slots (version, status, the reason a
  slot failed), the last installs (``history``, newest last), whether an update runs
  or is asked for, and the update agent's last result (``ROOT/data/update-last.json``:
  outcome, rollback check and reason, whether the fleet got it).
* ``POST /v1/software/install`` ``{"path": "/media/usb/branchline-1.2.0.bundle"}`` --
  the bundle is checked here first, as the installer would (signature, every hash, the
  platform and Python, the version rules against the good release): a refusal answers
  422 with the check that failed and nothing is written. Then the install goes the
  way a fleet update goes (``edge_core.telemetry.commands.start_update``: the box's
  updater service runs the agent, or the agent is spawned), with the file as a
  ``file://`` URL: copied into ``ROOT/incoming`` with its hash checked, installed into
  the inactive slot, health-checked, committed or rolled back, its result kept for the
  console and sent to the fleet under a ``console-...`` id. Answers 202; the edge is
  restarted by the install (the console reconnects and reads the outcome here).

The box is found as the update command finds it (``box_root``: ``$BRANCHLINE_BOX_ROOT``
or the root above the running slot's venv); an edge not run from a slot answers
``installed: false`` and refuses installs with 409.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from edge_core.api.view import ApiError

router = APIRouter(tags=["software"])

HISTORY = 20
"""Install events answered, at most (newest last)."""


class InstallBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=4096)
    """Absolute path of the bundle on this box (a mounted USB stick)."""


def _not_installed(reason: str) -> dict[str, Any]:
    return {"installed": False, "reason": reason, "root": None, "current": None, "slots": {}, "history": [],
            "update": {"running": False, "pending": False}, "last_result": None}


def software_state(root: Path | None) -> dict[str, Any]:
    """What ``GET /v1/software`` answers (reads a few small files)."""
    if root is None:
        return _not_installed("this edge does not run from an A/B slot (installed by hand or from a checkout)")
    from images.agent import read_result, update_running
    from images.slots import BoxLayout
    from images.updater import request_pending

    layout = BoxLayout(root)
    if not layout.state_path.exists():
        return _not_installed(f"{layout.state_path} missing: nothing was installed from a bundle")
    state = layout.load().to_json()
    return {
        "installed": True, "reason": "", "root": str(root), "current": layout.current(),
        "slots": {name: {k: rec.get(k) for k in ("version", "status", "installed_at", "reason")}
                  for name, rec in state["slots"].items()},
        "history": state["history"][-HISTORY:],
        "update": {"running": update_running(root), "pending": request_pending(root)},
        "last_result": read_result(root),
    }


def preflight(root: Path, bundle: Path) -> dict[str, Any]:
    """The installer's checks before anything is written; the ``update`` args for the
    agent. ApiError 422 naming the check that refused it."""
    from images.agent import UpdaterSettings
    from images.bundle import BundleError, sha256_file, verify_bundle
    from images.manifest import Refused, check_compatible
    from images.signing import load_public_key_file
    from images.slots import BoxLayout

    settings = UpdaterSettings.load(root)
    key_file = root / settings.bundle_public_key_file
    try:
        key = load_public_key_file(key_file)
    except (OSError, ValueError) as exc:
        raise ApiError(409, f"the box's bundle key {key_file} is unusable: {exc}") from None
    layout = BoxLayout(root)
    try:
        verified = verify_bundle(bundle, key)
        check_compatible(verified.manifest, running=layout.load().good_version(layout.current()))
    except (BundleError, Refused) as exc:
        raise ApiError(422, str(exc), "path") from None
    stamp = time.strftime("%Y%m%dT%H%M%S")
    return {"url": bundle.as_uri(), "sha256": sha256_file(bundle), "size": bundle.stat().st_size,
            "version": verified.manifest.version,
            "report_id": f"console-{stamp}-{hashlib.sha256(str(bundle).encode()).hexdigest()[:6]}"}


@router.get("/v1/software", summary="A/B slots, install history, the last update result")
async def get_software() -> dict[str, Any]:
    from edge_core.telemetry.commands import box_root

    return await asyncio.to_thread(software_state, box_root())


@router.post("/v1/software/install", status_code=202,
             summary="Install a bundle from a file on this box (verified first; health-checked; rolled back on failure)")
async def install_from_file(body: InstallBody) -> dict[str, Any]:
    from edge_core.telemetry.commands import CommandFailed, box_root, start_update

    root = box_root()
    if root is None or not (root / "state.json").exists():
        raise ApiError(409, "this edge does not run from an A/B slot: install with `branchline image install`")
    bundle = Path(body.path)
    if not bundle.is_absolute():
        raise ApiError(400, f"not an absolute path: {body.path}", "path")
    if not bundle.is_file():
        raise ApiError(400, f"no such file: {body.path}", "path")
    args = await asyncio.to_thread(preflight, root, bundle)  # reads the whole bundle: off the loop
    try:
        start_update(args)
    except CommandFailed as exc:
        raise ApiError(409, str(exc)) from None
    return {"accepted": True, "version": args["version"], "report_id": args["report_id"]}

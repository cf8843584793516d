"""Control-API routes for the appliance's hardware side (front panel, UPS, sensors).

The host-side agent (``appliance/host``) reports alarms and readings here and asks for
the drill through ``/v1/drill``. Routes are added by the hardware work (issue 8); the
router is included by ``edge_core/api/http.py``. The view is ``request.app.state.view``.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["hardware"])

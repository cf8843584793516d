"""Control-API routes for the technician's diagnostics (OPTIONS ping, test call, checks,
support bundle). Routes are added by the console work (issue 7); the router is included
by ``edge_core/api/http.py``. The view is ``request.app.state.view``.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["diagnostics"])

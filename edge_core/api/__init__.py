"""The edge's local control API: HTTP/JSON over a unix socket, plus an event stream.

Used by the technician console (``tui/``), the simulators and provisioning to read the
running edge (status, calls, registrations, queues, agents), act on it (agent pause,
unpause, login, logout; hang up a call) and follow it (Server-Sent Events).

* ``view.py``: :class:`~edge_core.api.view.EdgeView`, the façade over the daemon's live
  objects returning plain dicts, and the event fan-out with bounded queues.
* ``http.py``: the FastAPI app on a view and :func:`~edge_core.api.http.serve`, uvicorn
  on the daemon's own loop.

It is a server only: it must not import ``tui/`` or ``fleet/`` (they are its clients
or live elsewhere), and it reads the daemon's objects without owning any of them.
"""

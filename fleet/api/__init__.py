"""The NOC HTTP API (FastAPI, OpenAPI at ``/openapi.json``) and the web dashboard it serves.

* ``app.py`` — :func:`create_app`: the routers, the error format, the dashboard files.
* ``auth.py`` — bearer tokens with roles viewer < operator < admin (hashes kept in a
  JSON file), the ``require(role)`` dependency.
* ``sites.py``, ``alarms.py``, ``config_routes.py``, ``cdrs.py``, ``tokens.py`` — the
  routes, each on the store's read API (``fleet.store.queries``) and its writers
  (``FleetStore.ack_alarm``, ``fleet.configs.ConfigStore``).
* ``events.py`` — the live event stream (SSE) fed by polling the store.
* ``prometheus.py`` — ``/metrics`` in the Prometheus text format.
* ``__main__.py`` — ``python -m fleet.api``: serve it with uvicorn, manage tokens.

Reads only the store and the config store; must not import the ingest worker or MQTT
code except the config publisher it is handed.
"""

from fleet.api.app import ApiContext, create_app
from fleet.api.auth import Role, TokenRegistry

__all__ = ["ApiContext", "Role", "TokenRegistry", "create_app"]

"""The fleet store: SQLAlchemy 2 async over SQLite (aiosqlite, default) or PostgreSQL
(asyncpg), one schema and one code path for both.

``FleetStore.open(url)`` connects and migrates; its query methods (``queries.py``) are
what the HTTP API, dashboard and reports read. Must not import anything that does MQTT.
"""

from fleet.store.db import DEFAULT_URL, FleetStore
from fleet.store.ingest import IngestBatch, IngestResult

__all__ = ["DEFAULT_URL", "FleetStore", "IngestBatch", "IngestResult"]

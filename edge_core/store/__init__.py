"""The edge's local database: what a branch needs to keep working without the WAN.

SQLite through aiosqlite in WAL mode (``db.EdgeStore``): registrar bindings, call
detail records, and later config versions, interval statistics, the recordings index
and the outbox. Rows cross this boundary as plain frozen dataclasses.

This package must not import ``edge_core.sip`` or ``edge_core.media``: protocol code
calls the store, never the other way round.
"""

"""The fleet manager: the central service every edge reports to over MQTT.

* ``store/`` — the database (SQLite or PostgreSQL through SQLAlchemy 2 async): schema,
  migrations, the ingest write path and the query API the NOC API builds on.
* ``worker.py`` — an ingest worker (shared subscriptions, idempotent ingest, acks);
  ``mqtt.py`` its thin asyncio adapter over paho-mqtt; ``service.py`` runs N of them.
* ``configs.py`` — desired configuration: layers, versions, validation, signed push.
* ``alarms.py`` — alarm rules (sans-I/O) and their persistence.
* ``sim.py`` — simulated edges for tests and the benchmark.

Must not import edge_core's runtime (sip, media, acd engines, app): only its shared
contracts, ``edge_core.telemetry.protocol`` and ``edge_core.config.schema``.
"""

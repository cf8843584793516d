"""MQTT reporting to the fleet: state, metrics, the outbox drain, config and commands.

* ``protocol.py``: the v1 contract shared with ``fleet/`` (topics, payloads, signatures).
* ``mqtt.py``: paho-mqtt driven from the daemon's asyncio loop (one connection).
* ``client.py``: :class:`~edge_core.telemetry.client.TelemetryClient`, the reconnect loop
  and what flows over a connection; ``drain.py`` the outbox drain; ``commands.py`` the
  fleet's commands and the in-memory log ring; ``metrics.py`` the periodic gauges.

It reaches the daemon only through the small protocols in ``client.py`` and
``commands.py``: it must not import ``edge_core.app``, ``edge_core.sip`` or ``fleet/``.
"""

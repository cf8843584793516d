"""ACD: queues, agents and their states, routing decisions and statistics, sans-I/O.

``model`` is the queue/agent/feature-code part of the site config; ``center`` the
:class:`~edge_core.acd.center.ContactCenter` core (inputs with an injected ``now``,
actions out, one timer); ``stats`` live and 15-minute interval statistics. The call
picking itself is ``cython_ext.acdmatch``'s ``Matcher``.

Must not import asyncio, sockets, sip/, media/, store/, telemetry, fleet or tui: the
adapter that turns actions into INVITEs and prompts lives with the call core.
"""

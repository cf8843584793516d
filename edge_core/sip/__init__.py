"""The edge's SIP stack, sans-I/O: message model, transactions (RFC 3261 §17), digest
auth (RFC 7616), registrar, and the B2BUA call core; plus the thin asyncio transports.

Only ``transport.py`` touches sockets or the event loop. Must not import media engine
internals, telemetry, fleet or tui.
"""

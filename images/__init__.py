"""Signed update bundles, A/B slots and health-checked rollback.

* ``manifest`` -- the signed manifest: what a bundle is and what it holds (pure parsing).
* ``signing``  -- ed25519 keys: load, generate, sign, verify.
* ``bundle``   -- build a reproducible bundle file; verify one without writing anything.
* ``slots``    -- a box's layout on disk: two slots, the ``current`` pointer, the state file.
* ``service``  -- the one small interface to the process manager (supervisord, systemd).
* ``health``   -- the application's own health check (control API, SIP OPTIONS, outbox).
* ``install``  -- verify, install into the inactive slot, switch, check, commit or roll back.

Must not import ``fleet`` or ``edge_core`` internals at module level: the installer runs
from the *old* slot and must not care what the new release looks like inside.
"""

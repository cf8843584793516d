"""A box over SSH as root, or as an admin user who may ``sudo`` without a password.

:class:`SudoConnection` wraps a Fabric ``Connection`` with the few calls provisioning
makes (``run``, ``put``, ``get``, ``close``, ``host``, ``port``) so that every step
works unchanged when the login is not root:

* ``run(cmd)`` runs ``sudo -n sh -c 'cmd'`` (``-n``: a sudo that wants a password fails
  at once with sudo's own message instead of hanging);
* ``put(src, path)`` uploads into a fresh ``mktemp`` file of the admin's (mode 0600:
  a site config holds passwords), then copies its bytes over ``path`` as root and
  removes it; a file that exists keeps its owner and mode (the caller sets them);
* ``get(path, buf)`` reads through ``sudo base64`` (root-only files, byte-exact).
"""

from __future__ import annotations

import base64
import shlex
from io import BytesIO
from typing import IO, Any, TypeAlias

from fabric import Connection


class SudoConnection:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.host = connection.host
        self.port = connection.port

    def run(self, cmd: str, **kwargs: Any) -> Any:
        return self.connection.run(f"sudo -n sh -c {shlex.quote(cmd)}", **kwargs)

    def put(self, local: str | IO[bytes], remote: str) -> None:
        tmp = str(self.connection.run("umask 077 && mktemp", hide=True, in_stream=False).stdout).strip()
        try:
            self.connection.put(local, tmp)
            self.run(f"cat {shlex.quote(tmp)} > {shlex.quote(remote)}", hide=True, in_stream=False)
        finally:
            self.connection.run(f"rm -f {shlex.quote(tmp)}", hide=True, warn=True, in_stream=False)

    def get(self, remote: str, local: BytesIO) -> None:
        out = self.run(f"base64 -w0 {shlex.quote(remote)}", hide=True, in_stream=False)
        local.write(base64.b64decode(str(out.stdout).strip()))

    def close(self) -> None:
        self.connection.close()


Remote: TypeAlias = Connection | SudoConnection
"""What the provisioning steps take: root either way."""


def as_root(connection: Connection) -> Remote:
    """The connection itself for root, else the same through ``sudo``."""
    return connection if connection.user == "root" else SudoConnection(connection)

"""Keep mosquitto's ``password_file`` and ``acl_file`` in step with the enrolled boxes.

The fleet owns two files that mosquitto reads (``password_file``, ``acl_file`` in its
config) and rewrites both whole, from the ``devices`` table, whenever a box is enrolled
or its credentials are rotated (``fleet.api.enroll``), then sends mosquitto SIGHUP: it
re-reads both files on that signal and drops clients whose credentials no longer pass.

What the files hold, in order:

* the operator's own lines, copied from optional *base* files (a monitoring user, a
  bridge, ...); a base password line for a user the fleet writes itself is left out;
* the fleet's service user (its own MQTT credentials, from the ``--broker`` URL): its
  password line when the fleet knows the password (else the base file must have it) and
  ``readwrite bl/v1/site/+/#`` -- enough for plain and ``$share/{group}/...``
  subscriptions (mosquitto checks the topic behind the share prefix);
* one user per enrolled site, ``site-{site}``, allowed exactly what the edge does on its
  own topics: publish ``state`` (also its last will), ``metrics``, ``outbox``,
  ``config/report`` and ``cmd/result``; receive ``ack``, ``config`` and ``cmd``.
  A box enrolled before the fleet kept mosquitto hashes has none and is left out (a
  warning names it) until its credentials are rotated.

The password hash is written here by hand because no library we keep writes mosquitto
password files. It is what ``mosquitto_passwd`` 2.x writes:
``$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512(password, salt)>`` with 101
iterations, a 12-byte salt and the 64-byte derived key, standard base64 with padding
(checked against ``mosquitto_passwd -c -b`` of mosquitto 2.0.11 and against the broker).

Files are replaced atomically (each written aside in its directory and synced, then both renamed)
with mode 0640 by default and, when ``group`` is set, that group: mosquitto started as
root drops to the ``mosquitto`` user before reading them, so it needs the group's read
right (and the directory's search right). SIGHUP needs the fleet to run as mosquitto's
user or as root, on the same host.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fcntl
import grp
import hashlib
import hmac
import logging
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from edge_core.telemetry.protocol import PREFIX

log = logging.getLogger(__name__)

ITERATIONS = 101
"""PBKDF2 rounds ``mosquitto_passwd`` 2.x uses."""
SALT_BYTES = 12
HASH_PREFIX = "$7$"
EDGE_PUBLISHES = ("state", "metrics", "outbox", "config/report", "cmd/result")
EDGE_RECEIVES = ("ack", "config", "cmd")
CONFIRM_TIMEOUT_S = 5.0
"""How long :meth:`BrokerAuth.confirm` tries the new credentials after a reload."""


class BrokerAuthError(RuntimeError):
    """The files could not be written, or mosquitto could not be told to reload."""


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """A mosquitto ``$7$`` hash of ``password`` (a fresh random salt unless given)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"{HASH_PREFIX}{iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def check_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (ours or ``mosquitto_passwd``'s)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[:2] != ["", "7"] or not parts[2].isdigit():
        return False
    try:
        salt, key = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    derived = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(derived, key)


def site_username(site: str) -> str:
    return f"site-{site}"


def site_acl(site: str, username: str) -> list[str]:
    """The ACL block of one site's user: its own topics, in the edge's directions only."""
    return ([f"user {username}"]
            + [f"topic write {PREFIX}/{site}/{kind}" for kind in EDGE_PUBLISHES]
            + [f"topic read {PREFIX}/{site}/{kind}" for kind in EDGE_RECEIVES])


def fleet_acl(username: str) -> list[str]:
    return [f"user {username}", f"topic readwrite {PREFIX}/+/#"]


@dataclass(frozen=True)
class SiteCredentials:
    """One enrolled site as the broker files need it."""

    site: str
    username: str
    password_hash: str | None
    """mosquitto ``$7$`` hash; None for a box enrolled before the fleet kept them."""


HEADER = "# Written by the Branchline fleet (fleet.broker_auth) on every enrollment; edits are lost.\n"


class BrokerAuth:
    """The two files, where mosquitto's pid is found, and the fleet's own user."""

    def __init__(
        self,
        password_file: str | Path,
        acl_file: str | Path,
        *,
        pid_file: str | Path | None = None,
        pid: int | None = None,
        fleet_username: str | None = None,
        fleet_password: str | None = None,
        base_password_file: str | Path | None = None,
        base_acl_file: str | Path | None = None,
        group: str | None = None,
        mode: int = 0o640,
        confirm_url: str | None = None,
        confirm_timeout_s: float = CONFIRM_TIMEOUT_S,
    ) -> None:
        """``pid``/``pid_file``: whom to SIGHUP (neither: the files are written, nobody is
        told). ``confirm_url``: after a reload, connect there with the changed user's new
        password until the broker accepts it (at most ``confirm_timeout_s``)."""
        self.password_file = Path(password_file)
        self.acl_file = Path(acl_file)
        self.pid_file = Path(pid_file) if pid_file is not None else None
        self.pid = pid
        self.fleet_username = fleet_username
        self._fleet_hash = hash_password(fleet_password) if fleet_username and fleet_password is not None else None
        self.base_password_file = Path(base_password_file) if base_password_file else None
        self.base_acl_file = Path(base_acl_file) if base_acl_file else None
        try:
            self.gid = grp.getgrnam(group).gr_gid if group else None
        except KeyError:
            raise ValueError(f"no group {group!r} on this host") from None
        self.mode = mode
        self.confirm_url = confirm_url
        self.confirm_timeout_s = confirm_timeout_s
        self._lock = asyncio.Lock()

    # -- the files ---------------------------------------------------------------------

    def render(self, sites: Iterable[SiteCredentials]) -> tuple[str, str, list[str]]:
        """``(password file, ACL file, sites left out for want of a hash)``."""
        sites = sorted(sites, key=lambda s: s.site)
        missing = [s.site for s in sites if s.password_hash is None]
        users: list[tuple[str, str]] = []
        if self.fleet_username and self._fleet_hash:
            users.append((self.fleet_username, self._fleet_hash))
        users += [(s.username, s.password_hash) for s in sites if s.password_hash is not None]
        ours = {name for name, _ in users}
        base_pw = [line for line in _read(self.base_password_file).splitlines()
                   if line.partition(":")[0].strip() not in ours or line.lstrip().startswith("#")]
        passwords = HEADER + "".join(f"{line}\n" for line in base_pw) + "".join(f"{u}:{h}\n" for u, h in users)
        blocks = [fleet_acl(self.fleet_username)] if self.fleet_username else []
        blocks += [site_acl(s.site, s.username) for s in sites if s.password_hash is not None]
        base_acl = _read(self.base_acl_file)
        acl = HEADER + base_acl + ("\n" if base_acl and not base_acl.endswith("\n") else "")
        acl += "".join("\n" + "\n".join(block) + "\n" for block in blocks)
        return passwords, acl, missing

    def write(self, sites: Iterable[SiteCredentials]) -> None:
        """Replace both files (atomically each); BrokerAuthError when that fails."""
        passwords, acl, missing = self.render(sites)
        if missing:
            log.warning("broker auth: no mosquitto hash for %s (enrolled before the fleet kept one); "
                        "rotate their credentials (POST /api/v1/devices/{site}/credentials)", ", ".join(missing))
        staged: list[tuple[Path, Path]] = []
        try:  # both written aside first: a failure there leaves both files as they were
            for path, content in ((self.password_file, passwords), (self.acl_file, acl)):
                staged.append((_stage(path, content, self.mode, self.gid), path))
            for tmp, path in staged:
                os.replace(tmp, path)
            for directory in {path.parent for _, path in staged}:
                _fsync_dir(directory)
        except OSError as exc:
            for tmp, _ in staged:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            raise BrokerAuthError(f"cannot write the broker's files: {exc}") from exc

    # -- mosquitto -----------------------------------------------------------------------

    def broker_pid(self) -> int | None:
        if self.pid is not None:
            return self.pid
        if self.pid_file is None:
            return None
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError) as exc:
            raise BrokerAuthError(f"mosquitto's pid file {self.pid_file}: {exc}") from exc

    def reload(self) -> int | None:
        """SIGHUP to mosquitto (it re-reads both files); the pid signalled, None if no
        pid is configured."""
        pid = self.broker_pid()
        if pid is None:
            return None
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            raise BrokerAuthError(f"mosquitto (pid {pid}) is not running") from None
        except PermissionError:
            raise BrokerAuthError(f"not allowed to signal mosquitto (pid {pid}): run the fleet as its user") from None
        return pid

    async def confirm(self, username: str, password: str) -> None:
        """Connect to ``confirm_url`` as ``username`` until the broker accepts the new
        password; BrokerAuthError after ``confirm_timeout_s``."""
        from fleet.mqtt import MqttConnection, MqttError

        if self.confirm_url is None:
            return
        deadline = time.monotonic() + self.confirm_timeout_s
        while True:
            left = deadline - time.monotonic()
            try:
                async with MqttConnection(self.confirm_url, f"bl-authcheck-{secrets.token_hex(6)}",
                                          username=username, password=password,
                                          connect_timeout_s=max(0.5, min(2.0, left))):
                    return
            except (MqttError, TimeoutError, OSError) as exc:
                if time.monotonic() >= deadline:
                    raise BrokerAuthError(f"the broker did not accept {username}'s new password "
                                          f"within {self.confirm_timeout_s:g}s: {exc}") from None
            await asyncio.sleep(0.05)  # the broker handles SIGHUP between its network events

    async def apply(self, sites: Iterable[SiteCredentials], changed: tuple[str, str] | None = None) -> None:
        """Write both files, reload mosquitto and, for ``changed`` (username, password),
        confirm the broker takes it. Call under :meth:`locked`."""
        self.write(sites)
        if self.reload() is not None and changed is not None:
            await self.confirm(*changed)

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """One writer at a time, in this process and across processes (a lock file
        beside the password file): read the devices, write, reload, commit, inside."""
        async with self._lock:
            lock_path = self.password_file.with_name(f".{self.password_file.name}.lock")
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise BrokerAuthError(f"cannot open the lock file {lock_path}: {exc}") from exc
            try:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the flock


def _read(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text()
    except FileNotFoundError:
        log.warning("broker auth: base file %s is missing; written without it", path)
        return ""
    except OSError as exc:
        raise BrokerAuthError(f"cannot read the base file {path}: {exc}") from exc


def _stage(path: Path, text: str, mode: int, gid: int | None) -> Path:
    """``text`` in a temporary file beside ``path``, synced, with its final mode and
    group: renamed onto ``path`` it replaces it whole (never a half-written file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "w") as out:
            os.fchmod(fd, mode)  # whatever the umask
            if gid is not None:
                os.fchown(fd, -1, gid)
            out.write(text)
            out.flush()
            os.fsync(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return tmp


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- command line (``branchline fleet run`` and ``python -m fleet.api serve``) ---------------

_FLAGS = ("password_file", "acl_file", "pid_file", "base_password_file", "base_acl_file", "file_group", "fleet_user")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "mosquitto authentication", "enrollment and credential rotation rewrite mosquitto's password and ACL "
        "files and SIGHUP it (both files or neither)")
    g.add_argument("--mosquitto-password-file", help="mosquitto's password_file (the fleet owns it)")
    g.add_argument("--mosquitto-acl-file", help="mosquitto's acl_file (the fleet owns it)")
    g.add_argument("--mosquitto-pid-file", help="mosquitto's pid_file: SIGHUP after every change")
    g.add_argument("--mosquitto-base-password-file", help="the operator's own password lines, copied first")
    g.add_argument("--mosquitto-base-acl-file", help="the operator's own ACL lines, copied first")
    g.add_argument("--mosquitto-file-group", help="group of both files (mosquitto's, when it runs as its own user)")
    g.add_argument("--mosquitto-fleet-user",
                   help="the fleet's MQTT user, allowed every site's topics (default: the user in --broker)")


def forward_arguments(args: argparse.Namespace) -> list[str]:
    """The options above as given, to pass on to a child process."""
    out: list[str] = []
    for name in _FLAGS:
        value = getattr(args, f"mosquitto_{name}", None)
        if value:
            out += [f"--mosquitto-{name.replace('_', '-')}", str(value)]
    return out


def from_arguments(args: argparse.Namespace, broker_url: str | None) -> BrokerAuth | None:
    """The :class:`BrokerAuth` the options describe; None without the two files.
    ValueError for an incomplete set. The fleet's password (hashed into the password
    file) and the URL the new credentials are confirmed at come from ``broker_url``."""
    from fleet.mqtt import broker_credentials, public_broker_url

    password_file = getattr(args, "mosquitto_password_file", None)
    acl_file = getattr(args, "mosquitto_acl_file", None)
    if not password_file and not acl_file:
        return None
    if not (password_file and acl_file):
        raise ValueError("--mosquitto-password-file and --mosquitto-acl-file go together")
    url_user, url_password = broker_credentials(broker_url) if broker_url else (None, None)
    fleet_user = args.mosquitto_fleet_user or url_user
    return BrokerAuth(
        password_file, acl_file, pid_file=args.mosquitto_pid_file, fleet_username=fleet_user,
        fleet_password=url_password if fleet_user == url_user else None,
        base_password_file=args.mosquitto_base_password_file, base_acl_file=args.mosquitto_base_acl_file,
        group=args.mosquitto_file_group, confirm_url=public_broker_url(broker_url) if broker_url else None)

"""Bootstrap two boxes over real SSH (Debian openssh-server) with Fabric, in parallel,
then again: the second run changes nothing and says so.

Each "host" is an sshd in its own network namespace (``bl-<pid>-box<i>``), joined to
the test's namespace by a veth pair: the box is ``10.78.<i>.2``, the test's end
``10.78.<i>.1`` (its default route, so a box reaches the fleet and the broker the test
runs on the test's end of the first pair). Each sshd also has its own mount namespace:
a private tmpfs on /run (sshd's privilege-separation dir, so the machine's /run is
untouched), an overlay on /etc (the service user bootstrap creates lands in the box's
own copy, not in the machine's /etc/passwd) and its own directory bound on /srv, so
the boxes have separate file systems and each is provisioned at /srv/branchline.
Whatever a box starts (its supervisord, the edge under it) is stopped by pid, then the
namespace is deleted (its veth with it), when the test ends.

Each box also has an admin user (``bladmin``) who may sudo without a password, in its
own /etc: this test provisions the first box as root and the second as that admin
(every step through ``sudo -n``); test_provision_enroll.py does all of it as the admin.

Where network namespaces cannot be made, the hosts are two sshd on two loopback ports
of the test's namespace instead, and the test says so (a warning naming the reason).

This test lays boxes out without installing (``install=False``); the whole path --
slot A installed, service started, healthy, enrolled and reporting -- is
test_provision_enroll.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fabric import Connection

from provisioning.tasks import BootstrapOptions, bootstrap_many
from tests.sipp import free_tcp_port, wait_for
from tests.system.netlab import unavailable_reason

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
SUDO = shutil.which("sudo")
ADMIN_USER = "bladmin"
"""The non-root login provisioning uses through ``sudo -n`` (when sudo is installed)."""
pytestmark = [
    pytest.mark.skipif(SSHD is None, reason="sshd missing (Debian package openssh-server)"),
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                       reason="needs root and unshare for the per-host mount namespace"),
]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class SshHost:
    """One box: sshd as root in its own network and mount namespaces (``netns``), or on
    a loopback port of the test's namespace (``netns=False``)."""

    def __init__(self, workdir: Path, client_pub: str, index: int, *, netns: bool) -> None:
        workdir.mkdir()
        self.dir = workdir
        self.srv = workdir / "srv"
        self.srv.mkdir()
        self.netns = f"bl-{os.getpid()}-box{index}" if netns else None
        self.veth = f"bp{str(os.getpid())[-6:]}{index}"
        if self.netns:
            self.address, self.port = f"10.78.{index + 1}.2", 22
            self.peer_address = f"10.78.{index + 1}.1"
            self._make_netns()
        else:
            self.address, self.port, self.peer_address = "127.0.0.1", free_tcp_port(), "127.0.0.1"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / "host_key")], check=True)
        (workdir / "authorized_keys").write_text(client_pub)
        config = workdir / "sshd_config"
        config.write_text(f"""Port {self.port}
ListenAddress {self.address}
HostKey {workdir}/host_key
AuthorizedKeysFile /run/bl-keys/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PidFile none
Subsystem sftp internal-sftp
""")
        (workdir / "etc-upper").mkdir()
        (workdir / "etc-work").mkdir()
        # an admin who may sudo without a password, in the box's own /etc ('*': no password,
        # not locked -- sshd without PAM refuses a locked account even with a key)
        admin = (f"useradd -M -d /nonexistent -s /bin/sh {ADMIN_USER} && usermod -p '*' {ADMIN_USER} && "
                 f"echo '{ADMIN_USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/bl-admin && "
                 "chmod 440 /etc/sudoers.d/bl-admin && ") if SUDO else ""
        # the admin key where sshd can read it as a non-root user (pytest's tmp is 0700)
        script = (f"mount -t tmpfs none /run && mkdir /run/sshd /run/bl-keys && "
                  f"cp {workdir}/authorized_keys /run/bl-keys/ && chmod 755 /run/bl-keys && "
                  f"chmod 644 /run/bl-keys/authorized_keys && mount --bind {self.srv} /srv && "
                  f"mount -t overlay overlay -o lowerdir=/etc,upperdir={workdir}/etc-upper,"
                  f"workdir={workdir}/etc-work /etc && {admin}exec {SSHD} -D -e -f {config}")
        self.log = open(workdir / "sshd.log", "wb")  # noqa: SIM115 - closed in stop()
        enter = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.proc = subprocess.Popen([*enter, "unshare", "-m", "--propagation", "private", "sh", "-c", script],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self._listening, 10, what=f"sshd on {self.address}:{self.port}")

    @property
    def name(self) -> str:
        """How the test addresses it (host, or host:port)."""
        return self.address if self.port == 22 else f"{self.address}:{self.port}"

    def _make_netns(self) -> None:
        assert self.netns is not None
        _ip("netns", "add", self.netns)
        _ip("link", "add", self.veth, "type", "veth", "peer", "name", f"{self.veth}b", "netns", self.netns)
        _ip("addr", "add", f"{self.peer_address}/30", "dev", self.veth)
        _ip("link", "set", self.veth, "up")
        for args in (("link", "set", "lo", "up"), ("addr", "add", f"{self.address}/30", "dev", f"{self.veth}b"),
                     ("link", "set", f"{self.veth}b", "up"), ("route", "add", "default", "via", self.peer_address)):
            _ip("-n", self.netns, *args)

    def _listening(self) -> bool:
        assert self.proc.poll() is None, (self.dir / "sshd.log").read_text()
        with socket.socket() as s:
            return s.connect_ex((self.address, self.port)) == 0

    def stop(self) -> None:
        pid_file = self.srv / "branchline" / "run" / "supervisord.pid"
        if pid_file.exists():  # the box's supervisord (and the edge it runs) stops by its own pid
            pid = int(pid_file.read_text())
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, what=f"supervisord {pid} to exit")
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.log.close()
        if self.netns:  # its veth goes with it
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, timeout=30)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[tuple[list[SshHost], Path]]:
    key = tmp_path / "admin_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    why_not = unavailable_reason()
    if why_not is not None:
        warnings.warn(f"no network namespaces ({why_not}): the two hosts are sshd on two loopback ports",
                      stacklevel=1)
    made: list[SshHost] = []
    try:
        for i in range(2):
            made.append(SshHost(tmp_path / f"host{i}", (tmp_path / "admin_key.pub").read_text(), i,
                                netns=why_not is None))
        yield made, key
    finally:
        for h in made:
            h.stop()


def connector(boxes: list[SshHost], key: Path,
              users: dict[str, str] | None = None) -> tuple[dict[str, SshHost], Callable[[str], Connection]]:
    """The boxes by name, and ``connect(name)`` for provisioning with the test's key, as
    ``users[name]`` (root by default)."""
    by_name = {h.name: h for h in boxes}

    def connect(name: str) -> Connection:
        h = by_name[name]
        return Connection(h.address, port=h.port, user=(users or {}).get(name, "root"), connect_kwargs={
            "key_filename": str(key), "look_for_keys": False, "allow_agent": False})

    return by_name, connect


def test_bootstrap_two_hosts_in_parallel_then_no_changes(tmp_path: Path, hosts: tuple[list[SshHost], Path]) -> None:
    boxes, key = hosts
    bundle = tmp_path / "branchline-1.0.0.bundle"
    bundle.write_bytes(os.urandom(200_000))
    # the first box as root, the second as an admin through sudo (when sudo is installed)
    names = [h.name for h in boxes]
    by_name, connect = connector(boxes, key, {names[1]: ADMIN_USER} if SUDO else None)

    def opts(name: str) -> BootstrapOptions:
        site = f"branch-{by_name[name].dir.name}"
        return BootstrapOptions(site=site, fleet_url="http://127.0.0.1:1", bundle=bundle, root="/srv/branchline",
                                site_config={"api": {"socket": "var/edge.sock"}}, install=False,
                                service_user="blsvc")

    told: list[tuple[str, str]] = []  # progress, as each step finishes
    first = bootstrap_many(connect, list(by_name), opts, on_step=lambda host, step: told.append((host, step.name)))
    for report in first:
        assert [name for host, name in told if host == report.host] == [s.name for s in report.steps]
        assert report.ok, "\n".join(report.lines())
        assert report.changed
        assert {s.name for s in report.steps if s.changed} == {
            "service-user", "layout", "bundle", "identity", "updater-config", "site-config"}
        assert report.public_key.startswith("-----BEGIN PUBLIC KEY-----")
        assert "PRIVATE" not in report.public_key
    for h in boxes:  # each box got its own tree, private key included, and nothing leaked
        root = h.srv / "branchline"
        assert (root / "incoming" / bundle.name).read_bytes() == bundle.read_bytes()
        assert (root / "identity" / "device.key").read_text().startswith("-----BEGIN PRIVATE KEY-----")
        assert f"branch-{h.dir.name}" in (root / "etc" / "site.yaml").read_text()
        # the service user exists in the box's /etc only, and owns the box's data
        assert "blsvc:" in (h.dir / "etc-upper" / "passwd").read_text()
        uid = int((h.dir / "etc-upper" / "passwd").read_text().split("blsvc:")[1].split(":")[1])
        assert (root / "data").stat().st_uid == uid and (root / "identity" / "device.key").stat().st_uid == uid
        assert stat.S_IMODE((root / "identity" / "device.key").stat().st_mode) == 0o600
    assert first[0].public_key != first[1].public_key
    assert not Path("/srv/branchline").exists()  # the machine's own /srv is untouched
    assert "blsvc:" not in Path("/etc/passwd").read_text()  # nor its /etc

    second = bootstrap_many(connect, list(by_name), opts)
    for before, after in zip(first, second, strict=True):
        assert after.ok and not after.changed, "\n".join(after.lines())
        assert after.lines()[0].endswith("no changes")
        assert after.public_key == before.public_key

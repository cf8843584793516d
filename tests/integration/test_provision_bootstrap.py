"""Bootstrap two boxes over real SSH (Debian openssh-server) with Fabric, in parallel,
then again: the second run changes nothing and says so.

The two "hosts" are two sshd processes on two loopback ports (not network namespaces:
both share the machine's loopback), each in its own mount namespace: a private tmpfs
on /run (sshd's privilege-separation dir, so the machine's /run is untouched), an
overlay on /etc (the service user bootstrap creates lands in the box's own copy, not
in the machine's /etc/passwd) and its own directory bound on /srv, so the boxes have
separate file systems and each is provisioned at /srv/branchline. Whatever a box
starts (its supervisord, the edge under it) is stopped by pid when the test ends.

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
from collections.abc import Iterator
from pathlib import Path

import pytest
from fabric import Connection

from provisioning.tasks import BootstrapOptions, bootstrap_many
from tests.sipp import free_tcp_port, wait_for

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
pytestmark = [
    pytest.mark.skipif(SSHD is None, reason="sshd missing (Debian package openssh-server)"),
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                       reason="needs root and unshare for the per-host mount namespace"),
]


class SshHost:
    def __init__(self, workdir: Path, client_pub: str) -> None:
        workdir.mkdir()
        self.dir = workdir
        self.srv = workdir / "srv"
        self.srv.mkdir()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / "host_key")], check=True)
        (workdir / "authorized_keys").write_text(client_pub)
        self.port = free_tcp_port()
        config = workdir / "sshd_config"
        config.write_text(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {workdir}/host_key
AuthorizedKeysFile {workdir}/authorized_keys
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
        script = (f"mount -t tmpfs none /run && mkdir /run/sshd && mount --bind {self.srv} /srv && "
                  f"mount -t overlay overlay -o lowerdir=/etc,upperdir={workdir}/etc-upper,"
                  f"workdir={workdir}/etc-work /etc && exec {SSHD} -D -e -f {config}")
        self.log = open(workdir / "sshd.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self._listening, 10, what=f"sshd on {self.port}")

    def _listening(self) -> bool:
        assert self.proc.poll() is None, (self.dir / "sshd.log").read_text()
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

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


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[tuple[list[SshHost], Path]]:
    key = tmp_path / "admin_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    made: list[SshHost] = []
    try:
        for i in range(2):
            made.append(SshHost(tmp_path / f"host{i}", (tmp_path / "admin_key.pub").read_text()))
        yield made, key
    finally:
        for h in made:
            h.stop()


def test_bootstrap_two_hosts_in_parallel_then_no_changes(tmp_path: Path, hosts: tuple[list[SshHost], Path]) -> None:
    boxes, key = hosts
    bundle = tmp_path / "branchline-1.0.0.bundle"
    bundle.write_bytes(os.urandom(200_000))
    by_name = {f"127.0.0.1:{h.port}": h for h in boxes}

    def connect(name: str) -> Connection:
        return Connection("127.0.0.1", port=by_name[name].port, user="root",
                          connect_kwargs={"key_filename": str(key), "look_for_keys": False, "allow_agent": False})

    def opts(name: str) -> BootstrapOptions:
        site = f"branch-{by_name[name].port}"
        return BootstrapOptions(site=site, fleet_url="http://127.0.0.1:1", bundle=bundle, root="/srv/branchline",
                                site_config={"api": {"socket": "var/edge.sock"}}, install=False,
                                service_user="blsvc")

    first = bootstrap_many(connect, list(by_name), opts)
    for report in first:
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
        assert f"branch-{h.port}" in (root / "etc" / "site.yaml").read_text()
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

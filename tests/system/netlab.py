"""Three hosts on one machine: network namespaces ``central``, ``site`` and ``pstn``.

::

    central 10.77.1.1 ==veth== 10.77.1.2 site 10.77.2.2 ==veth== 10.77.2.1 pstn
                                  lo: 10.77.0.1 (the box's LAN address: edge SIP + RTP)
                                      127.0.0.1 (the SIPp phones)

The edge listens on the site's LAN address, which lives on ``lo`` so it survives
its WAN port going down; ``central`` and ``pstn`` route to it through their veth
peer. The WAN is cut either by taking the site's WAN port down (``cut_link``: the
box sees it) or by an nftables table inside ``central`` that drops everything on its
end of the link (``blackhole``: the link stays up and passes nothing, as when a
carrier's network fails somewhere in the middle).

Everything is named after the creating process (``bl-<pid>-central``, veths
``b<pid>c``/``b<pid>s``...), and :meth:`Netlab.close` deletes exactly what was made:
the processes started through :meth:`Netlab.popen` (by their own pid), then the
namespaces (which takes their veths with them). Nothing else is touched.

Processes run as ``ip netns exec NS cmd``: ``ip`` execs ``cmd`` in place, so the
Popen pid *is* the program's pid. :func:`listening` reads ``/proc/PID/net/{tcp,udp}``,
which shows the sockets of that process's namespace, so readiness is checked from the
test's own namespace without any extra process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from tests.sipp import REPO_ROOT

CENTRAL_IP = "10.77.1.1"
SITE_WAN_IP = "10.77.1.2"
PSTN_IP = "10.77.2.1"
SITE_PSTN_IP = "10.77.2.2"
SITE_LAN_IP = "10.77.0.1"
PHONE_IP = "127.0.0.1"
NFT_TABLE = "blcut"


class NetlabUnavailable(RuntimeError):
    """This machine cannot build the lab (not root, no iproute2, namespaces refused)."""


def _run(cmd: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {done.returncode}: {done.stderr.strip()}")
    return done


def unavailable_reason() -> str | None:
    """Why the lab cannot be built here, or None when it can (probes with a throwaway netns)."""
    if os.geteuid() != 0:
        return "network namespaces need root (run the system tests as root)"
    if shutil.which("ip") is None:
        return "iproute2 ('ip') is not installed"
    probe = f"bl-{os.getpid()}-probe"
    done = _run(["ip", "netns", "add", probe], check=False)
    if done.returncode != 0:
        return f"'ip netns add' failed: {done.stderr.strip() or done.returncode}"
    _run(["ip", "netns", "del", probe], check=False)
    return None


def listening(pid: int, port: int, proto: str = "tcp") -> bool:
    """A socket bound to ``port`` (listening, for TCP) in the namespace of process ``pid``."""
    try:
        lines = Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        local, state = fields[1], fields[3]
        if int(local.rsplit(":", 1)[1], 16) == port and (proto != "tcp" or state == "0A"):
            return True
    return False


class Netlab:
    """``with Netlab() as lab:`` builds the three namespaces; leaving deletes them."""

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or str(os.getpid())
        self.names = {role: f"bl-{self.tag}-{role}" for role in ("central", "site", "pstn")}
        short = self.tag[-7:]
        self.veth = {  # (this end, its namespace role)
            "central": f"b{short}c", "site_wan": f"b{short}s",
            "pstn": f"b{short}p", "site_pstn": f"b{short}q",
        }  # fmt: skip
        self.created: list[str] = []
        self.procs: list[subprocess.Popen[Any]] = []
        self._blackholed = False

    # -- build and tear down ------------------------------------------------------------
    def __enter__(self) -> Netlab:
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build(self) -> None:
        for name in self.names.values():
            _run(["ip", "netns", "add", name])
            self.created.append(name)
            self.ip("link", "set", "lo", "up", ns=name)
        c, s, p = self.names["central"], self.names["site"], self.names["pstn"]
        v = self.veth
        _run(["ip", "link", "add", v["central"], "netns", c, "type", "veth", "peer", "name", v["site_wan"], "netns", s])
        _run(["ip", "link", "add", v["pstn"], "netns", p, "type", "veth", "peer", "name", v["site_pstn"], "netns", s])
        for ns, dev, addr in ((c, v["central"], CENTRAL_IP), (s, v["site_wan"], SITE_WAN_IP),
                              (p, v["pstn"], PSTN_IP), (s, v["site_pstn"], SITE_PSTN_IP)):  # fmt: skip
            self.ip("addr", "add", f"{addr}/30", "dev", dev, ns=ns)
            self.ip("link", "set", dev, "up", ns=ns)
        self.ip("addr", "add", f"{SITE_LAN_IP}/32", "dev", "lo", ns=s)
        self.ip("route", "add", f"{SITE_LAN_IP}/32", "via", SITE_WAN_IP, ns=c)
        self.ip("route", "add", f"{SITE_LAN_IP}/32", "via", SITE_PSTN_IP, ns=p)

    def close(self) -> None:
        """Stop what :meth:`popen` started (SIGTERM, then SIGKILL, by pid), delete the namespaces."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=5)
        self.procs.clear()
        for name in reversed(self.created):
            _run(["ip", "netns", "del", name], check=False)
        self.created.clear()

    # -- running things inside ----------------------------------------------------------
    def ns(self, role: str) -> str:
        return self.names[role]

    def ip(self, *args: str, ns: str) -> None:
        _run(["ip", "-n", ns, *args])

    def exec_prefix(self, role: str) -> list[str]:
        return ["ip", "netns", "exec", self.names[role]]

    def run(self, role: str, cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.exec_prefix(role), *cmd], capture_output=True, text=True, **kwargs)

    def popen(self, role: str, cmd: Sequence[str], *, cwd: Path | None = None, log: Path | None = None,
              env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
        """Start ``cmd`` in namespace ``role``, stdout+stderr to ``log``; stopped by :meth:`close`."""
        out: IO[bytes] | int = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                [*self.exec_prefix(role), *cmd], cwd=cwd or REPO_ROOT, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, env=dict(env) if env is not None else None,
            )  # fmt: skip
        finally:
            if not isinstance(out, int):
                out.close()
        self.procs.append(proc)
        return proc

    def wrapper(self, role: str, binary: str, directory: Path) -> Path:
        """An executable script running ``binary`` in namespace ``role`` (``exec``: same pid),
        for harness classes that take a binary path (``tests.sipp.Sipp``)."""
        path = directory / f"{Path(binary).name}-in-{role}"
        if not path.exists():  # written once, atomically: a shell may be reading it right now
            tmp = path.with_suffix(".tmp")
            tmp.write_text(f'#!/bin/sh\nexec ip netns exec {self.names[role]} {binary} "$@"\n')
            tmp.chmod(0o755)
            tmp.replace(path)
        return path

    # -- the WAN, cut two ways --------------------------------------------------------------
    def cut_link(self) -> None:
        """The site's WAN port goes down (the carrier is lost, the box sees it)."""
        self.ip("link", "set", self.veth["site_wan"], "down", ns=self.names["site"])

    def restore_link(self) -> None:
        self.ip("link", "set", self.veth["site_wan"], "up", ns=self.names["site"])

    def blackhole(self) -> None:
        """Inside ``central``, drop everything in and out of its end of the link: both
        ports stay up, nothing passes (the box sees nothing but silence)."""
        dev = self.veth["central"]
        rules = (
            f"add table inet {NFT_TABLE}\n"
            f"add chain inet {NFT_TABLE} in {{ type filter hook input priority -300; policy accept; }}\n"
            f"add chain inet {NFT_TABLE} out {{ type filter hook output priority -300; policy accept; }}\n"
            f'add rule inet {NFT_TABLE} in iifname "{dev}" drop\n'
            f'add rule inet {NFT_TABLE} out oifname "{dev}" drop\n'
        )
        done = subprocess.run([*self.exec_prefix("central"), "nft", "-f", "-"], input=rules, text=True,
                              capture_output=True, timeout=30)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"nft: {done.stderr.strip()}")
        self._blackholed = True

    def unblackhole(self) -> None:
        if self._blackholed:
            done = self.run("central", ["nft", "delete", "table", "inet", NFT_TABLE], timeout=30)
            if done.returncode != 0:
                raise RuntimeError(f"nft: {done.stderr.strip()}")
            self._blackholed = False

"""fleet.broker_auth without a broker: the mosquitto hash (pinned against
``mosquitto_passwd`` output), the two files' content, atomic writes and modes, reload
errors, the command-line options; fleet.mqtt's credential URL helpers; the ``devices``
table of an older fleet getting its new column (SQLite and PostgreSQL)."""

from __future__ import annotations

import argparse
import base64
import grp
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, select, text

from fleet.api import enroll
from fleet.broker_auth import (
    BrokerAuth,
    BrokerAuthError,
    SiteCredentials,
    check_password,
    forward_arguments,
    from_arguments,
    hash_password,
)
from fleet.mqtt import broker_credentials, public_broker_url, redact_broker_url
from fleet.store import FleetStore

HASH = re.compile(r"^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$")


def test_hash_is_what_mosquitto_passwd_writes() -> None:
    # `mosquitto_passwd -c -b f user pass` (mosquitto 2.0.11) wrote exactly this line
    line = ("user:$7$101$mJgepquc+CmswEKI$qGGja6pqR9ae2sYRZDYWiRxTeoMFcbVBuU69O30s50PaPveZBFJW"
            "/BZk8EfNvQXmZkrGh0r3glbi6PLWUkTKMA==")
    hashed = line.partition(":")[2]
    salt = base64.b64decode("mJgepquc+CmswEKI")
    assert hash_password("pass", salt=salt) == hashed
    assert check_password("pass", hashed) and not check_password("pass ", hashed)


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd not installed")
def test_hashes_of_mosquitto_passwd_check(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    for user, password in [("a", "s3cret"), ("b", "colon:dollar$ünï")]:
        subprocess.run(["mosquitto_passwd", *(["-c"] if user == "a" else []), "-b", str(path), user, password],
                       check=True, capture_output=True)
    hashes = dict(line.split(":", 1) for line in path.read_text().splitlines())
    assert HASH.match(hashes["a"]) and HASH.match(hashes["b"])
    assert check_password("s3cret", hashes["a"]) and check_password("colon:dollar$ünï", hashes["b"])
    assert not check_password("s3cret", hashes["b"])


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=64))
def test_hash_roundtrip_and_format(password: str) -> None:
    hashed = hash_password(password)
    assert HASH.match(hashed), hashed
    assert check_password(password, hashed)
    assert not check_password(password + "x", hashed)
    assert hash_password(password) != hashed  # a fresh salt each time


@pytest.mark.parametrize("bad", ["", "$6$abc$def", "$7$x$AAAA$BBBB", "$7$101$!!$AAAA", "plain"])
def test_check_refuses_what_is_not_a_7_hash(bad: str) -> None:
    assert not check_password("pass", bad)


def _auth(tmp_path: Path, **kw: object) -> BrokerAuth:
    return BrokerAuth(tmp_path / "passwd", tmp_path / "acl", **kw)  # type: ignore[arg-type]


def test_files_hold_base_lines_fleet_user_and_each_site_in_its_own_topics(tmp_path: Path) -> None:
    base_pw = tmp_path / "base.passwd"
    base_pw.write_text(f"# operator\nmonitor:{hash_password('m')}\nfleet:{hash_password('old')}\n")
    base_acl = tmp_path / "base.acl"
    base_acl.write_text("user monitor\ntopic read $SYS/#")
    auth = _auth(tmp_path, fleet_username="fleet", fleet_password="fleet-pw", base_password_file=base_pw,
                 base_acl_file=base_acl)
    sites = [SiteCredentials("b2", "site-b2", hash_password("two")),
             SiteCredentials("a1", "site-a1", hash_password("one")),
             SiteCredentials("old", "site-old", None)]
    passwords, acl, missing = auth.render(sites)
    assert missing == ["old"]
    lines = [line for line in passwords.splitlines() if not line.startswith("#")]
    users = [line.split(":", 1)[0] for line in lines]
    assert users == ["monitor", "fleet", "site-a1", "site-b2"]  # the base's fleet line gives way to ours
    by_user = dict(line.split(":", 1) for line in lines)
    assert check_password("fleet-pw", by_user["fleet"]) and check_password("one", by_user["site-a1"])
    body = acl.split("\n", 1)[1]
    assert body.startswith("user monitor\ntopic read $SYS/#\n")
    assert "\nuser fleet\ntopic readwrite bl/v1/site/+/#\n" in body
    assert ("\nuser site-a1\n"
            "topic write bl/v1/site/a1/state\ntopic write bl/v1/site/a1/metrics\ntopic write bl/v1/site/a1/outbox\n"
            "topic write bl/v1/site/a1/config/report\ntopic write bl/v1/site/a1/cmd/result\n"
            "topic read bl/v1/site/a1/ack\ntopic read bl/v1/site/a1/config\ntopic read bl/v1/site/a1/cmd\n") in body
    assert "site-old" not in body and "site-old" not in passwords


def test_files_are_replaced_whole_with_their_mode_and_group(tmp_path: Path) -> None:
    group = grp.getgrgid(os.getgid()).gr_name
    auth = _auth(tmp_path, fleet_username="fleet", group=group)
    old_umask = os.umask(0o077)
    try:
        auth.write([SiteCredentials("a1", "site-a1", hash_password("one"))])
    finally:
        os.umask(old_umask)
    for path in (auth.password_file, auth.acl_file):
        st_ = path.stat()
        assert stat.S_IMODE(st_.st_mode) == 0o640 and st_.st_gid == os.getgid()
    first_inode = auth.password_file.stat().st_ino
    _auth(tmp_path, mode=0o600).write([])
    assert stat.S_IMODE(auth.password_file.stat().st_mode) == 0o600
    assert auth.password_file.stat().st_ino != first_inode  # a rename, not an overwrite in place
    assert "site-a1" not in auth.password_file.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acl", "passwd"]  # no temporary file left


def test_a_failed_write_changes_neither_file(tmp_path: Path) -> None:
    (tmp_path / "acl").mkdir()
    auth = BrokerAuth(tmp_path / "passwd", tmp_path / "acl" / "acl")
    auth.write([SiteCredentials("a1", "site-a1", hash_password("one"))])
    before = auth.password_file.read_text(), auth.acl_file.read_text()
    (tmp_path / "acl").rename(tmp_path / "elsewhere")  # the ACL file's directory is gone
    with pytest.raises(BrokerAuthError, match="cannot write"):
        auth.write([])
    assert auth.password_file.read_text() == before[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "passwd"]  # no temporary file left


def test_reload_names_what_is_wrong(tmp_path: Path) -> None:
    assert _auth(tmp_path).reload() is None  # no pid configured: nothing to signal
    with pytest.raises(BrokerAuthError, match="pid file"):
        _auth(tmp_path, pid_file=tmp_path / "missing.pid").reload()
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with pytest.raises(BrokerAuthError, match="not running"):
        _auth(tmp_path, pid=int(done.stdout)).reload()
    # a process that waits for SIGHUP and exits 0 on it
    child = subprocess.Popen([sys.executable, "-c",
                              "import signal, sys; signal.signal(signal.SIGHUP, lambda *a: sys.exit(0)); "
                              "print('ready', flush=True); signal.pause()"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        pid_file = tmp_path / "child.pid"
        pid_file.write_text(f"{child.pid}\n")
        assert _auth(tmp_path, pid_file=pid_file).reload() == child.pid
        assert child.wait(10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


def test_url_credentials() -> None:
    url = "mqtt://fleet:s%40c%3Aret@broker.example:8883"
    assert broker_credentials(url) == ("fleet", "s@c:ret")
    assert public_broker_url(url) == "mqtt://broker.example:8883"
    assert redact_broker_url(url) == "mqtt://fleet:***@broker.example:8883"
    assert broker_credentials("mqtt://h:1883") == (None, None)
    assert public_broker_url("mqtt://h:1883") == redact_broker_url("mqtt://h:1883") == "mqtt://h:1883"
    assert broker_credentials("mqtt://only@h") == ("only", None)


def _fleet_run_args(*argv: str) -> argparse.Namespace:
    from edge_core.cli import build_parser

    return build_parser().parse_args(["fleet", "run", *argv])


def test_command_line_options(tmp_path: Path) -> None:
    args = _fleet_run_args("--broker", "mqtt://fleet:pw%21@127.0.0.1:1883", "--http", "127.0.0.1:8080",
                           "--mosquitto-password-file", str(tmp_path / "pw"), "--mosquitto-acl-file",
                           str(tmp_path / "acl"), "--mosquitto-pid-file", "/run/mosquitto/mosquitto.pid")
    auth = from_arguments(args, args.broker)
    assert auth is not None and auth.fleet_username == "fleet" and auth.confirm_url == "mqtt://127.0.0.1:1883"
    assert auth.pid_file == Path("/run/mosquitto/mosquitto.pid")
    passwords, _, _ = auth.render([])
    assert check_password("pw!", passwords.splitlines()[-1].split(":", 1)[1])
    assert forward_arguments(args) == ["--mosquitto-password-file", str(tmp_path / "pw"),
                                       "--mosquitto-acl-file", str(tmp_path / "acl"),
                                       "--mosquitto-pid-file", "/run/mosquitto/mosquitto.pid"]
    from fleet.api.__main__ import add_arguments

    serve = argparse.ArgumentParser()
    add_arguments(serve)  # the API child takes what the supervisor forwards
    forwarded = serve.parse_args(["--broker", args.broker, *forward_arguments(args)])
    assert from_arguments(forwarded, forwarded.broker) is not None
    # another fleet user: its password line must come from the base file
    other = _fleet_run_args("--broker", "mqtt://fleet:pw@h", "--mosquitto-password-file", "p",
                            "--mosquitto-acl-file", "a", "--mosquitto-fleet-user", "svc")
    auth = from_arguments(other, other.broker)
    assert auth is not None and auth.fleet_username == "svc" and "svc:" not in auth.render([])[0]
    assert from_arguments(_fleet_run_args(), "mqtt://h") is None
    with pytest.raises(ValueError, match="go together"):
        from_arguments(_fleet_run_args("--mosquitto-acl-file", "a"), None)


def test_fleet_run_refuses_incomplete_mosquitto_options(capsys: pytest.CaptureFixture[str]) -> None:
    from fleet.service import run_fleet

    assert run_fleet(_fleet_run_args("--mosquitto-acl-file", "a")) == 2
    assert run_fleet(_fleet_run_args("--mosquitto-acl-file", "a", "--mosquitto-password-file", "p")) == 2
    err = capsys.readouterr().err
    assert "go together" in err and "need --http" in err


OLD_DEVICES = """CREATE TABLE devices (
    site_id VARCHAR(64) NOT NULL PRIMARY KEY, public_key TEXT NOT NULL, key_sha256 VARCHAR(64) NOT NULL,
    mqtt_username VARCHAR(100) NOT NULL, mqtt_password_sha256 VARCHAR(64) NOT NULL, enrolled_at FLOAT NOT NULL)"""


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[FleetStore]:
    store = await FleetStore.open(db_url)
    yield store
    await store.close()


async def test_devices_table_of_an_older_fleet_gets_the_hash_column(store: FleetStore, tmp_path: Path) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(text(OLD_DEVICES))
        await conn.execute(text("INSERT INTO devices VALUES ('old1', 'pem', 'k', 'site-old1', 'h', 1.0)"))
    for _ in range(2):  # idempotent
        await enroll.create_tables(store.engine)
    async with store.engine.connect() as conn:
        columns = await conn.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns("devices")})
        assert "mqtt_password_mosquitto" in columns
        rows = (await conn.execute(select(enroll.devices))).all()
    assert [(r.site_id, r.mqtt_password_sha256, r.mqtt_password_mosquitto) for r in rows] == [("old1", "h", None)]
    async with store.engine.begin() as conn:
        await conn.execute(enroll.devices.update().values(mqtt_password_mosquitto=hash_password("new")))
    auth = _auth(tmp_path)
    await enroll.sync_broker_auth(store.engine, auth)
    line = auth.password_file.read_text().splitlines()[-1]
    assert line.startswith("site-old1:") and check_password("new", line.split(":", 1)[1])

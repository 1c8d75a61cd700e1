"""What only the SFTP driver has: logins, host keys, relative roots, its channel pool.

The behaviour every driver shares is in test_conformance.py.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from regtool.errors import AuthenticationFailed, StorageError, TransientError, Unreachable
from regtool.storage.base import TEMP_MARK
from regtool.storage.sftp import SftpDriver
from tests.services import free_port
from tests.services.sshd import USER_COMMENT, USER_PREFIX, SshdService, start_sshd
from tests.services.tcp_faults import CLASS_NAME

pytestmark = pytest.mark.sftp


@pytest.fixture
def sftp(sshd_service: SshdService) -> Iterator[SftpDriver]:
    d = sshd_service.driver(f"sftp-{uuid.uuid4().hex[:8]}")
    try:
        yield d
    finally:
        d.close()


def _connect(service: SshdService, **options: object) -> SftpDriver:
    settings: dict[str, object] = {
        "port": service.port,
        "username": service.username,
        "key_filename": str(service.key_path),
        "known_hosts": str(service.known_hosts),
        "timeout": 10.0,
    }
    settings.update(options)
    return SftpDriver(service.host, str(service.data_root), **settings)  # type: ignore[arg-type]


def test_password_login(sshd_service: SshdService) -> None:
    user, password = sshd_service.require_password_user()
    assert sshd_service.password_home is not None
    with SftpDriver(
        sshd_service.host,
        "",
        port=sshd_service.port,
        username=user,
        password=password,
        known_hosts=str(sshd_service.known_hosts),
    ) as d:
        d.put("pw/file", b"by password")
        assert d.get("pw/file") == b"by password"
        assert (sshd_service.password_home / "pw" / "file").read_bytes() == b"by password"
        assert password not in d.describe()
        d.delete("pw")


def test_wrong_password_is_authentication_failed_without_the_password(
    sshd_service: SshdService,
) -> None:
    user, _ = sshd_service.require_password_user()
    wrong = "not-the-Secret-9f8e7d"
    with pytest.raises(AuthenticationFailed) as info:
        SftpDriver(
            sshd_service.host,
            "",
            port=sshd_service.port,
            username=user,
            password=wrong,
            known_hosts=str(sshd_service.known_hosts),
            timeout=10,
        )
    assert wrong not in str(info.value)
    assert wrong not in repr(info.value)
    assert user in str(info.value)


def test_wrong_key_is_authentication_failed(sshd_service: SshdService, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    with pytest.raises(AuthenticationFailed):
        _connect(sshd_service, key_filename=str(stranger))


def test_missing_identity_file_is_a_clear_error(sshd_service: SshdService, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="identity file not found"):
        _connect(sshd_service, key_filename=str(tmp_path / "absent"))


def test_unknown_host_key_strict_then_accept_new(sshd_service: SshdService, tmp_path: Path) -> None:
    known = tmp_path / "ssh" / "known_hosts"
    with pytest.raises(StorageError) as info:
        _connect(sshd_service, known_hosts=str(known))
    message = str(info.value)
    assert not isinstance(info.value, AuthenticationFailed | Unreachable | TransientError)
    assert "unknown host key" in message
    assert "SHA256:" in message and "ssh-keyscan" in message and "accept-new" in message
    assert not known.exists()

    with _connect(sshd_service, known_hosts=str(known), host_key_policy="accept-new") as d:
        assert d.list("") is not None
    assert f"[127.0.0.1]:{sshd_service.port} ssh-ed25519 " in known.read_text()
    with _connect(sshd_service, known_hosts=str(known)) as d:  # strict now knows it
        d.list("")


def test_changed_host_key_is_refused(sshd_service: SshdService, tmp_path: Path) -> None:
    other = tmp_path / "other_host"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, blob = (other.with_suffix(".pub")).read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd_service.port} {kind} {blob}\n")
    for policy in ("strict", "accept-new"):
        with pytest.raises(StorageError, match="does not match"):
            _connect(sshd_service, known_hosts=str(known), host_key_policy=policy)
    with _connect(sshd_service, known_hosts=str(known), host_key_policy="ignore") as d:
        d.list("")


def test_unreachable_port_and_host(sshd_service: SshdService) -> None:
    port = free_port()
    with pytest.raises(Unreachable) as refused:
        _connect(sshd_service, port=port, timeout=5)
    assert str(refused.value) == (
        f"sftp: cannot reach {sshd_service.username}@127.0.0.1:{port}: connection refused"
    )
    with pytest.raises(Unreachable) as unknown:
        SftpDriver("no-such-host.invalid", "/x", timeout=5)
    assert "cannot reach" in str(unknown.value) and not CLASS_NAME.search(str(unknown.value))


def test_relative_root_is_under_the_login_directory(sshd_service: SshdService) -> None:
    name = f"rel-{uuid.uuid4().hex[:8]}"
    for root in (name, f"~/{name}"):
        d = SftpDriver(
            sshd_service.host,
            root,
            port=sshd_service.port,
            username=sshd_service.username,
            key_filename=str(sshd_service.key_path),
            known_hosts=str(sshd_service.known_hosts),
        )
        with d:
            assert d.describe() == (
                f"sftp://{sshd_service.username}@127.0.0.1:{sshd_service.port}/~/{name}"
            )
            d.put("sub/file", b"relative")
            on_disk = sshd_service.login_dir() / name / "sub" / "file"
            assert on_disk.read_bytes() == b"relative"
            d.delete("sub")


def test_describe_never_shows_the_password(sshd_service: SshdService) -> None:
    with _connect(sshd_service, password="hunter2-secret") as d:
        text = d.describe()
    assert text == f"sftp://{sshd_service.username}@127.0.0.1:{sshd_service.port}" + str(
        sshd_service.data_root
    )
    assert "hunter2" not in text


def test_temp_files_never_listed_while_writing(sshd_service: SshdService) -> None:
    name = f"tmp-{uuid.uuid4().hex[:8]}"
    sftp = sshd_service.driver(name)
    with sftp:
        _temp_files_never_listed(sftp, sshd_service.data_root / name)


def _temp_files_never_listed(sftp: SftpDriver, root: Path) -> None:
    sftp.put("t/existing", b"old")
    w = sftp.writer("t/existing")
    w.write(b"x" * 100_000)
    on_disk = [p.name for p in (root / "t").iterdir()]
    assert any(n.startswith(TEMP_MARK) for n in on_disk)  # it is there...
    assert [e.name for e in sftp.list("t")] == ["existing"]  # ...but never shown
    assert [e.path for e in sftp.walk("")] == ["t/existing"]
    assert sftp.get("t/existing") == b"old"
    w.commit()
    assert sftp.get("t/existing") == b"x" * 100_000
    assert [e.name for e in sftp.list("t")] == ["existing"]
    sftp.delete("t")


def test_delete_removes_a_tree_with_an_unfinished_write(sftp: SftpDriver) -> None:
    sftp.put("tree/a/b", b"1")
    w = sftp.writer("tree/a/pending")
    w.write(b"half")
    sftp.delete("tree")
    assert sftp.list("") == []
    w.cancel()


def test_more_threads_than_the_servers_session_limit(sftp: SftpDriver) -> None:
    # sshd allows 10 channels per connection; the tools use 16 threads.
    def work(i: int) -> bytes:
        sftp.put(f"pool/{i}/f", str(i).encode() * 1000)
        with sftp.open(f"pool/{i}/f", offset=1) as f:
            return f.read(3)

    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(work, range(64)))
    assert got == [(str(i).encode() * 1000)[1:4] for i in range(64)]
    sftp.delete("pool")


def test_delete_many_reports_invalid_paths(sftp: SftpDriver) -> None:
    sftp.put("dm/a", b"a")
    report = sftp.delete_many(["dm/a", "../escape", "dm/a"])
    assert report.deleted == ["dm/a", "dm/a"]
    assert list(report.failed) == ["../escape"]
    assert sftp.list("") == []


def test_adapts_to_a_lower_session_limit_than_it_assumed(
    sshd_service: SshdService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server allowing fewer channels than the driver assumes refuses the extra ones; the
    # driver then waits for a free channel instead of failing.
    monkeypatch.setattr("regtool.storage.sftp.connection.MAX_CHANNELS", 32)
    d = sshd_service.driver(f"limit-{uuid.uuid4().hex[:8]}")
    with d:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: d.put(f"n/{i}", b"%d" % i), range(200)))
            got = list(pool.map(lambda i: d.get(f"n/{i}"), range(200)))
        assert got == [b"%d" % i for i in range(200)]
        assert d.connection.channel_limit <= 10  # sshd's MaxSessions
        d.delete("n")


def test_a_location_string_reaches_the_login_directory(sshd_service: SshdService) -> None:
    from regtool.location import parse_location

    name = f"loc-{uuid.uuid4().hex[:8]}"
    env = {
        "REGTOOL_SFTP_IDENTITY": str(sshd_service.key_path),
        "REGTOOL_SFTP_KNOWN_HOSTS": str(sshd_service.known_hosts),
    }
    text = f"sftp://{sshd_service.username}@127.0.0.1:{sshd_service.port}/~/{name}"
    with parse_location(text, env=env).open() as d:
        d.put("f", b"via LOCATION")
        assert (sshd_service.login_dir() / name / "f").read_bytes() == b"via LOCATION"
        d.delete("f")


def _users() -> set[str]:
    """This run's test users (other runs on the machine may add and remove their own)."""
    mine = f"{USER_COMMENT}{os.getpid()}"
    return {e.pw_name for e in pwd.getpwall() if e.pw_gecos == mine}


def test_each_test_sshd_has_its_own_password_user_removed_at_stop(
    sshd_service: SshdService, tmp_path: Path
) -> None:
    user, password = sshd_service.require_password_user()
    other = start_sshd(tmp_path / "second")
    try:
        assert other.password_user not in (None, user)
        assert other.password not in (None, password)
        assert other.password_user in _users()
    finally:
        other.stop()
    assert other.password_user not in _users()
    assert other.password_home is not None and not other.password_home.exists()
    assert user in _users()  # the session's own is untouched


def test_a_failed_sshd_start_removes_its_user(
    sshd_service: SshdService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sshd_service.require_password_user()
    before = _users()
    with socket.create_server(("127.0.0.1", 0)) as taken:  # sshd cannot listen there
        monkeypatch.setattr("tests.services.sshd.free_port", lambda: taken.getsockname()[1])
        with pytest.raises(RuntimeError, match="sshd"):
            start_sshd(tmp_path / "failing")
    assert _users() == before


def test_users_of_killed_runs_are_removed_at_the_next_start(
    sshd_service: SshdService, tmp_path: Path
) -> None:
    sshd_service.require_password_user()
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = f"{USER_PREFIX}{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--comment",
            f"{USER_COMMENT}{gone.pid}",
            stale,
        ],
        check=True,
    )
    try:
        assert stale in {e.pw_name for e in pwd.getpwall()}
        start_sshd(tmp_path / "next").stop()
        assert stale not in {e.pw_name for e in pwd.getpwall()}
    finally:
        subprocess.run(["userdel", stale], capture_output=True, check=False)


def test_links_are_followed_inside_the_root_only_and_never_round_a_loop(
    sshd_service: SshdService, tmp_path: Path
) -> None:
    name = f"links-{uuid.uuid4().hex[:8]}"
    root = sshd_service.data_root / name
    (root / "real" / "sub").mkdir(parents=True)
    (root / "real" / "sub" / "f").write_bytes(b"data")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not the store's")
    links = root / "links"
    links.mkdir()
    (links / "self").symlink_to(".")
    (links / "up").symlink_to("..")
    (links / "sibling").symlink_to("../real")
    (links / "file").symlink_to("../real/sub/f")
    (links / "dangling").symlink_to("nowhere")
    os.mkfifo(links / "fifo")
    d = sshd_service.driver(name)
    with d:
        listed = {e.name: e.is_dir for e in d.list("links")}
        assert listed == {"sibling": True, "file": False}  # not self, up, dangling, fifo
        walked = sorted(e.path for e in d.walk(""))
        assert walked == ["links/file", "links/sibling/sub/f", "real/sub/f"]
        assert d.get("links/file") == b"data"
        # A link out of the root is refused, naming it: skipping it could make gc take
        # what lies behind it for unreferenced.
        for link, target in (("out", outside), ("out-file", outside / "secret")):
            (links / link).symlink_to(target)
            for call in (lambda: d.list("links"), lambda: list(d.walk(""))):
                with pytest.raises(StorageError, match=f"links/{link} is a symbolic link to"):
                    call()
            (links / link).unlink()
        (links / "out").symlink_to(outside)
        d.delete("links")  # removes the links themselves, not what they lead to
        assert sorted(e.path for e in d.walk("")) == ["real/sub/f"]
        assert (outside / "secret").read_bytes() == b"not the store's"
        d.delete("real")

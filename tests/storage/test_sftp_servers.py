"""SFTP servers that can do less: the driver goes by what the server announces in
SSH_FXP_VERSION, and by a refused rename, never by the wording of an error.

Each kind of server is a real sshd whose `internal-sftp` refuses some requests (`-P`);
OpenSSH then leaves the refused extensions out of its announcement and answers them
"permission denied". The conformance suite runs against each of them here too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from regtool.storage.base import TEMP_MARK
from regtool.storage.sftp import SftpDriver
from regtool.storage.sftp.capabilities import DEFAULT_CHUNK, Renaming
from tests.services.sshd import SshdService

# The conformance tests imported here run again, against each kind of server, with this
# module's `driver` fixture.
from tests.storage.test_conformance import (  # noqa: F401
    test_append_writer_continues_and_cancel_restores,
    test_create_root_is_idempotent,
    test_delete_file_and_prefix,
    test_large_streamed_object,
    test_missing_paths_raise_path_not_found,
    test_move_replaces_and_removes_source,
    test_put_get_overwrite,
    test_put_if_absent_creates_once,
    test_put_if_absent_has_one_winner,
    test_ranged_reads,
    test_walk_hides_temporaries_unless_asked,
    test_writer_cancel_leaves_nothing,
    test_writer_content_visible_only_after_commit,
    test_writer_replaces_existing_file_on_commit,
)

pytestmark = pytest.mark.sftp

#: `internal-sftp` options of each kind of server.
SERVERS = {
    "no-posix-rename": "-P posix-rename",
    "no-rename": "-P posix-rename,rename",
    "no-rename-no-hardlink": "-P posix-rename,rename,hardlink",
    "no-hardlink": "-P hardlink",
    "no-limits": "-P limits",
}
#: Conformance tests whose promise a server without rename cannot keep: writers write in
#: place there, so content is seen before commit (documented in capabilities.Renaming).
WRITE_IN_PLACE = {
    test_writer_content_visible_only_after_commit.__name__,
    test_writer_replaces_existing_file_on_commit.__name__,
    test_walk_hides_temporaries_unless_asked.__name__,
}


F = TypeVar("F", bound=Callable[..., None])


def on(*servers: str) -> Callable[[F], F]:
    """Run a test of this module against these kinds of server only (else: all)."""

    def mark(fn: F) -> F:
        ONLY_ON[fn.__name__] = servers
        return fn

    return mark


ONLY_ON: dict[str, tuple[str, ...]] = {}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "server" not in metafunc.fixturenames:
        return
    name = metafunc.function.__name__
    servers = ONLY_ON.get(name, tuple(SERVERS))
    if name in WRITE_IN_PLACE:
        servers = tuple(s for s in servers if not s.startswith("no-rename"))
    metafunc.parametrize("server", servers)


@pytest.fixture
def sshd(sshd_service: SshdService, server: str) -> SshdService:
    return sshd_service.variant(SERVERS[server])


@pytest.fixture
def driver(sshd: SshdService) -> Iterator[SftpDriver]:
    """A driver on this kind of server (the name the conformance tests ask for); the root
    must be empty after each test, temporary files included."""
    d = sshd.driver(f"server-{uuid.uuid4().hex[:8]}")
    try:
        yield d
        leftover = sorted(e.path for e in d.walk("", temporaries=True))
        for path in leftover:
            d.delete(path)
        assert leftover == [], f"test leaked files: {leftover[:10]}"
    finally:
        d.close()


@pytest.fixture
def segment_size() -> int:
    return 64 * 1024


def _renaming(d: SftpDriver) -> Renaming:
    with d.connection.session("") as lease:
        return lease.renaming


def test_the_announcement_is_read(sshd_service: SshdService) -> None:
    d = sshd_service.driver(f"caps-{uuid.uuid4().hex[:8]}")
    with d:
        with d.connection.session("") as lease:
            caps = lease.capabilities
        assert caps.version == 3
        assert caps.offers("posix-rename@openssh.com") and caps.hardlink
        assert caps.limits is not None and caps.limits.max_write > DEFAULT_CHUNK
        assert caps.write_chunk == min(caps.limits.max_write, 256 * 1024)
        assert _renaming(d) is Renaming.POSIX


@on("no-posix-rename", "no-hardlink", "no-limits")
def test_writes_replace_files_without_posix_rename(driver: SftpDriver, sshd: SshdService) -> None:
    driver.put("f", b"one")
    driver.put("f", b"two, longer")
    assert driver.get("f") == b"two, longer"
    expected = Renaming.PLAIN if "posix-rename" in sshd.sftp_options else Renaming.POSIX
    assert _renaming(driver) is expected
    driver.delete("f")


@on("no-limits")
def test_transfers_use_32k_requests_without_limits(driver: SftpDriver) -> None:
    with driver.connection.session("") as lease:
        assert lease.capabilities.limits is None
        assert lease.capabilities.read_chunk == lease.capabilities.write_chunk == DEFAULT_CHUNK
    data = bytes(range(256)) * 1000
    driver.put("big", data)
    with driver.open("big", offset=DEFAULT_CHUNK - 5, length=DEFAULT_CHUNK + 10) as f:
        assert f.read() == data[DEFAULT_CHUNK - 5 : 2 * DEFAULT_CHUNK + 5]
    driver.delete("big")


@on("no-rename")
def test_without_rename_writers_write_in_place(driver: SftpDriver, sshd: SshdService) -> None:
    root = sshd.data_root / driver.describe().rsplit("/", 1)[-1]
    driver.put("first", b"written through a temporary file, then copied")
    assert _renaming(driver) is Renaming.NONE  # the refused rename was remembered
    w = driver.writer("second")
    w.write(b"in place")
    assert not [p for p in root.iterdir() if p.name.startswith(TEMP_MARK)]
    assert driver.get("second") == b"in place"  # seen before commit: no rename to wait for
    w.commit()
    with driver.writer("third") as cancelled:
        cancelled.write(b"gone again")
    assert not driver.exists("third")
    driver.move("second", "moved")  # copied, then deleted
    assert driver.get("moved") == b"in place" and not driver.exists("second")
    assert driver.get("first") == b"written through a temporary file, then copied"
    driver.delete("first")
    driver.delete("moved")


@on("no-rename-no-hardlink", "no-rename", "no-hardlink")
def test_put_if_absent_never_replaces(driver: SftpDriver) -> None:
    assert driver.put_if_absent("locks/a", b"mine") is True
    assert driver.put_if_absent("locks/a", b"theirs") is False
    assert driver.get("locks/a") == b"mine"
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda i: driver.put_if_absent("locks/b", b"%d" % i), range(8)))
    assert won.count(True) == 1
    assert driver.get("locks/b") == b"%d" % won.index(True)
    assert sorted(e.path for e in driver.walk("", temporaries=True)) == ["locks/a", "locks/b"]
    driver.delete("locks")


def test_requests_never_exceed_the_servers_limits(
    sshd_service: SshdService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenSSH drops the connection on a write larger than the limit it announced (255 KiB);
    # with regtool's own cap lifted, only the announced limit keeps transfers alive.
    monkeypatch.setattr("regtool.storage.sftp.capabilities.MAX_CHUNK", 4 * 1024 * 1024)
    d = sshd_service.driver(f"limits-{uuid.uuid4().hex[:8]}")
    with d:
        with d.connection.session("") as lease:
            caps = lease.capabilities
        assert caps.limits is not None
        assert caps.write_chunk == caps.limits.max_write < 4 * 1024 * 1024
        data = bytes(range(256)) * 8192  # 2 MiB
        d.put("big", data)
        assert d.get("big") == data
        d.delete("big")

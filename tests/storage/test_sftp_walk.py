"""The SFTP driver's walk: every known directory's requests in flight on one channel.

Entries are compared with the local driver's walk of the same directory (the sshd serves
a directory of this machine). Round trips and requests in flight are counted, not timed:
`Pipeline.round_trips` and the channel's own count of unanswered requests.
"""

from __future__ import annotations

import os
import pwd
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from regtool.errors import PathNotFound, StorageError
from regtool.storage.base import TEMP_MARK, Entry
from regtool.storage.local import LocalDriver
from regtool.storage.sftp import SftpDriver
from regtool.storage.sftp import walk as sftp_walk
from regtool.storage.sftp.capabilities import Capabilities
from regtool.storage.sftp.protocol import CMD_OPENDIR, CMD_READDIR, Pipeline
from tests.services.sshd import SshdService

pytestmark = pytest.mark.sftp

LEVELS = 7  # below the top: a registry's deepest path has about this many


class Store:
    def __init__(self, service: SshdService):
        self.name = f"walk-{uuid.uuid4().hex[:8]}"
        self.disk = service.data_root / self.name
        self.disk.mkdir(parents=True)
        self.driver = service.driver(self.name)

    def file(self, path: str, data: bytes = b"x") -> None:
        target = self.disk / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


@pytest.fixture
def store(sshd_service: SshdService) -> Iterator[Store]:
    s = Store(sshd_service)
    try:
        yield s
    finally:
        s.driver.close()
        shutil.rmtree(s.disk, ignore_errors=True)


def _files(entries: Iterator[Entry]) -> dict[str, tuple[int | None, bool]]:
    return {e.path: (e.size, e.temporary) for e in entries}


def _wide_and_deep(store: Store, width: int = 10) -> int:
    """A tree LEVELS deep, ten directories wide at each level below the second (a
    registry's `<hex>/link` directories), with files at every level, empty directories,
    one directory of 250 entries (more than one READDIR answer) and a writer's
    temporary file. Returns the number of directories."""
    for i in range(width):
        for j in range(width):
            deep = "/".join(f"l{n}" for n in range(3, LEVELS + 1))
            store.file(f"a{i}/b{j}/{deep}/link", f"{i}{j}".encode())
            store.file(f"a{i}/b{j}/file", b"f" * j)
        store.file(f"a{i}/top", b"t" * i)
        (store.disk / f"a{i}" / "empty" / "deeper").mkdir(parents=True)
    for k in range(250):
        store.file(f"many/{k:03d}", b"m")
    store.file(f"a0/{TEMP_MARK}abc", b"partial")
    return sum(1 for p in store.disk.rglob("*") if p.is_dir())


def test_the_walk_lists_what_the_disk_holds(store: Store) -> None:
    _wide_and_deep(store)
    local = LocalDriver(store.disk)
    for prefix, temporaries in (("", False), ("", True), ("a3", False), ("many", False)):
        expected = _files(local.walk(prefix, temporaries=temporaries))
        assert _files(store.driver.walk(prefix, temporaries=temporaries)) == expected
        assert expected  # the comparison is not between two empty walks
    assert sorted(e.name for e in store.driver.list("a0")) == sorted(
        e.name for e in local.list("a0")
    )
    assert {e.name for e in store.driver.list("a0") if e.is_dir} == {
        *(f"b{j}" for j in range(10)),
        "empty",
    }
    assert list(store.driver.walk("a0/empty")) == []
    assert list(store.driver.walk("absent")) == []
    with pytest.raises(PathNotFound):
        store.driver.list("absent")


def test_a_walk_costs_about_two_round_trips_per_level(
    store: Store, walks: list[sftp_walk.TreeWalk]
) -> None:
    directories = _wide_and_deep(store)
    assert len(_files(store.driver.walk(""))) == 100 * 2 + 10 + 250
    (walk,) = walks
    # levels: a*, b*/empty, l3..l7 (LEVELS - 2), and the top: each an OPENDIR, then READDIRs
    # answered together; a link or a directory of many entries adds a round trip or two
    levels = 1 + 2 + (LEVELS - 2)
    assert walk.round_trips <= 2 * levels + 3, (walk.round_trips, directories)
    assert directories > 600  # one directory at a time: three round trips each


def test_a_pruned_directory_costs_no_request(
    store: Store, walks: list[sftp_walk.TreeWalk], monkeypatch: pytest.MonkeyPatch
) -> None:
    _wide_and_deep(store)
    opened: list[str] = []
    send = Pipeline.send

    def recording(self: Pipeline, tag: Any, cmd: int, *args: Any, **kwargs: Any) -> None:
        if cmd == CMD_OPENDIR:
            opened.append(tag[1].path)
        send(self, tag, cmd, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "send", recording)
    # what lies below the b* directories is deepest: passing over it leaves two levels
    found = _files(store.driver.walk("", prune=lambda d: d.count("/") == 1 and "/b" in d))
    expected = _files(LocalDriver(store.disk).walk(""))
    assert found == {p: v for p, v in expected.items() if "/b" not in p}
    a = [f"a{i}" for i in range(10)]
    beside = [f"{d}/empty" for d in a] + [f"{d}/empty/deeper" for d in a]
    assert sorted(opened) == sorted(["", *a, *beside, "many"])
    (walk,) = walks
    # the top, a*, a*/empty, a*/empty/deeper: an OPENDIR, then READDIRs answered together
    assert walk.round_trips <= 2 * 4 + 1


def test_requests_in_flight_stay_within_the_bound(
    store: Store, walks: list[sftp_walk.TreeWalk], monkeypatch: pytest.MonkeyPatch
) -> None:
    _wide_and_deep(store, width=5)
    expected = _files(LocalDriver(store.disk).walk(""))
    monkeypatch.setattr(sftp_walk, "IN_FLIGHT", 6)
    assert _files(store.driver.walk("")) == expected
    assert 4 <= walks[-1].most_in_flight <= 6
    monkeypatch.setattr(sftp_walk, "IN_FLIGHT", 512)
    assert _files(store.driver.walk("")) == expected
    assert walks[-1].most_in_flight > 50  # every known directory at once


def test_a_directory_vanishing_mid_walk_is_skipped(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _wide_and_deep(store)
    expected = _files(LocalDriver(store.disk).walk(""))
    send = Pipeline.send
    removed: list[str] = []

    def removing(self: Pipeline, tag: Any, cmd: int, *args: Any, **kwargs: Any) -> None:
        # a1/b1 goes before its OPENDIR, a2/b2 between its OPENDIR and its READDIRs
        reading = tag[1] if isinstance(tag, tuple) else None
        if reading is not None:
            for path, when in (("a1/b1", CMD_OPENDIR), ("a2/b2", CMD_READDIR)):
                if reading.path == path and cmd == when and path not in removed:
                    shutil.rmtree(store.disk / path)
                    removed.append(path)
        send(self, tag, cmd, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "send", removing)
    walked = _files(store.driver.walk(""))
    assert removed == ["a1/b1", "a2/b2"]
    gone = {p for p in expected if p.startswith(("a1/b1/", "a2/b2/"))}
    assert gone and walked == {p: v for p, v in expected.items() if p not in gone}


def test_the_channel_of_a_walk_left_half_way_is_not_used_again(store: Store) -> None:
    _wide_and_deep(store)
    walk = store.driver.walk("")
    next(walk)
    walk.close()  # requests still in flight on its channel: the driver closes the channel
    assert len(_files(store.driver.walk(""))) == 460
    assert store.driver.get("a1/top") == b"t"


def test_a_refused_directory_fails_the_walk_naming_it(sshd_service: SshdService) -> None:
    """Logged in as a user who may not read one directory (root may read them all)."""
    user, password = sshd_service.require_password_user()
    assert sshd_service.password_home is not None
    store = Store(sshd_service)
    disk = sshd_service.password_home / store.name
    shutil.move(store.disk, disk)
    store.disk = disk
    try:
        _wide_and_deep(store)
        owner = pwd.getpwnam(user)
        for top, dirs, files in os.walk(disk):
            for name in [top, *(os.path.join(top, n) for n in dirs + files)]:
                os.chown(name, owner.pw_uid, owner.pw_gid)
        (disk / "a5" / "b5").chmod(0)
        with SftpDriver(
            sshd_service.host,
            str(disk),
            port=sshd_service.port,
            username=user,
            password=password,
            known_hosts=str(sshd_service.known_hosts),
        ) as d:
            with pytest.raises(StorageError, match="permission denied: a5/b5"):
                list(d.walk(""))
            assert d.get("a5/top") == b"ttttt"  # the driver goes on
    finally:
        store.driver.close()
        shutil.rmtree(disk, ignore_errors=True)


def test_links_are_resolved_in_the_pipeline(store: Store, walks: list[sftp_walk.TreeWalk]) -> None:
    for i in range(20):
        store.file(f"real{i}/sub/f", b"data")
        (store.disk / "links").mkdir(exist_ok=True)
        (store.disk / "links" / f"to{i}").symlink_to(f"../real{i}")
    (store.disk / "links" / "loop").symlink_to("..")
    walked = {e.path for e in store.driver.walk("links")}
    assert walked == {f"links/to{i}/sub/f" for i in range(20)}
    assert walks[-1].round_trips <= 2 + 1 + 2 * 2 + 1  # top, links, sub, f's level


def test_a_server_out_of_handles_is_asked_again_with_fewer(
    sshd_service: SshdService, walks: list[sftp_walk.TreeWalk], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An sshd whose SFTP server may open only a few files answers "Failure" to the
    OPENDIR past its limit; the walk keeps to what was open and asks again. The limit it
    announces is kept to without a refusal."""
    limited = sshd_service.variant("", open_files=24)
    store = Store(limited)
    try:
        _wide_and_deep(store, width=6)
        expected = _files(LocalDriver(store.disk).walk(""))
        assert _files(store.driver.walk("")) == expected
        assert walks[-1].most_open < 24  # as announced
        monkeypatch.setattr(Capabilities, "open_handles", property(lambda self: None))
        assert _files(store.driver.walk("")) == expected  # finds the limit by refusals
        assert walks[-1].most_open < 24
    finally:
        store.driver.close()
        shutil.rmtree(store.disk, ignore_errors=True)


def test_reads_during_a_walk_share_its_channel(
    sshd_service: SshdService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a caller reads while it iterates a walk goes over the walk's channel: on a
    server that allows one channel, another would be waited for in vain."""
    monkeypatch.setattr("regtool.storage.sftp.connection.MAX_CHANNELS", 1)
    store = Store(sshd_service)
    try:
        _wide_and_deep(store, width=3)
        read = {e.path: store.driver.get(e.path) for e in store.driver.walk("") if e.size}
        assert read == {
            str(p.relative_to(store.disk)): p.read_bytes()
            for p in store.disk.rglob("*")
            if p.is_file() and p.stat().st_size and TEMP_MARK not in p.name
        }
        assert store.driver.connection.channel_limit == 1
    finally:
        store.driver.close()
        shutil.rmtree(store.disk, ignore_errors=True)

"""`regtool ls` and `regtool gc` over SFTP whose connection is lost mid-walk: the walk goes
on where it was and the command's output is what it is without the loss; when the server
stays gone, one line naming the host and what happened, exit 2. The connection runs
through a TCP proxy cut once the walk handed out a chosen number of files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from regtool.layout.v2 import V2Layout
from regtool.oci import Digest
from regtool.storage.base import Entry
from regtool.storage.local import LocalDriver
from regtool.storage.sftp import SftpDriver
from tests.services.sshd import SshdService
from tests.services.tcp_faults import TcpFaultProxy, assert_said_lost
from tests.v2store import write_image

pytestmark = pytest.mark.sftp

COMMANDS = {"ls": ["ls"], "gc": ["gc", "--dry-run", "--json", "-l"]}


@pytest.fixture
def store(sshd_service: SshdService) -> Iterator[Path]:
    """Twelve repositories of an image each, and a blob no image references."""
    root = sshd_service.data_root / f"clidrop-{uuid.uuid4().hex[:8]}"
    layout = V2Layout(LocalDriver(root))
    for i in range(12):
        write_image(layout, f"team/app{i}", "1.0", layer=f"layer {i}".encode())
    orphan = root / layout.blob_data(_digest(b"orphan"))
    layout.driver.put(layout.blob_data(_digest(b"orphan")), b"orphan")
    os.utime(orphan, (1_000_000_000, 1_000_000_000))  # old enough to collect
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _digest(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


def _output(result: Any, command: str) -> Any:
    """What the command said, but how long it took."""
    if command == "ls":
        return result.stdout
    said = json.loads(result.stdout)
    del said["totals"]["seconds"]
    return said


def _run(cli: Any, sshd: SshdService, proxy: TcpFaultProxy, root: Path, command: str) -> Any:
    url = f"sftp://{sshd.username}@{sshd.host}:{proxy.port}{root}"
    env = {
        "REGTOOL_SFTP_KNOWN_HOSTS": str(sshd.known_hosts),
        "REGTOOL_SFTP_IDENTITY": str(sshd.key_path),
    }
    return cli(*COMMANDS[command], url, env=env)


def _after_entries(monkeypatch: pytest.MonkeyPatch, nth: int, cut: Callable[[], None]) -> None:
    """`cut()` once the walk of `repositories/` handed out its `nth` file: the walk has
    begun, its caller has what it yielded."""
    original = SftpDriver.walk
    count = [0]

    def walk_then_cut(self: SftpDriver, prefix: str = "", **options: Any) -> Iterator[Entry]:
        for entry in original(self, prefix, **options):
            yield entry
            if prefix.endswith("/repositories"):
                count[0] += 1
                if count[0] == nth:
                    cut()

    monkeypatch.setattr(SftpDriver, "walk", walk_then_cut)


@pytest.mark.parametrize("command", ["ls", "gc"])
def test_a_connection_lost_mid_walk_changes_nothing_in_the_output(
    cli: Any,
    sshd_service: SshdService,
    proxy: TcpFaultProxy,
    store: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    clean = _run(cli, sshd_service, proxy, store, command)
    assert clean.exit_code == 0, clean.stderr
    _after_entries(monkeypatch, 10, proxy.cut_all)
    cut = _run(cli, sshd_service, proxy, store, command)
    assert proxy.cuts == 1
    assert cut.exit_code == 0, cut.stderr
    assert _output(cut, command) == _output(clean, command)
    if command == "gc":  # the orphan is in the plan, found by the walk of blobs/
        assert len(_output(cut, command)["objects"]) == 1
    assert "error" not in cut.stderr


@pytest.mark.parametrize("command", ["ls", "gc"])
def test_a_server_gone_for_good_mid_walk_is_one_line_naming_it_exit_2(
    cli: Any,
    sshd_service: SshdService,
    proxy: TcpFaultProxy,
    store: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    _after_entries(monkeypatch, 10, proxy.close)  # cut, and refuse new connections
    result = _run(cli, sshd_service, proxy, store, command)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert_said_lost(errors[0], proxy.port)
    assert f"{sshd_service.username}@{sshd_service.host}:{proxy.port}" in errors[0]

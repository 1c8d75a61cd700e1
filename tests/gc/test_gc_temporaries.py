"""Writers' temp files that a crash or a failed cleanup left: gc collects them, verify
--all reports them. They come from real crashes and faults: `regtool serve` killed with
SIGKILL in the middle of a PATCH, an SFTP writer whose connection a proxy cut."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from regtool.gc import GcOptions, collect
from regtool.layout.v2 import V2Layout
from regtool.oci import Digest
from regtool.storage.base import TEMP_MARK, Driver
from regtool.storage.local import LocalDriver
from regtool.storage.retry import RetryingDriver
from tests.clirunner import Cli
from tests.services import free_port
from tests.services.sshd import SshdService
from tests.services.tcp_faults import TcpFaultProxy
from tests.v2store import write_image

MiB = 1 << 20
NOW_ALL = GcOptions(
    min_age=timedelta(0), uploads_older_than=timedelta(0), settle=timedelta(0), jobs=2
)


def _age(path: Path, hours: float) -> None:
    """Backdate a file, as if its writer had died `hours` ago."""
    when = time.time() - hours * 3600
    os.utime(path, (when, when))


def _temps(root: Path) -> list[Path]:
    return sorted(root.rglob(f"{TEMP_MARK}*"))


def _size(path: Path) -> int:
    """The file's size; 0 once it is gone (a lease renewal's temp file lives briefly)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# -- kill -9 of regtool serve in the middle of an upload -------------------------------------


@pytest.fixture
def crashed_upload(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A store whose `regtool serve` was killed (SIGKILL) while a PATCH streamed: the
    upload's temp file holds what arrived. Yields (store, upload id)."""
    store = tmp_path / "store"
    port = free_port()
    main = "from regtool.cli.main import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", main, "serve", "-l", str(store), "--addr", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client: socket.socket | None = None
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/v2/", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        started = httpx.post(f"{url}/v2/crash/app/blobs/uploads/")
        location, upload_id = started.headers["Location"], started.headers["Docker-Upload-UUID"]
        path = location.removeprefix(url)
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(
            f"PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {64 * MiB}\r\n\r\n".encode()
        )
        upload_dir = store / V2Layout(LocalDriver(store)).upload_dir("crash/app", upload_id)
        sent = threading.Event()

        def send() -> None:
            try:
                for _ in range(64):
                    client.sendall(b"\x01" * MiB)
            except OSError:
                pass  # the server died, as it should
            sent.set()

        threading.Thread(target=send, daemon=True).start()
        # The crash comes once the server holds at least 4 MiB of it in its temp file.
        deadline = time.monotonic() + 30
        while not any(_size(p) >= 4 * MiB for p in _temps(upload_dir)):
            assert time.monotonic() < deadline, "the upload never reached its temp file"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        sent.wait(10)
        yield store, upload_id
    finally:
        if client is not None:
            client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_gc_deletes_a_crashed_uploads_temp_file_with_the_upload(
    crashed_upload: tuple[Path, str], cli: Cli
) -> None:
    store, upload_id = crashed_upload
    (temp,) = _temps(store)
    size = temp.stat().st_size
    ages = ("--min-age", "0s", "--uploads-older-than", "0s")
    # The crashed server ran on this host and runs no more: its lease is over at once
    # (a lease held elsewhere lasts until it expires: tests/gc/test_gc_upload_leases.py).
    plan = cli.json("gc", "--dry-run", *ages, "-l", str(store))
    (item,) = [o for o in plan["objects"] if o["kind"] == "upload"]
    assert item["name"] == upload_id
    assert any(p.endswith(temp.name) for p in item["paths"])
    assert item["size"] >= size  # the bytes received count as freed
    layout = V2Layout(LocalDriver(store))
    result = cli("gc", *ages, "--settle", "0s", "-l", str(store))
    assert result.exit_code == 0, result.stderr
    assert _temps(store) == []
    assert not (store / layout.upload_dir("crash/app", upload_id)).exists()


def test_a_temp_file_in_an_upload_counts_once(tmp_path: Path) -> None:
    """An upload's temp file is one of the upload's files, not a temp-file item too: the
    bytes it frees are counted once."""
    layout = V2Layout(LocalDriver(tmp_path))
    write_image(layout, "app", "1.0")
    data = tmp_path / layout.upload_data("app", "u1")
    data.parent.mkdir(parents=True)
    data.write_bytes(b"d" * 1000)
    temp = data.parent / f"{TEMP_MARK}data-part"
    temp.write_bytes(b"t" * 5000)
    for path in (data, temp):
        _age(path, 48)
    result = collect(layout, "t", replace(NOW_ALL, dry_run=True))
    assert [(i.kind, i.name, i.size) for i in result.items] == [("upload", "u1", 6000)]
    assert result.bytes_freed == 6000


# -- temp files outside uploads -----------------------------------------------------------


def test_gc_deletes_temp_files_elsewhere_older_than_min_age(tmp_path: Path, cli: Cli) -> None:
    store = tmp_path / "store"
    layout = V2Layout(LocalDriver(store))
    image = write_image(layout, "app", "1.0")
    blob_dir = (store / layout.blob_data(image.config)).parent
    link_dir = (store / layout.layer_link("app", image.layers[0])).parent
    old_blob = blob_dir / f"{TEMP_MARK}crashed-put"
    old_link = link_dir / f"{TEMP_MARK}crashed-link"
    young = blob_dir / f"{TEMP_MARK}writing-now"
    for temp in (old_blob, old_link, young):
        temp.write_bytes(b"partial")
    _age(old_blob, 3)
    _age(old_link, 3)

    plan = cli.json("gc", "--dry-run", "-l", str(store))  # default --min-age 1h
    found = {o["name"]: o for o in plan["objects"] if o["kind"] == "temp-file"}
    assert set(found) == {str(p.relative_to(store)) for p in (old_blob, old_link)}
    assert {o["size"] for o in found.values()} == {len(b"partial")}
    assert [o for o in plan["objects"] if o["kind"] != "temp-file"] == []  # nothing else
    assert plan["totals"]["kept_young"] >= 1

    result = cli("gc", "--settle", "0s", "-l", str(store))
    assert result.exit_code == 0, result.stderr
    assert _temps(store) == [young]
    assert cli("verify", "--all", "-l", str(store)).exit_code == 0  # the image is whole


def test_verify_all_reports_temp_files_older_than_an_hour(tmp_path: Path, cli: Cli) -> None:
    store = tmp_path / "store"
    layout = V2Layout(LocalDriver(store))
    image = write_image(layout, "app", "1.0")
    blob_dir = (store / layout.blob_data(image.layers[0])).parent
    old, young = blob_dir / f"{TEMP_MARK}old", blob_dir / f"{TEMP_MARK}young"
    old.write_bytes(b"x" * 1234)
    young.write_bytes(b"y")
    _age(old, 2)
    doc = cli.json("verify", "--all", "-l", str(store))
    leftovers = [r for r in doc["results"] if r["status"] == "leftover"]
    assert len(leftovers) == 1
    (problem,) = leftovers[0]["problems"]
    assert problem["kind"] == "leftover"
    assert problem["object"] == str(old.relative_to(store))
    assert "1234 bytes" in problem["detail"]
    assert doc["totals"]["leftover"] == 1 and doc["totals"]["problems"] == 0
    table = cli("verify", "--all", "-l", str(store))
    assert table.exit_code == 0  # a leftover damages no image: the exit stays 0
    assert "leftover" in table.stdout and old.name in table.stdout
    assert cli("verify", "app:1.0", "-l", str(store)).exit_code == 0


# -- SFTP: a writer whose connection dropped -----------------------------------------------


@pytest.mark.sftp
def test_gc_over_sftp_deletes_what_a_dropped_writer_left(sshd_service: SshdService) -> None:
    root = sshd_service.data_root / f"gc-temps-{uuid.uuid4().hex[:8]}"
    with TcpFaultProxy(sshd_service.port) as proxy:
        sshd_service.trust(proxy.port)
        driver: Driver = RetryingDriver(
            sshd_service.driver(root.name, port=proxy.port, timeout=10.0)
        )
        try:
            layout = V2Layout(driver)
            image = write_image(layout, "app", "1.0")
            digest = Digest("sha256", "ab" * 32)
            writer = driver.writer(layout.blob_data(digest))
            writer.write(os.urandom(256 * 1024))
            proxy.cut_all()  # the connection dies mid-write: cancel cannot remove the temp
            with pytest.raises(Exception):  # noqa: B017 - what the write meets varies
                writer.write(os.urandom(256 * 1024))
                writer.commit()
            writer.cancel()
            (temp,) = _temps(root)
            _age(temp, 2)
            result = collect(layout, "sftp", NOW_ALL)
            assert [(i.kind, i.paths) for i in result.items] == [
                ("temp-file", (str(temp.relative_to(root)),))
            ]
            assert result.ok and _temps(root) == []
            assert layout.read_blob(image.manifest)  # nothing of the image went
        finally:
            driver.close()

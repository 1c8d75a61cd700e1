"""A dropped SSH connection is a TransientError, never damage, and the next call
reconnects. The connection runs through a TCP proxy that cuts it when the test says."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator

import paramiko
import pytest
from paramiko.packet import Packetizer

from regtool.errors import PathNotFound, StorageError, TransientError, Unreachable
from regtool.storage.base import DeleteReport
from regtool.storage.retry import Backoff, RetryingDriver
from regtool.storage.sftp import SftpDriver
from regtool.storage.sftp.errors import translate
from regtool.storage.sftp.protocol import (
    SFTP_CONNECTION_LOST,
    SFTP_NO_CONNECTION,
    SFTP_OP_UNSUPPORTED,
    status_error,
)
from tests.services.sshd import SshdService
from tests.services.tcp_faults import TcpFaultProxy, assert_said_lost

pytestmark = pytest.mark.sftp

BLOB = os.urandom(6_000_000)  # more than a reader requests ahead (transfer.IN_FLIGHT)


@pytest.fixture
def root(sshd_service: SshdService) -> Iterator[str]:
    """A root of the test's own, with BLOB at `blob`, written without the proxy."""
    name = f"drop-{uuid.uuid4().hex[:8]}"
    with sshd_service.driver(name) as direct:
        direct.put("blob", BLOB)
        yield name
        leftover = sorted(e.path for e in direct.walk("", temporaries=True))
        for path in leftover:
            direct.delete(path)


@pytest.fixture
def sftp(sshd_service: SshdService, proxy: TcpFaultProxy, root: str) -> Iterator[SftpDriver]:
    d = sshd_service.driver(root, port=proxy.port, timeout=10.0)
    try:
        yield d
    finally:
        d.close()


class LateNotice:
    """Holds the reading thread of an SSH connection through the proxy away from its
    socket (between two reads that found nothing) until someone waits for the connection
    to end (`Transport.join`), so a send of the caller's meets a cut before paramiko's
    transport knows of it. Armed from the start; `arm()` again for the next connection."""

    def __init__(self) -> None:
        self.away, self.woken = threading.Event(), threading.Event()

    def wait(self, timeout: float) -> bool:
        """Whether a reading thread keeps away, within `timeout` seconds."""
        return self.away.wait(timeout)

    def arm(self) -> None:
        """Hold the next reading thread that looks, and return once one keeps away."""
        self.away.clear()
        self.woken.clear()
        assert self.away.wait(10)


@pytest.fixture
def late_notice(proxy: TcpFaultProxy, monkeypatch: pytest.MonkeyPatch) -> Iterator[LateNotice]:
    """The worst interleaving after a cut, made certain (`LateNotice`)."""
    notice = LateNotice()
    between_reads = Packetizer._check_keepalive  # type: ignore[attr-defined]  # not in the stubs
    join = paramiko.Transport.join

    def keep_away(packetizer: Packetizer) -> None:
        reader = threading.current_thread()
        if isinstance(reader, paramiko.Transport) and reader.getpeername()[1] == proxy.port:
            notice.away.set()
            notice.woken.wait()
        between_reads(packetizer)

    def wake_and_join(transport: paramiko.Transport, timeout: float | None = None) -> None:
        notice.woken.set()
        join(transport, timeout)

    monkeypatch.setattr(Packetizer, "_check_keepalive", keep_away)
    monkeypatch.setattr(paramiko.Transport, "join", wake_and_join)
    try:
        yield notice
    finally:
        notice.woken.set()


def test_a_cut_mid_read_is_transient_and_the_next_call_reconnects(
    sftp: SftpDriver, proxy: TcpFaultProxy, late_notice: LateNotice
) -> None:
    reader = sftp.open("blob")
    assert reader.read(10) == BLOB[:10]
    assert late_notice.wait(10)
    proxy.cut_all()
    with pytest.raises(TransientError) as info:
        reader.read()
    assert not isinstance(info.value, PathNotFound)
    assert_said_lost(str(info.value), proxy.port)
    with pytest.raises(TransientError):  # the range stays incomplete
        reader.read(1)
    reader.close()
    assert sftp.stat("blob").size == len(BLOB)  # no TransientError: a new connection
    assert sftp.get("blob") == BLOB
    assert proxy.connections == 2


def test_a_cut_after_some_megabytes_read_is_transient(
    sftp: SftpDriver, proxy: TcpFaultProxy
) -> None:
    proxy.cut_after(down=3_000_000)  # in the middle of the blob
    digest = hashlib.sha256()
    with pytest.raises(TransientError), sftp.open("blob") as reader:
        while data := reader.read(65536):
            digest.update(data)
    assert proxy.cuts == 1
    with sftp.open("blob") as again:
        assert hashlib.sha256(again.read()).digest() == hashlib.sha256(BLOB).digest()


def test_a_cut_mid_write_is_transient_and_commits_nothing(
    sftp: SftpDriver, proxy: TcpFaultProxy
) -> None:
    writer = sftp.writer("written")
    writer.write(b"x" * 100_000)
    proxy.cut_all()
    with pytest.raises(TransientError):
        for _ in range(50):  # the cut shows on a write or at the latest on commit
            writer.write(b"y" * 100_000)
        writer.commit()
    with pytest.raises(TransientError):
        writer.commit()  # an incomplete write never commits
    writer.cancel()  # no error: the connection is gone, there is nothing to undo
    assert not sftp.exists("written")
    sftp.put("written", b"after")
    assert sftp.get("written") == b"after"


def test_a_cancel_that_meets_a_cut_warns_in_words(
    sftp: SftpDriver,
    proxy: TcpFaultProxy,
    late_notice: LateNotice,
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = sftp.writer("cancelled")
    writer.write(b"x" * 1000)
    late_notice.arm()
    proxy.cut_all()
    writer.cancel()  # the temporary file cannot be removed: a warning, no error
    (warning,) = [r.getMessage() for r in caplog.records if "could not undo" in r.getMessage()]
    assert_said_lost(warning, proxy.port)


def test_a_cut_while_appending_is_transient(sftp: SftpDriver, proxy: TcpFaultProxy) -> None:
    sftp.put("log", b"start|")
    writer = sftp.writer("log", append=True)
    proxy.cut_after(up=500_000)
    with pytest.raises(TransientError):
        for _ in range(50):
            writer.write(b"z" * 65536)
        writer.commit()
    writer.cancel()
    assert sftp.get("log").startswith(b"start|")


def test_every_call_after_a_cut_is_transient_or_works(
    sftp: SftpDriver, proxy: TcpFaultProxy
) -> None:
    # A cut between calls: the first call may meet the dead connection (TransientError,
    # which the retry wrapper retries) or find it gone and reconnect; the next one works.
    def move() -> None:
        sftp.put("m/a", b"1")
        sftp.move("m/a", "m/b")

    def delete() -> None:
        sftp.put("d/f", b"1")
        sftp.delete("d")

    calls: dict[str, Callable[[], object]] = {
        "list": lambda: sftp.list(""),
        "walk": lambda: list(sftp.walk("")),
        "stat": lambda: sftp.stat("blob"),
        "get": lambda: sftp.get("blob"),
        "put": lambda: sftp.put("p/f", b"1"),
        "put_if_absent": lambda: sftp.put_if_absent(f"lock-{uuid.uuid4().hex}", b"1"),
        "move": move,
        "delete": delete,
        "create_root": sftp.create_root,
    }
    for name, call in calls.items():
        proxy.cut_all()
        try:
            call()
        except TransientError as e:
            assert_said_lost(str(e), proxy.port)
        except StorageError as e:
            pytest.fail(f"{name} after a cut raised {type(e).__name__}: {e}")
        call()  # the connection is back
    assert proxy.cuts >= len(calls)


def test_every_call_that_meets_a_cut_first_says_the_connection_was_lost_in_words(
    sftp: SftpDriver, proxy: TcpFaultProxy, late_notice: LateNotice
) -> None:
    # Each call's first send meets the cut before the transport knows of it: the error
    # is the lost connection, in words, whatever paramiko raised (EOFError, "Socket is
    # closed", "Server connection dropped").
    sftp.put("m/a", b"1")
    calls: dict[str, Callable[[], object]] = {
        "stat": lambda: sftp.stat("blob"),
        "get": lambda: sftp.get("blob"),
        "get_many": lambda: sftp.get_many(["blob", "m/a"]),
        "open": lambda: sftp.open("blob").read(),
        "list": lambda: sftp.list(""),
        "walk": lambda: list(sftp.walk("")),
        "put": lambda: sftp.put("p/f", b"1"),
        "writer": lambda: sftp.writer("w").write(b"1" * 100_000),
        "put_if_absent": lambda: sftp.put_if_absent(f"lock-{uuid.uuid4().hex}", b"1"),
        "move": lambda: sftp.move("m/a", "m/b"),
        "delete": lambda: sftp.delete("m/a"),
        "delete_many": lambda: sftp.delete_many(["m/a"]),
        "create_root": sftp.create_root,
    }
    for name, call in calls.items():
        assert sftp.stat("blob").size == len(BLOB)  # connected again
        late_notice.arm()
        proxy.cut_all()
        try:
            result = call()
        except TransientError as e:
            assert_said_lost(str(e), proxy.port)
            continue
        transient = result.transient if isinstance(result, DeleteReport) else {}
        assert transient, f"{name} did not meet the cut"
        for error in transient.values():
            assert_said_lost(str(error), proxy.port)
    assert proxy.cuts == len(calls)


def test_a_cut_met_first_by_opening_a_channel_is_known_before_the_next_call(
    sftp: SftpDriver, proxy: TcpFaultProxy, late_notice: LateNotice
) -> None:
    assert late_notice.wait(10)
    proxy.cut_all()
    with pytest.raises(TransientError) as info:
        sftp.stat("blob")  # the driver's first channel: the send that opens it fails
    assert_said_lost(str(info.value), proxy.port)
    assert sftp.stat("blob").size == len(BLOB)  # a new connection, not the dead one
    assert proxy.connections == 2


def test_delete_many_reports_a_cut_per_path(sftp: SftpDriver, proxy: TcpFaultProxy) -> None:
    sftp.put("many/a", b"a")
    sftp.put("many/b", b"b")
    proxy.cut_all()
    report = sftp.delete_many(["many/a", "many/b"])
    if report.failed:  # what got no answer failed, as a fault of the connection
        assert set(report.failed) | set(report.deleted) == {"many/a", "many/b"}
    report = sftp.delete_many(["many/a", "many/b"])
    assert report.deleted == ["many/a", "many/b"] and not report.failed


def test_the_retry_wrapper_hides_a_cut_between_calls(
    sftp: SftpDriver, proxy: TcpFaultProxy
) -> None:
    retrying = RetryingDriver(sftp, Backoff(delay=0.01))
    for _ in range(3):
        proxy.cut_all()
        assert retrying.get("blob") == BLOB


def test_a_failed_reconnect_is_transient_not_unreachable(
    sftp: SftpDriver, proxy: TcpFaultProxy
) -> None:
    assert sftp.stat("blob").size == len(BLOB)
    proxy.close()  # the cut, and no new connections: the server seems gone
    with pytest.raises(TransientError) as info:
        sftp.stat("blob")
        sftp.stat("blob")
    assert not isinstance(info.value, Unreachable)
    assert_said_lost(str(info.value), proxy.port)
    assert "reconnecting failed: connection refused" in str(info.value)


@pytest.mark.parametrize("code", [SFTP_NO_CONNECTION, SFTP_CONNECTION_LOST])
def test_a_server_saying_its_connection_is_lost_is_transient(code: int) -> None:
    # Gateways relay their back end's trouble with these statuses; OpenSSH never sends
    # them, so the reply is built here.
    reply = status_error(code, "back end gone")
    assert reply is not None
    assert isinstance(translate(reply, "a/b", "u@h:22"), TransientError)


def test_other_error_statuses_are_not_transient() -> None:
    reply = status_error(SFTP_OP_UNSUPPORTED, "Operation unsupported")
    assert reply is not None
    error = translate(reply, "a/b", "u@h:22")
    assert not isinstance(error, TransientError)
    assert "Operation unsupported: a/b" in str(error)

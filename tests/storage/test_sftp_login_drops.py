"""A connection lost while logging in (after TCP connected, before authentication ended)
is a lost connection, never "authentication failed", which would send an operator after
the wrong fault; a key or password the server refuses still fails authentication. The
connection runs through a TCP proxy cut after the server's banner, or as authentication
begins; a message for people says it in words (`assert_said_lost`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import paramiko
import pytest

from regtool.errors import AuthenticationFailed, TransientError
from regtool.storage.retry import Backoff, RetryingDriver
from regtool.storage.sftp import SftpDriver
from regtool.storage.sftp.errors import translate
from tests.services.sshd import SshdService
from tests.services.tcp_faults import TcpFaultProxy, assert_said_lost

pytestmark = pytest.mark.sftp


@pytest.fixture(scope="module")
def banner(sshd_service: SshdService) -> bytes:
    """The server's identification line ("SSH-2.0-OpenSSH_... \\r\\n"), as it sends it."""
    with socket.create_connection((sshd_service.host, sshd_service.port), timeout=10) as s:
        line = b""
        while not line.endswith(b"\n"):
            line += s.recv(1)
    return line


def _connect(service: SshdService, proxy: TcpFaultProxy, **options: Any) -> SftpDriver:
    return service.driver(f"login-{uuid.uuid4().hex[:8]}", port=proxy.port, timeout=10.0, **options)


@pytest.mark.parametrize("at", ["in the banner", "after the banner"])
def test_a_cut_before_the_key_exchange_is_a_lost_connection(
    sshd_service: SshdService, proxy: TcpFaultProxy, banner: bytes, at: str
) -> None:
    proxy.cut_after(down=5 if at == "in the banner" else len(banner))
    with pytest.raises(TransientError) as info:
        _connect(sshd_service, proxy)
    assert proxy.cuts == 1
    assert_said_lost(str(info.value), proxy.port, during="login")


@pytest.fixture
def cut_as_authentication_begins(proxy: TcpFaultProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy cuts the connection once the client sent its first authentication
    request and waits for the answer (the key exchange is done): paramiko then reads EOF,
    and says "Authentication failed: transport shut down or saw EOF"."""
    original = paramiko.auth_handler.AuthHandler.wait_for_response

    def cut_then_wait(self: Any, event: Any) -> Any:
        proxy.cut_all()
        return original(self, event)

    monkeypatch.setattr(paramiko.auth_handler.AuthHandler, "wait_for_response", cut_then_wait)


@pytest.mark.parametrize("credential", ["key", "password"])
def test_a_cut_during_authentication_is_a_lost_connection_not_failed_authentication(
    sshd_service: SshdService,
    proxy: TcpFaultProxy,
    cut_as_authentication_begins: None,
    credential: str,
) -> None:
    options: dict[str, Any] = {}
    if credential == "password":
        user, password = sshd_service.require_password_user()
        options = {"username": user, "password": password, "key_filename": None}
    with pytest.raises(TransientError) as info:
        _connect(sshd_service, proxy, **options)
    assert not isinstance(info.value, AuthenticationFailed)
    assert "authentication failed" not in str(info.value).lower()
    assert_said_lost(str(info.value), proxy.port, during="login")
    assert proxy.cuts == 1


def test_a_refused_key_through_the_same_proxy_is_still_failed_authentication(
    sshd_service: SshdService, proxy: TcpFaultProxy, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    with pytest.raises(AuthenticationFailed, match="authentication failed"):
        _connect(sshd_service, proxy, key_filename=str(stranger))
    assert proxy.cuts == 0


def test_a_reconnect_cut_during_its_login_is_retried_and_the_walk_goes_on(
    sshd_service: SshdService, proxy: TcpFaultProxy, banner: bytes
) -> None:
    with _connect(sshd_service, proxy) as sftp:
        for i in range(30):  # files on two levels: the walk has more to ask after the first
            sftp.put(f"d{i % 3}/f{i}", b"x")
            sftp.put(f"d{i % 3}/s/g{i}", b"y")
        expected = sorted(e.path for e in sftp.walk(""))
        waits: list[float] = []
        retrying = RetryingDriver(sftp, Backoff(sleep=waits.append))
        seen = []
        for entry in retrying.walk(""):
            seen.append(entry.path)
            if len(seen) == 1:
                proxy.cut_all()
                proxy.cut_after(down=len(banner))  # and the next connection after its banner
        assert sorted(seen) == expected
        assert proxy.cuts == 2 and proxy.connections == 3 and len(waits) == 2
        for path in expected:
            retrying.delete(path)


@pytest.mark.parametrize(
    "native",
    [
        EOFError(),
        OSError("Socket is closed"),
        ConnectionResetError(104, "Connection reset by peer"),
        BrokenPipeError(32, "Broken pipe"),
        paramiko.SSHException("Server connection dropped: "),
        TimeoutError(),
    ],
    ids=repr,
)
def test_a_lost_connection_is_said_in_words_whatever_paramiko_raised(native: Exception) -> None:
    error = translate(native, "a/b", "u@h:22")
    assert isinstance(error, TransientError)
    assert_said_lost(str(error), 22)
    assert str(error).startswith("sftp: connection to u@h:22 lost: ")


def test_what_ended_the_transport_is_named_rather_than_the_closed_socket() -> None:
    error = translate(
        OSError("Socket is closed"),
        "a",
        "u@h:22",
        cause=ConnectionResetError(104, "Connection reset by peer"),
    )
    assert str(error) == "sftp: connection to u@h:22 lost: connection reset by peer"


def test_the_installed_command_says_one_line_for_a_cut_during_login(
    sshd_service: SshdService, proxy: TcpFaultProxy, banner: bytes
) -> None:
    # A process of its own: paramiko logs the fault, traceback and all, before raising
    # it; none of that reaches the user's terminal.
    proxy.cut_after(down=len(banner))
    url = f"sftp://{sshd_service.username}@{sshd_service.host}:{proxy.port}/srv/registry"
    env = dict(
        os.environ,
        REGTOOL_SFTP_KNOWN_HOSTS=str(sshd_service.known_hosts),
        REGTOOL_SFTP_IDENTITY=str(sshd_service.key_path),
    )
    done = subprocess.run(
        [str(Path(sys.executable).with_name("regtool")), "ls", url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (2, "")
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: sftp: connection to ")
    assert_said_lost(line, proxy.port, during="login")


def test_a_server_that_stops_answering_during_login_is_a_lost_connection(
    banner: bytes,
) -> None:
    """A server that sends its banner and then nothing (stopped, hung): paramiko gives
    up on the key exchange at the timeout and says "No existing session"; said in words
    as a connection lost during login. (A stand-in server: the shared sshd cannot be
    stopped on demand.)"""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    held: list[socket.socket] = []

    def serve() -> None:
        conn, _ = listener.accept()
        conn.sendall(banner)
        held.append(conn)  # and then nothing, until the test ends

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    try:
        with pytest.raises(TransientError) as info:
            SftpDriver("127.0.0.1", "/srv", port=port, timeout=1.0, host_key_policy="ignore")
        assert_said_lost(str(info.value), port, during="login")
        assert "no answer in time" in str(info.value)
    finally:
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()

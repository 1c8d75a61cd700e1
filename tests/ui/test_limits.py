"""A form larger than any of the UI's forms is answered 413, and over a real connection
the client reads that answer even when it sent megabytes and asked to close: the rest
of the body is read and dropped, not left to reset the connection."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from regtool.storage.local import LocalDriver
from regtool.ui.app import MAX_FORM
from tests.server.conftest import RunningRegistry, start_registry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    running = start_registry(LocalDriver(tmp_path), tmp_path)
    try:
        yield running
    finally:
        running.stop()


def port(registry: RunningRegistry) -> int:
    return int(registry.host.rpartition(":")[2])


def post(port: int, path: str, body: bytes) -> bytes:
    """The answer to a POST of `body` sent whole before reading, `Connection: close`."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: ui\r\nConnection: close\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(head + body)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("size", [MAX_FORM + 1, 5_000_000])
def test_a_form_too_large_is_answered_413(registry: RunningRegistry, size: int) -> None:
    body = b"csrf=x&user=" + b"A" * (size - len(b"csrf=x&user="))
    answer = post(port(registry), "/ui/login", body)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"not taken" in answer and b"content-security-policy" in answer.lower()


def test_a_form_within_bounds_is_read(registry: RunningRegistry) -> None:
    answer = post(port(registry), "/ui/login", b"csrf=x&user=" + b"A" * (MAX_FORM - 100))
    assert answer.startswith(b"HTTP/1.1 404 "), answer[:200]  # no users: no sign-in

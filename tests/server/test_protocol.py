"""HTTP framing limits of `regtool serve` (the protocol it runs on uvicorn): a request
head (request line and headers) past 1 MiB is refused with 431 and the connection
closed, as distribution (Go's net/http) does, without holding up other clients; a TLS
handshake on the plain-HTTP port is named as such in one log line."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from regtool.server.protocol import MAX_HEAD_BYTES
from tests.server.conftest import RunningRegistry


def connect(registry: RunningRegistry) -> socket.socket:
    host, port = registry.host.split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def read_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def head(size: int, path: str = "/v2/") -> bytes:
    """A GET whose head is `size` bytes, padded by one header."""
    start = f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Pad: ".encode()
    end = b"\r\n\r\n"
    return start + b"a" * (size - len(start) - len(end)) + end


def get(sock: socket.socket, data: bytes) -> bytes:
    """Send a request, return the status line of its response (headers read whole)."""
    sock.sendall(data)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, buf
        buf += chunk
    headers, _, rest = buf.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in headers.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return headers.split(b"\r\n", 1)[0]


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """Messages the server logs on `uvicorn.error` (which does not propagate)."""
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logging.getLogger("uvicorn.error").addHandler(handler)
    yield seen
    logging.getLogger("uvicorn.error").removeHandler(handler)


def test_a_head_past_the_limit_is_refused(
    local_registry: RunningRegistry, warnings: list[str]
) -> None:
    with connect(local_registry) as sock:
        sock.sendall(head(MAX_HEAD_BYTES + 4096)[: MAX_HEAD_BYTES + 1])  # not even complete
        answer = read_all(sock)  # and then the server closes
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert any("over 1048576 bytes: refused (431)" in w for w in warnings)


def test_heads_within_the_limit_are_served_one_after_another(
    local_registry: RunningRegistry,
) -> None:
    """The count starts again with each request on a connection."""
    with connect(local_registry) as sock:
        for _ in range(3):
            assert get(sock, head(MAX_HEAD_BYTES - 1024)) == b"HTTP/1.1 200 OK"


def test_a_long_head_does_not_hold_up_others(local_registry: RunningRegistry) -> None:
    """While one client is most of the way through a huge head, another is served; the
    first is refused as soon as it passes the limit."""
    with connect(local_registry) as slow, connect(local_registry) as other:
        big = head(8 * MAX_HEAD_BYTES)
        slow.sendall(big[: MAX_HEAD_BYTES - 10])
        assert get(other, head(200)) == b"HTTP/1.1 200 OK"
        slow.sendall(big[MAX_HEAD_BYTES - 10 : MAX_HEAD_BYTES + 10])
        assert read_all(slow).startswith(b"HTTP/1.1 431 ")
        assert get(other, head(200)) == b"HTTP/1.1 200 OK"


def test_a_tls_handshake_is_named_in_one_line(
    local_registry: RunningRegistry, warnings: list[str]
) -> None:
    client_hello = bytes.fromhex("160301") + b"\x00\x2a" + b"\x01" + b"\x00" * 41
    with connect(local_registry) as sock:
        sock.sendall(client_hello)
        assert read_all(sock) == b""  # closed: nothing a TLS client could read
    [line] = [w for w in warnings if "TLS" in w]
    assert line.startswith("TLS handshake from 127.0.0.1:")
    assert "plain HTTP" in line
    with connect(local_registry) as sock:  # and plain HTTP is still served
        assert get(sock, head(100)) == b"HTTP/1.1 200 OK"


def read_response(sock: socket.socket) -> bytes:
    """Everything until the server closes (the requests here say Connection: close)."""
    return read_all(sock)


def test_an_early_refusal_waits_for_the_body_so_the_client_reads_it(
    local_registry: RunningRegistry,
) -> None:
    """A request refused from its headers alone (here: an unknown upload) still has its
    body coming; the answer goes out once the (small) body is in, so that closing the
    connection does not reset it under the client, which sends before it reads."""
    path = "/v2/a/blobs/uploads/0b9e1d3c-0000-4000-8000-000000000000"
    body = b"x" * (100 << 10)
    with connect(local_registry) as sock:
        sock.sendall(
            f"PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body[:1000]
        )
        sock.sendall(body[1000:])  # a broken pipe here if the server had closed
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert b"BLOB_UPLOAD_UNKNOWN" in answer


def test_an_early_refusal_of_a_client_waiting_for_100_continue_is_immediate(
    local_registry: RunningRegistry,
) -> None:
    path = "/v2/a/blobs/uploads/0b9e1d3c-0000-4000-8000-000000000000"
    with connect(local_registry) as sock:
        sock.sendall(
            f"PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {10 << 20}\r\n"
            "Expect: 100-continue\r\nConnection: close\r\n\r\n".encode()
        )
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 404 ")  # no 100 Continue: nothing to send

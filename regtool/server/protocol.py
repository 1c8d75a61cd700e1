"""How `regtool serve` runs on uvicorn: the HTTP protocol and its options, in one place
for the command and the tests.

uvicorn's httptools protocol puts no limit on a request's head: the request line and
headers are gathered in memory however long they grow, by repeated concatenation, while
every other connection waits (the event loop is busy copying). distribution (Go's
net/http) refuses a head past 1 MiB. `BoundedHttpToolsProtocol` counts what arrives
before a request's headers end and, past `MAX_HEAD_BYTES`, answers 431 and closes the
connection before the parser sees the excess.
"""

from __future__ import annotations

import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("uvicorn.error")

#: The most a request line and its headers may take, as Go's http.DefaultMaxHeaderBytes.
MAX_HEAD_BYTES = 1 << 20
#: How a TLS connection starts: a handshake record (0x16) of TLS 1.x (0x03); no HTTP
#: method starts with a control character.
_TLS_HANDSHAKES = frozenset({b"\x16\x03"})

_REFUSAL_BODY = b"request line and headers exceed 1 MiB\n"
_REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\n"
    b"connection: close\r\n"
    b"\r\n%s" % (len(_REFUSAL_BODY), _REFUSAL_BODY)
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a limit on each request's head."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._in_head = True  # between a message's start and the end of its headers
        self._head_bytes = 0
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # what is still buffered after the refusal
        if self._in_head:
            if self._head_bytes == 0 and data[:2] in _TLS_HANDSHAKES:
                self._refuse_tls()
                return
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse()
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0

    def _refuse_tls(self) -> None:
        # Else uvicorn's "Invalid HTTP request received." says nothing of the cause.
        self._refused = True
        log.warning(
            "TLS handshake from %s: this port speaks plain HTTP (use http://, or put a "
            "TLS proxy in front of regtool serve)",
            self._client(),
        )
        self.transport.close()

    def _client(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "a client"

    def _refuse(self) -> None:
        self._refused = True
        log.warning(
            "request head from %s over %d bytes: refused (431)", self._client(), MAX_HEAD_BYTES
        )
        self.transport.write(_REFUSAL)
        self.transport.close()


def uvicorn_options(shutdown_grace: int) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.Config` / `uvicorn.run` shared by every server.
    `shutdown_grace`: seconds a stopping server waits for requests under way (a client
    that stalls mid-upload would keep it waiting forever); then they are cancelled and
    what they wrote is taken away, as for any request that fails."""
    return {
        "http": BoundedHttpToolsProtocol,
        "ws": "none",  # a registry speaks no WebSocket: an Upgrade is a plain request
        "lifespan": "off",
        "timeout_graceful_shutdown": shutdown_grace,
    }

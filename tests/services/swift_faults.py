r"""An HTTP proxy in front of the test Swift that answers chosen requests itself: the
faults a real Swift cannot produce on demand (5xx, throttling, odd answers, a body cut
short, another cluster's /info).

    with SwiftFaultProxy(swift.auth_url) as faults:
        faults.answer("GET", r"/c/obj(\?|$)", 429, headers={"Retry-After": "3"}, times=2)
        faults.answer(None, "", 503, times=2)        # the next two requests, whatever they are
        faults.cut("GET", r"/c/big(\?|$)", after=1000)     # the body stops after 1000 bytes
        faults.edit_info(lambda info: {**info, "bulk_delete": {"max_deletes_per_request": 4}})
        faults.clear()                                # every rule gone
        SwiftDriver(faults.credentials(), "c")        # talks through the proxy

Everything else is passed to Swift unchanged, except that the login's X-Storage-Url
points back at the proxy. Rules are matched in the order given, against the method (None:
any) and the path with its query (a regular expression, searched: "" matches every
path); each acts on the next `times` matching requests, then is spent, so which requests
fail is fixed by the test, not by timing. `seen` records every request as
"METHOD /path?query". Bodies are read whole (they are small in tests), also those of
requests answered by a rule, so the client's connection stays usable.

Behind a `TcpFaultProxy` (dropped connections as well): log in at Swift itself and give
the driver `SwiftCredentials(storage_url=...)` on the TCP proxy's port, since the login
through this proxy names this proxy's port.
"""

from __future__ import annotations

import http.client
import json
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from regtool.storage.swift import SwiftCredentials

#: (status, headers, body) of a response, as the proxy passes it on.
Response = tuple[int, dict[str, str], bytes]
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client whose connection went (a TcpFaultProxy in front cut it) is no error of
        # the proxy's; anything else is printed, as socketserver does.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class _Rule:
    method: str | None
    pattern: re.Pattern[str]
    times: int | None  # None: every time
    answer: Response | None = None  # answer this instead of asking Swift
    cut_after: int | None = None  # pass the body on up to here, then drop the connection
    edit: Callable[[Response], Response] | None = None  # change Swift's answer
    hits: int = field(default=0)

    def take(self, method: str, target: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method not in (None, method) or not self.pattern.search(target):
            return False
        self.hits += 1
        return True


class SwiftFaultProxy:
    """The proxy, listening on a free loopback port once started (`with` or `start`)."""

    def __init__(self, upstream_auth_url: str, user: str = "test:tester", key: str = "testing"):
        up = urlsplit(upstream_auth_url)
        self._upstream = (up.hostname or "127.0.0.1", up.port or 80)
        self._auth_path = up.path
        self.user, self.key = user, key
        self.seen: list[str] = []
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def auth_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self._auth_path}"

    def credentials(self) -> SwiftCredentials:
        return SwiftCredentials(auth_url=self.auth_url, user=self.user, key=self.key)

    # --- rules -------------------------------------------------------------------------
    def _add(self, rule: _Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    def answer(
        self,
        method: str | None,
        pattern: str,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        times: int | None = 1,
    ) -> None:
        """Answer the next `times` matching requests with `status` (None: all of them)."""
        answer = (status, dict(headers or {}), body)
        self._add(_Rule(method, re.compile(pattern), times, answer=answer))

    def cut(self, method: str | None, pattern: str, after: int, times: int | None = 1) -> None:
        """Send Swift's answer with its full Content-Length but only `after` bytes of the
        body, then close the connection."""
        self._add(_Rule(method, re.compile(pattern), times, cut_after=after))

    def edit(
        self,
        method: str | None,
        pattern: str,
        fn: Callable[[Response], Response],
        times: int | None = None,
    ) -> None:
        """Pass Swift's answer through `fn` (every time unless `times` is given)."""
        self._add(_Rule(method, re.compile(pattern), times, edit=fn))

    def edit_info(self, fn: Callable[[dict[str, object]], dict[str, object]]) -> None:
        """Serve `fn(Swift's /info)` as `/info`."""

        def change(response: Response) -> Response:
            status, headers, body = response
            return status, headers, json.dumps(fn(json.loads(body))).encode()

        self.edit("GET", r"^/info$", change)

    def clear(self) -> None:
        """Forget every rule, spent or not: requests pass to Swift unchanged again."""
        with self._lock:
            self._rules.clear()

    def _match(self, method: str, target: str) -> _Rule | None:
        with self._lock:
            self.seen.append(f"{method} {target}")
            return next((r for r in self._rules if r.take(method, target)), None)

    # --- serving -----------------------------------------------------------------------
    def _forward(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        conn = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            conn.request(method, target, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP}
            if method == "HEAD" and resp.getheader("Content-Length") is not None:
                out["Content-Length"] = resp.getheader("Content-Length", "0")
            return resp.status, out, data
        finally:
            conn.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _send(self, response: Response, cut_after: int | None = None) -> None:
                status, headers, body = response
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                if self.command == "HEAD":
                    self.send_header("Content-Length", headers.get("Content-Length", "0"))
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body if cut_after is None else body[:cut_after])
                if cut_after is not None:
                    self.wfile.flush()
                    self.close_connection = True

            def _serve(self) -> None:
                body = self._body()
                rule = proxy._match(self.command, self.path)
                if rule is not None and rule.answer is not None:
                    return self._send(rule.answer)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                response = proxy._forward(self.command, self.path, headers, body)
                status, out, data = response
                if "X-Storage-Url" in out:  # the login: keep the client on the proxy
                    upstream = f"{proxy._upstream[0]}:{proxy._upstream[1]}"
                    out["X-Storage-Url"] = out["X-Storage-Url"].replace(
                        upstream, f"127.0.0.1:{proxy.port}"
                    )
                if rule is not None and rule.edit is not None:
                    response = rule.edit((status, out, data))
                else:
                    response = (status, out, data)
                self._send(response, rule.cut_after if rule is not None else None)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_COPY = _serve

        return Handler

    def start(self) -> SwiftFaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> SwiftFaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

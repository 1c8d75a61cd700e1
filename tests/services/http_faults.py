"""An HTTP proxy on loopback that answers chosen requests with an error status instead of
passing them on: a server error (5xx) or throttling (429 + Retry-After) made to order, in
front of a real Swift. Everything else is forwarded as it is.

    proxy = HttpFaultProxy(upstream_port)          # http://127.0.0.1:proxy.port
    proxy.fail_next(2, status=503, retry_after=1)  # the next two requests get 503
    proxy.fail_next(1, method="PUT")               # the next PUT gets 503
    proxy.failed                                   # requests answered with a fault so far
    proxy.close()

Drivers reach it by a storage URL pointing at the proxy (`SwiftCredentials.storage_url`),
logging in at the real server. Bodies are read whole (they are small in tests); a
faulted request's body is read too, so the connection stays usable.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.services import free_port

#: Hop-by-hop headers, and those the proxy sets itself.
_SKIP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class _Fault:
    count: int
    status: int
    retry_after: float | None
    method: str | None


class HttpFaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self.failed = 0
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy._take(self.command)
                if fault is not None:
                    self.send_response(fault.status)
                    if fault.retry_after is not None:
                        self.send_header("Retry-After", f"{fault.retry_after:g}")
                    text = b"injected fault"
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(text)
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _SKIP}
                    if body is not None:
                        headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status, resp.reason)
                    for name, value in resp.getheaders():
                        if name.lower() not in _SKIP:
                            self.send_header(name, value)
                    # HEAD answers carry the object's length, not the (empty) body's.
                    sent = resp.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", sent or str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_COPY = handle_one

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def fail_next(
        self,
        count: int,
        *,
        status: int = 503,
        retry_after: float | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next `count` requests (of `method`, if given) with `status`."""
        with self._lock:
            self._faults.append(_Fault(count, status, retry_after, method))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take(self, method: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method in (None, method):
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    self.failed += 1
                    return fault
        return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> HttpFaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

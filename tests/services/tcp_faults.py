"""A TCP proxy on loopback that cuts connections when a test says so: dropped connections
made to order, in front of a real sshd or Swift.

    proxy = TcpFaultProxy(target_port)  # listens on 127.0.0.1:proxy.port
    proxy.cut_after(down=1 << 20)       # cut the connection that carries the next MiB
                                        # from the server (counted from this call)
    proxy.cut_after(up=1 << 20)         # ... the next MiB to the server
    proxy.cut_after(down=n, times=None) # every time another n bytes have passed
    proxy.cut_after(down=n, then=1, times=None)  # after n bytes, then every byte
    proxy.cut_all()                     # cut every open connection now
    proxy.cuts                          # connections cut so far
    proxy.connections                   # connections accepted so far
    proxy.close()                       # cut every connection, accept no more

SSH clients check the host key of the port they dial: `SshdService.trust(proxy.port)`.
What a client says about a connection the proxy cut: `assert_said_lost(message, proxy.port)`.

A cut forwards exactly the bytes up to the limit, then resets both sides (SO_LINGER 0),
as a dead NAT entry or a crashed middlebox would; later connections pass untouched
unless the proxy is armed again; a client that reconnects gets through. Counting bytes,
not time, makes a cut land at the same place in a transfer on every run.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

UP, DOWN = "up", "down"

#: A Python exception's class name: never part of a message for people.
CLASS_NAME = re.compile(r"\b[A-Za-z]*(Error|Exception)\b")


def assert_said_lost(message: str, port: int, during: str = "") -> None:
    """`message` is one line saying the connection to the server on `port` was lost
    (`during` "login": during the login), in words, not as an exception class."""
    lost = f":{port} lost during {during}:" if during else f":{port} lost"
    assert "connection to " in message and lost in message, message
    assert "\n" not in message and not CLASS_NAME.search(message), message


@dataclass
class _Arm:
    left: int
    every: int
    times: int | None  # cuts still to make; None: no end


class _Link:
    """One proxied connection: the client's socket and ours to the server."""

    def __init__(self, client: socket.socket, server: socket.socket):
        self.client, self.server = client, server
        self.cut = False
        self.pumps = 2  # directions still running
        self.ended = threading.Event()  # both pumps are out of their socket calls

    def reset(self) -> None:
        """Close both sockets with a reset. The kernel sends it once no pump is inside a
        call on the socket any more (`ended`): a pump blocked in recv() holds it open."""
        for s in (self.client, self.server):
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()


class TcpFaultProxy:
    """The proxy, accepting connections on `port` from the moment it is made."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.cuts = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._arms: dict[str, _Arm] = {}
        self._links: list[_Link] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))  # a port no one can take first
        self.port: int = self._listener.getsockname()[1]
        self._closed = False
        self._spawn(self._accept)

    def _spawn(self, fn: Callable[..., None], *args: object) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    # -- control --------------------------------------------------------------------------

    def cut_after(
        self,
        *,
        down: int | None = None,
        up: int | None = None,
        then: int | None = None,
        times: int | None = 1,
    ) -> None:
        """Cut the connection over which the next `down` bytes from the server (or `up`
        bytes to it) pass, counting from now; again every `then` (default: as many)
        bytes after, `times` times in all (None: every time)."""
        with self._lock:
            for direction, limit in ((DOWN, down), (UP, up)):
                if limit is not None:
                    self._arms[direction] = _Arm(limit, then or limit, times)

    def disarm(self) -> None:
        with self._lock:
            self._arms.clear()

    def cut_all(self) -> None:
        """Cut every open connection now: when this returns, the resets are sent, so the
        client's next send on the connection fails."""
        with self._lock:
            links = [link for link in self._links if not link.cut]
            for link in links:
                link.cut = True
            self.cuts += len(links)
        for link in links:
            link.reset()
        for link in links:
            link.ended.wait(5)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (close does not)
        with contextlib.suppress(OSError):
            self._listener.close()
        self.disarm()
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.reset()
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> TcpFaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the proxy ------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            link = _Link(client, server)
            with self._lock:
                self._links.append(link)
                self.connections += 1
            self._spawn(self._pump, link, client, server, UP)
            self._spawn(self._pump, link, server, client, DOWN)

    def _take(self, direction: str, n: int) -> tuple[int, bool]:
        """Of `n` bytes about to pass, how many may, and whether the link is cut after."""
        with self._lock:
            arm = self._arms.get(direction)
            if arm is None:
                return n, False
            if n < arm.left:
                arm.left -= n
                return n, False
            allowed = arm.left
            if arm.times is not None:
                arm.times -= 1
            if arm.times == 0:
                del self._arms[direction]
            else:
                arm.left = arm.every
            return allowed, True

    def _pump(self, link: _Link, source: socket.socket, sink: socket.socket, way: str) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                allowed, cut = self._take(way, len(data))
                if allowed:
                    sink.sendall(data[:allowed])
                if cut:
                    with self._lock:
                        first = not link.cut
                        link.cut = True
                        self.cuts += first
                    link.reset()
                    break
        except OSError:
            pass
        # One side finished: pass the end on, as a plain TCP relay does.
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
        with self._lock:
            link.pumps -= 1
            last = link.pumps == 0
            if last and link in self._links:
                self._links.remove(link)
        if last:
            for s in (link.client, link.server):
                s.close()
            link.ended.set()

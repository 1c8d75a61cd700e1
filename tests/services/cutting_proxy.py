"""A TCP proxy on loopback that cuts connections when a test says so: how the SFTP tests
drop an SSH connection at a chosen moment, the way a flaky network or a restarted NAT does.

    proxy = CuttingProxy(target_port)
    proxy.cut()                      # every connection through it, now
    proxy.arm(20_000_000)            # the next connection to pass 20 MB server->client
    proxy.arm(1_000_000, upstream=True)  # ... or client->server
    proxy.close()

New connections are always accepted: a client that reconnects gets through.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


class CuttingProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1"):
        self.target = (host, target_port)
        self._server = socket.create_server((host, 0))
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._live: list[tuple[socket.socket, socket.socket]] = []
        self._armed: tuple[int, bool] | None = None
        self.connections = 0  # connections accepted so far
        self.cuts = 0  # connections cut so far
        self.cut_done = threading.Event()  # set whenever a connection was cut
        self._closed = False
        threading.Thread(target=self._accept, name="cutting-proxy", daemon=True).start()

    def arm(self, after: int, upstream: bool = False) -> None:
        """Cut the first connection whose bytes from the server (to it, with `upstream`)
        reach `after`, once."""
        with self._lock:
            self._armed = (after, upstream)
            self.cut_done.clear()

    def cut(self) -> None:
        """Cut every connection open now; both ends see it closed."""
        with self._lock:
            live, self._live = self._live, []
        for pair in live:
            self._close(pair)
        with self._lock:
            self.cuts += len(live)
        self.cut_done.set()

    def close(self) -> None:
        self._closed = True
        with suppress(OSError):  # wakes the accept() under way; close() alone does not
            self._server.shutdown(socket.SHUT_RDWR)
        with suppress(OSError):
            self._server.close()
        self.cut()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            pair = (client, upstream)
            with self._lock:
                self._live.append(pair)
                self.connections += 1
            threading.Thread(
                target=self._pump, args=(client, upstream, pair, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, pair, False), daemon=True
            ).start()

    def _pump(
        self,
        source: socket.socket,
        sink: socket.socket,
        pair: tuple[socket.socket, socket.socket],
        upstream: bool,
    ) -> None:
        passed = 0
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
                passed += len(data)
                with self._lock:
                    armed = self._armed
                    due = armed is not None and armed[1] == upstream and passed >= armed[0]
                    if due:
                        self._armed = None
                        if pair in self._live:
                            self._live.remove(pair)
                        self.cuts += 1
                if due:
                    self._close(pair)
                    self.cut_done.set()
                    return
        self._close(pair)
        with self._lock:
            if pair in self._live:
                self._live.remove(pair)

    @staticmethod
    def _close(pair: tuple[socket.socket, socket.socket]) -> None:
        for s in pair:
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with suppress(OSError):
                s.close()

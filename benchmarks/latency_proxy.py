"""A TCP proxy on loopback that adds a fixed delay each way: a far server, made near.

    with LatencyProxy(target_port, delay=0.010) as proxy:   # 20 ms round trip
        ssh -p {proxy.port} ...                             # reaches the target, late

Every chunk read from one side is written to the other `delay` seconds after it arrived,
in order; bandwidth is not limited, so what the delay costs a client is one `2 * delay`
per round trip it waits for. asyncio, on a thread of its own (one event loop, however
many connections). Bounded in time: after `lifetime` seconds the proxy closes every
connection and accepts no more, so a benchmark that hangs still ends. Loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from types import TracebackType

READ_SIZE = 256 * 1024


class LatencyProxy:
    """Listens on 127.0.0.1:`port` from `__enter__` to `__exit__` (or `lifetime` seconds)
    and forwards to 127.0.0.1:`target_port` with `delay` seconds added each way."""

    def __init__(self, target_port: int, delay: float = 0.010, lifetime: float = 900.0):
        self.target_port, self.delay, self.lifetime = target_port, delay, lifetime
        self.port = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="latency-proxy", daemon=True)

    def __enter__(self) -> LatencyProxy:
        self._thread.start()
        if not self._ready.wait(10) or not self.port:
            raise RuntimeError("the latency proxy did not start")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._ready.set()  # a failed start wakes __enter__ too
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                with contextlib.suppress(asyncio.CancelledError):  # closed: end quietly
                    await self._link(reader, writer)
            finally:
                tasks.discard(task)

        server = await asyncio.start_server(accepted, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), self.lifetime)
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def _link(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(self._pump(client_r, server_w), self._pump(server_r, client_w))
        finally:
            for w in (client_w, server_w):
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward `reader` to `writer`, each chunk `delay` seconds after it arrived."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            with contextlib.suppress(OSError):  # the other side is gone: so is this link
                while True:
                    due, data = await queue.get()
                    if not data:
                        writer.write_eof()
                        return
                    wait = due - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    writer.write(data)
                    await writer.drain()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(READ_SIZE)
                queue.put_nowait((time.monotonic() + self.delay, data))
                if not data:
                    break
            await sender
        except OSError:
            pass
        finally:
            if not sender.done():
                sender.cancel()

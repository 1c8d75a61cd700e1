"""`regtool serve`'s app on uvicorn, on a free loopback port, in a background thread.

reg = serve_registry(driver)      # a RunningRegistry; stopped after the test
reg.host, reg.url, reg.layout
reg = serve_registry(driver, uploads=lambda layout: UploadStore(layout, ...))
                                  # with an upload store of the test's (hooks, a clock)
reg = serve_registry(driver, foreign_urls=UrlPolicy(allow=None))
                                  # with the layer URLs a manifest may list
reg = serve_registry(driver, shutdown_grace=1)
                                  # stopping (`reg.stop()`) cuts requests short after 1 s
reg = serve_registry(driver, settings=ServerSettings(htpasswd=..., tls=...))
                                  # TLS, authentication, read-only... (`reg.url` https://)
reg = serve_registry(driver, guard=Guard(settings, LoginThrottle(sleep=...)))
                                  # with a guard of the test's
reg = serve_registry(driver, ops=Operations.from_settings(...))
                                  # metrics, health, notifications, purging (started)
local_registry                    # the same over a fresh local directory
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from regtool.cli.serve import SHUTDOWN_GRACE
from regtool.layout.detect import default_layout
from regtool.layout.v2 import V2Layout
from regtool.server import tls
from regtool.server.app import create_app
from regtool.server.auth.guard import Guard
from regtool.server.foreign_layers import UrlPolicy
from regtool.server.operations import Operations
from regtool.server.protocol import uvicorn_options
from regtool.server.settings import ServerSettings
from regtool.server.upload_store import UploadStore
from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver
from tests.interop.conftest import distribution_fs, image_tools, make_distribution
from tests.services import free_port

# The interop fixtures (distribution, umoci + skopeo), shared with tests/interop/.
__all__ = ["distribution_fs", "image_tools", "make_distribution"]


@dataclass
class RunningRegistry:
    host: str
    driver: Driver
    layout: V2Layout
    server: uvicorn.Server
    thread: threading.Thread
    root: Path | None = None
    tls: bool = False
    ops: Operations | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        if self.ops is not None:
            self.ops.close()


def start_registry(
    driver: Driver,
    root: Path | None = None,
    uploads: Callable[[V2Layout], UploadStore] | None = None,
    foreign_urls: UrlPolicy | None = None,
    shutdown_grace: int = SHUTDOWN_GRACE,
    settings: ServerSettings | None = None,
    guard: Guard | None = None,
    ops: Operations | None = None,
) -> RunningRegistry:
    layout = default_layout(driver)
    port = free_port()
    settings = guard.settings if guard else settings or ServerSettings()
    app = create_app(
        driver,
        None if ops is not None else layout,  # detected on the driver ops observe
        uploads(layout) if uploads else None,
        foreign_urls,
        settings=settings,
        guard=guard,
        ops=ops,
    )
    if ops is not None:
        ops.start()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        **uvicorn_options(shutdown_grace),  # the protocol `regtool serve` runs
        **tls.uvicorn_options(settings.tls),
    )
    tls.harden(config, settings.tls)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"regtool-serve-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("regtool serve did not start")
        time.sleep(0.01)
    host = f"127.0.0.1:{port}"
    return RunningRegistry(
        host, driver, layout, server, thread, root, settings.tls is not None, ops
    )


@pytest.fixture
def serve_registry() -> Iterator[Callable[..., RunningRegistry]]:
    started: list[RunningRegistry] = []

    def make(
        driver: Driver,
        root: Path | None = None,
        uploads: Callable[[V2Layout], UploadStore] | None = None,
        foreign_urls: UrlPolicy | None = None,
        shutdown_grace: int = SHUTDOWN_GRACE,
        settings: ServerSettings | None = None,
        guard: Guard | None = None,
        ops: Operations | None = None,
    ) -> RunningRegistry:
        reg = start_registry(
            driver, root, uploads, foreign_urls, shutdown_grace, settings, guard, ops
        )
        started.append(reg)
        return reg

    yield make
    for reg in started:
        reg.stop()


@pytest.fixture
def local_registry(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> RunningRegistry:
    root = tmp_path / "store"
    root.mkdir()
    return serve_registry(LocalDriver(root), root)

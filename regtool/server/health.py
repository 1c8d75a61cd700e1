"""Storage health, as distribution's `health` package checks it: a listing of the
store's root every `interval` seconds in a thread; once `threshold` checks in a row
failed (`threshold` 0: the first), the check reports the last failure until one
passes again. `/debug/health` answers `{check: reason}` with 503 while any check fails,
`{}` with 200 otherwise; meanwhile every request on the registry's own address is
answered 503 `UNAVAILABLE` (distribution's `health.Handler`: `gate`)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import Scope

from regtool.server.errors import Unavailable, error_response
from regtool.server.ops_settings import HealthSettings
from regtool.storage.base import Driver

log = logging.getLogger(__name__)


def storage_probe(driver: Driver) -> Callable[[], None]:
    """A check of `driver`: list its root; a missing root still answers (distribution:
    the backend responds), anything else raised is the failure."""

    def probe() -> None:
        with contextlib.suppress(FileNotFoundError):
            driver.list("")

    return probe


class HealthCheck:
    """One named periodic check with a failure threshold. `check_now()` runs it once
    (the thread started by `start()` calls it every `interval` seconds; tests call it
    directly); `failure` is the reason it reports, None while healthy. `on_change(ok)`
    is told each result."""

    def __init__(
        self,
        name: str,
        probe: Callable[[], None],
        settings: HealthSettings,
        on_change: Callable[[bool], None] | None = None,
    ):
        self.name = name
        self.probe = probe
        self.settings = settings
        self.on_change = on_change
        self._failures = 0
        self._last: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def failure(self) -> str | None:
        with self._lock:
            if self._failures >= max(self.settings.threshold, 1):
                return self._last
            return None

    def check_now(self) -> str | None:
        """Run the probe once and record the outcome; returns `failure` after it."""
        try:
            self.probe()
            error = None
        except Exception as e:  # any failure of the storage is the check's answer
            error = str(e) or type(e).__name__
        with self._lock:
            was = self._failures >= max(self.settings.threshold, 1)
            if error is None:
                self._failures = 0
            elif self._failures < max(self.settings.threshold, 1):
                self._failures += 1
            self._last = error
            now = self._failures >= max(self.settings.threshold, 1)
        if now != was:
            if now:
                log.error("health check %s failing: %s", self.name, error)
            else:
                log.warning("health check %s passes again", self.name)
        if self.on_change is not None:
            self.on_change(not now)
        return self.failure

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"health-{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.interval):
            self.check_now()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class Health:
    """The checks of one server (none unless `health.storagedriver.enabled`)."""

    def __init__(self, checks: list[HealthCheck] | None = None):
        self.checks = checks or []

    def status(self) -> dict[str, str]:
        """`{check name: reason}` of the checks failing now."""
        return {c.name: reason for c in self.checks if (reason := c.failure) is not None}

    def body(self) -> tuple[int, bytes]:
        """`/debug/health`'s status and JSON body."""
        status = self.status()
        return (503 if status else 200), json.dumps(status).encode()

    def start(self) -> None:
        for check in self.checks:
            check.start()

    def close(self) -> None:
        for check in self.checks:
            check.close()


def _from_a_browser(scope: Scope) -> bool:
    """Whether the request asks for a page (`Accept: text/html`): a browser, sent on to
    the web UI, where load balancers' probes get the empty 200."""
    accept = dict(scope["headers"]).get(b"accept", b"")
    return b"text/html" in accept.lower()


def gate(health: Health, scope: Scope) -> Response | None:
    """The health gate's own answer to a request, if it answers it: 503 `UNAVAILABLE`
    while a health check fails, an empty 200 to `/` otherwise (distribution's
    `health.Handler` around its `alive("/")`, which load balancers probe; a browser's `/`
    goes on to the web UI); None for the app to answer."""
    if health.checks and health.status():
        detail = "health check failed: please see /debug/health"
        return error_response(Unavailable("service unavailable", detail))
    if scope["path"] == "/" and not _from_a_browser(scope):
        return Response(headers={"Cache-Control": "no-cache"})
    return None

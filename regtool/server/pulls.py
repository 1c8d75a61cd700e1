"""Recording pulls (`GET /v2/<name>/manifests/<ref>`) for `regtool prune
--keep-pulled-within`, coarsely: at most one write per manifest per `interval` from this
server, after the response, never failing or slowing a pull (paths: `layout/pulls.py`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.background import BackgroundTask

from regtool.layout.pulls import pull_record, since_file, stamp
from regtool.layout.v2 import V2Layout
from regtool.oci import Digest

log = logging.getLogger(__name__)

#: How stale a record may be: a manifest is recorded at most once per hour per server.
INTERVAL = 3600.0


class PullRecorder:
    def __init__(
        self,
        layout: V2Layout,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool = True,
    ):
        self.layout, self.interval, self.clock = layout, interval, clock
        self.enabled = enabled  # off on a read-only server, which writes nothing
        self._last: dict[tuple[str, Digest], float] = {}
        self._lock = threading.Lock()
        self._started = False
        self.writes = 0

    def pulled(self, name: str, digest: Digest) -> BackgroundTask | None:
        """The write to run after serving a pull of `digest` from `name`, or None while
        the manifest's record is younger than `interval` (as this server wrote it), and
        always on a recorder that is not `enabled`."""
        if not self.enabled:
            return None
        now = self.clock()
        with self._lock:
            last = self._last.get((name, digest))
            if last is not None and now - last < self.interval:
                return None
            self._last[(name, digest)] = now
        return BackgroundTask(self._write, name, digest)

    def _write(self, name: str, digest: Digest) -> None:
        when = stamp(datetime.now(UTC))
        try:
            if not self._started:  # when records begin: before it, "not pulled" is unknown
                self.layout.driver.put_if_absent(since_file(self.layout), when)
                self._started = True
            self.layout.driver.put(pull_record(self.layout, name, digest), when)
            self.writes += 1
        except Exception as e:  # a record is a hint: its failure never fails the pull
            log.warning("pull record of %s@%s not written: %s", name, digest, e)

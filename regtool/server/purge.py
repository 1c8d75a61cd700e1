"""Upload purging in the server, as distribution's `startUploadPurger`: every `interval`
seconds (the first run after a random delay, so that servers sharing a store spread
their runs), uploads untouched for `age` are deleted (`uploads.age`: gc's age rule). Each
is deleted under its lease (`uploads.purge`): never one a request is writing, and two
purges running at once on one store (or one and `regtool gc`) each take an upload or
leave it. An upload whose data's segments a blob reads too (what a distribution commit cut
short leaves) goes without them (`uploads.shared`)."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from regtool.concurrency import DEFAULT_JOBS
from regtool.errors import RegtoolError
from regtool.facts import ManifestFacts
from regtool.segment_names import SegmentNames
from regtool.server.ops_settings import UploadPurgeSettings
from regtool.server.upload_store import UploadStore
from regtool.uploads.age import OldUpload, all_uploads, old_uploads
from regtool.uploads.shared import readers_of

log = logging.getLogger(__name__)

#: distribution's longest first delay (seconds): a random whole number of minutes below 60.
MAX_FIRST_DELAY = 3600.0


@dataclass
class PurgeRun:
    """What one run found (`old`) and deleted (`deleted`: (repository, upload id))."""

    old: list[OldUpload] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    dry_run: bool = False


class UploadPurger:
    """Purges `uploads` on the schedule `settings` give, in a thread (`start`, `close`);
    `run_once()` is one run. `on_run(outcome, deleted)` is told each run's outcome ("ok"
    or "failed") and number deleted; `after_find` runs between finding and deleting
    (a hook for tests). `facts` keeps what large objects name (`segment_names`)."""

    def __init__(
        self,
        uploads: UploadStore,
        settings: UploadPurgeSettings,
        on_run: Callable[[str, int], None] | None = None,
        after_find: Callable[[], None] | None = None,
        facts: ManifestFacts | None = None,
    ):
        self.uploads = uploads
        self.settings = settings
        self.on_run = on_run
        self.after_find = after_find
        self.facts = facts
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, now: datetime | None = None) -> PurgeRun:
        """Delete (or with `dry_run`, only list) the uploads untouched for `age`.
        Storage faults are raised."""
        layout = self.uploads.layout
        now = now or datetime.now(UTC)
        age = timedelta(seconds=self.settings.age)
        uploads = all_uploads(layout)
        run = PurgeRun(old_uploads(layout, uploads, now - age), dry_run=self.settings.dry_run)
        if self.after_find is not None:
            self.after_find()
        limit = now - age
        names = SegmentNames(layout.driver, self.facts, DEFAULT_JOBS)
        going = {(u.repository, u.upload_id) for u in run.old}
        staying = [
            f
            for key, files in uploads.items()
            if key not in going
            for f in files
            if f.path == layout.upload_data(*key) and not f.size
        ]
        shared = readers_of(layout, run.old, names, staying)
        if self.facts is not None:
            self.facts.flush()  # what the HEADs learnt, for the next run and a restart
        for old in run.old:
            key = (old.repository, old.upload_id)
            alone = [layout.upload_data(*key)] if key in shared else []
            if alone:
                log.warning(
                    "upload purge%s: the segments of upload %s of %s stay, %s reads them too",
                    " (dry run)" if self.settings.dry_run else "",
                    old.upload_id,
                    old.repository,
                    shared[key],
                )
            if self.settings.dry_run:
                log.info(
                    "upload purge (dry run) would delete upload %s of %s",
                    old.upload_id,
                    old.repository,
                )
            elif self.uploads.purge(old.repository, old.upload_id, limit, alone):
                run.deleted.append((old.repository, old.upload_id))
        return run

    def _run_logged(self) -> None:
        try:
            run = self.run_once()
        except (RegtoolError, OSError) as e:
            log.error("upload purge failed: %s", e)
            if self.on_run is not None:
                self.on_run("failed", 0)
            return
        if run.deleted or run.old:
            log.info(
                "upload purge: %d uploads older than %gs, %d deleted",
                len(run.old),
                self.settings.age,
                len(run.deleted),
            )
        if self.on_run is not None:
            self.on_run("ok", len(run.deleted))

    def first_delay(self) -> float:
        if self.settings.first_delay is not None:
            return self.settings.first_delay
        return random.uniform(0, min(self.settings.interval, MAX_FIRST_DELAY))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="upload-purge", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        if self._stop.wait(self.first_delay()):
            return
        while True:
            self._run_logged()
            if self._stop.wait(self.settings.interval):
                return

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

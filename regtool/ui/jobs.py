"""Long runs started from the UI, each in a thread of its own, whose progress the page
polls (`status()`):

- `VerifyJob`: `inspect.verify_registry` of one repository or of the whole store;
  progress in bytes hashed of bytes to hash (the verifier's `Progress`).
- `StorageJob`: the storage page's summary (`StoreView.storage`: a listing of every
  repository, then `gc --dry-run`); gc tells no progress of its own, so the store is
  read through a driver that counts what is asked of it: the files listed and the
  requests made, against those of the last run where there was one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from regtool.errors import RegtoolError
from regtool.inspect.verify import Verification, verify_registry
from regtool.storage.base import Driver, Entry, Prune
from regtool.storage.observed import ObservedDriver
from regtool.ui.data import JOBS, StorageSummary, StoreView, on_driver

log = logging.getLogger(__name__)

#: Problems a verification's status lists at most.
PROBLEMS_SHOWN = 100
#: Verifications running at once (each hashes with `JOBS` threads of its own).
VERIFYING_AT_ONCE = 2
#: Verifications remembered (their outcome shown); past it, the oldest ended are dropped.
VERIFICATIONS_KEPT = 100


class Busy(RegtoolError):
    """As many verifications as the UI runs at once are under way."""


@dataclass
class Job:
    """What every job has: when it began, its outcome, a lock for its counters."""

    started: float = field(default_factory=time.time, init=False)
    error: str | None = field(default=None, init=False)
    lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def finished(self) -> bool:
        raise NotImplementedError

    @property
    def what(self) -> str:
        """The job in a log line."""
        raise NotImplementedError

    def run(self, work: Callable[[], None]) -> None:
        """`work()`, its expected failures kept as `error` for the page and logged."""
        try:
            work()
        except RegtoolError as e:
            self.error = str(e)
            log.error("%s failed: %s", self.what, e)
        except Exception as e:  # a bug: shown, and the page stops waiting
            self.error = f"{type(e).__name__}: {e}"
            raise


@dataclass
class VerifyJob(Job):
    """A verification of repository `name`, or of the whole store (`name` None)."""

    name: str | None = None
    expected: int = 0
    done: int = 0
    result: Verification | None = None

    # `inspect.verify.Progress`, called from the verifier's threads
    def expect(self, nbytes: int) -> None:
        with self.lock:
            self.expected += nbytes

    def advance(self, nbytes: int) -> None:
        with self.lock:
            self.done += nbytes

    @property
    def finished(self) -> bool:
        return self.result is not None or self.error is not None

    @property
    def what(self) -> str:
        return f"UI: verifying {self.name if self.name is not None else 'the whole store'}"

    def status(self) -> dict[str, Any]:
        """What the page polls: `state` running|ok|problems|failed, bytes, problems."""
        with self.lock:
            doc: dict[str, Any] = {"expected": self.expected, "done": self.done}
        if self.error is not None:
            doc.update(state="failed", error=self.error)
        elif self.result is None:
            doc.update(state="running")
        else:
            problems = self.result.problems + self.result.faults
            doc.update(
                state="ok" if self.result.ok else "problems",
                problems=[f"{p.object}: {p.detail}" for p in problems[:PROBLEMS_SHOWN]],
                tags=len(self.result.results),
            )
        return doc


@dataclass
class StorageJob(Job):
    """The storage page's summary being read; `expected`: the requests and files listed
    of the last run (0: none yet, so no end is known)."""

    expected: int = 0
    step: str = "starting"
    listed: int = 0  # files named by listings
    requests: int = 0  # calls made to the driver, a listing counting once
    result: StorageSummary | None = None

    @property
    def finished(self) -> bool:
        return self.result is not None or self.error is not None

    @property
    def what(self) -> str:
        return "UI: reading the storage summary"

    @property
    def done(self) -> int:
        with self.lock:
            return self.listed + self.requests

    def observe(self, operation: str, failed: bool) -> None:
        with self.lock:
            self.requests += 1

    def saw(self, count: int) -> None:
        with self.lock:
            self.listed += count

    def begin(self, step: str) -> None:
        with self.lock:
            self.step = step

    def status(self) -> dict[str, Any]:
        """What the page polls: `state` running|done|failed, the step, its counts."""
        with self.lock:
            doc: dict[str, Any] = {
                "step": self.step,
                "listed": self.listed,
                "requests": self.requests,
                "done": self.listed + self.requests,
                "expected": max(self.expected, self.listed + self.requests) if self.expected else 0,
            }
        if self.error is not None:
            doc.update(state="failed", error=self.error)
        else:
            doc.update(state="running" if self.result is None else "done")
        return doc


class CountingDriver(ObservedDriver):
    """A driver that tells `job` of each call and of each file its walks name."""

    def __init__(self, inner: Driver, job: StorageJob):
        super().__init__(inner, job.observe)
        self.job = job

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        entries = super().walk(prefix, temporaries=temporaries, prune=prune)
        batch = 0
        for entry in entries:
            batch += 1
            if batch == 256:  # not a lock per file
                self.job.saw(batch)
                batch = 0
            yield entry
        self.job.saw(batch)

    def list(self, prefix: str = "") -> list[Entry]:
        entries = super().list(prefix)
        self.job.saw(len(entries))
        return entries


class Jobs:
    """The UI's jobs: one verification per repository (and one of the whole store) at a
    time, `VERIFYING_AT_ONCE` in all, the last `VERIFICATIONS_KEPT` remembered; one
    storage summary at a time, the last kept."""

    def __init__(self, view: StoreView):
        self.view = view
        self.verifications: dict[str | None, VerifyJob] = {}
        self.summary: StorageJob | None = None  # the last one begun
        self.summarised: StorageJob | None = None  # the last one that ended with a result
        self.lock = threading.Lock()

    def verification(self, name: str | None) -> VerifyJob | None:
        """The last verification of `name` (None: of the whole store)."""
        with self.lock:
            return self.verifications.get(name)

    def verify(self, name: str | None) -> VerifyJob:
        """A new verification of `name` (None: the whole store), unless one is under way
        (that one is returned); `Busy` when `VERIFYING_AT_ONCE` are. The caller makes
        sure that the repository exists."""
        with self.lock:
            jobs = self.verifications
            job = jobs.get(name)
            if job is not None and not job.finished:
                return job
            running = sum(not j.finished for j in jobs.values())
            if running >= VERIFYING_AT_ONCE:
                raise Busy(
                    f"{running} verifications are running, as many as run at once: "
                    "try again when one has ended"
                )
            jobs.pop(name, None)  # the newest last, in the order they are dropped in
            job = jobs[name] = VerifyJob(name)
            ended = [n for n, j in jobs.items() if j.finished]
            for old in ended[: max(0, len(jobs) - VERIFICATIONS_KEPT)]:
                del jobs[old]
        view = self.view

        def work() -> None:
            targets = [] if name is None else [name]
            job.result = verify_registry(
                view.layout,
                view.location,
                targets,
                everything=name is None,
                jobs=JOBS,
                progress=job,
            )

        threading.Thread(target=job.run, args=(work,), daemon=True).start()
        return job

    def storage(self) -> tuple[StorageJob | None, StorageJob | None]:
        """(the last storage summary begun, the last one that ended with a result)."""
        with self.lock:
            last = self.summary
            if last is not None and last.result is not None:
                self.summarised = last
            return last, self.summarised

    def read_storage(self) -> StorageJob:
        """A new storage summary, unless one is under way (that one is returned)."""
        with self.lock:
            last = self.summary
            if last is not None and not last.finished:
                return last
            if last is not None and last.result is not None:
                self.summarised = last
            expected = self.summarised.done if self.summarised is not None else 0
            job = self.summary = StorageJob(expected=expected)
        view = self.view

        def work() -> None:
            through = on_driver(view.layout, CountingDriver(view.layout.driver, job))
            job.result = view.storage(through, job.begin)

        threading.Thread(target=job.run, args=(work,), daemon=True).start()
        return job

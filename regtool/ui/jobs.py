"""Verifications started from the UI: `inspect.verify_registry` of one repository in a
thread of its own, its progress (bytes hashed of bytes to hash) read by the page."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from regtool.errors import RegtoolError
from regtool.inspect.verify import Verification, verify_registry
from regtool.ui.data import JOBS, StoreView


@dataclass
class VerifyJob:
    name: str
    started: float = field(default_factory=time.time)
    expected: int = 0
    done: int = 0
    result: Verification | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
                problems=[f"{p.object}: {p.detail}" for p in problems[:100]],
                tags=len(self.result.results),
            )
        return doc


class Verifications:
    """One verification per repository at a time; the last one's result is kept."""

    def __init__(self, view: StoreView):
        self.view = view
        self.jobs: dict[str, VerifyJob] = {}
        self.lock = threading.Lock()

    def get(self, name: str) -> VerifyJob | None:
        with self.lock:
            return self.jobs.get(name)

    def start(self, name: str) -> VerifyJob:
        """A new run for `name`, unless one is under way (that one is returned)."""
        with self.lock:
            job = self.jobs.get(name)
            if job is not None and not job.finished:
                return job
            job = self.jobs[name] = VerifyJob(name)
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return job

    def _run(self, job: VerifyJob) -> None:
        view = self.view
        try:
            job.result = verify_registry(
                view.layout, view.location, [job.name], jobs=JOBS, progress=job
            )
        except RegtoolError as e:
            job.error = str(e)
        except Exception as e:  # a bug: shown, and the page stops waiting
            job.error = f"{type(e).__name__}: {e}"
            raise

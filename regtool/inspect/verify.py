"""`regtool verify`: are the images of a store whole? Results are data; `cli/` renders them.

V2: tag link -> manifest (re-hashed, parsed, indexes followed to every child) -> config
and layers (exist, linked in the repository, right size, content hashes to the digest).
V1: tag -> image id -> every image of its ancestry (json, ancestry chain, layer, checksum).
Each blob or V1 image is checked once per run, whatever number of tags share it; blobs
hash `jobs` at a time. `--all` adds storage-wide checks (link files whose blob is missing,
link files that do not name their blob), `--blobs` re-hashes every blob in storage,
referenced or not. `--all` also lists writers' temp files older than `LEFTOVER_AGE`
(status `leftover`: what a crash or a failed write left, which gc removes); they fail
nothing, as no image is damaged by them.

Storage faults are not findings. One met reading an object (a timeout, a dropped
connection, throttling that outlasts the retries) is recorded for that object, kind
`unreadable`, status `error`, and the run goes on; the storage as a whole gone
(unreachable, credentials refused) stops the run (raised). See `fault_detail`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Generic, Protocol, TypeVar

from regtool.errors import (
    AuthenticationFailed,
    NotFound,
    RegtoolError,
    Unreachable,
    UsageError,
    is_fault,
)
from regtool.layout.blobs import CHUNK_SIZE
from regtool.layout.detect import Layout
from regtool.layout.v1 import canonical_name
from regtool.layout.v2 import V2Layout
from regtool.oci import Digest, check_name, check_tag

#: Problem kinds, and the status each gives the image it is found in.
KIND_STATUS = {
    "missing": "missing",  # an object that should exist does not
    "unlinked": "missing",  # the blob exists, but the repository does not link it
    "link": "corrupt",  # the repository's link file names no blob, or another one
    "size": "corrupt",  # stored size differs from the descriptor's
    "digest": "corrupt",  # content hashes to something else
    "invalid": "corrupt",  # does not parse, or contradicts itself (V1 id, ancestry)
    "incomplete": "corrupt",  # V1: a leftover `_inprogress` (the registry refuses it)
    "unreadable": "error",  # storage failed while reading it: a fault, not a finding
    "foreign": "skipped",  # a non-distributable layer with `urls`, not in storage
    "unverifiable": "skipped",  # V1: only tarsum checksums, which regtool cannot compute
    "leftover": "leftover",  # a writer's temp file a crash left: wasted space, no damage
}
#: The worst status wins: a tag with a corrupt layer and a missing one is corrupt; one
#: that could not be read in full, but shows no damage, is `error`.
STATUS_ORDER = ("corrupt", "missing", "error", "skipped", "leftover", "ok")
#: Statuses that are findings about the registry (exit 1).
FAILING = ("corrupt", "missing")
#: A writer's temp file younger than this may be a write in progress: never reported.
LEFTOVER_AGE = timedelta(hours=1)

#: Buffers in flight stay under this however many `--jobs` (memory flat).
BUFFER_BUDGET = 32 * CHUNK_SIZE


def short(digest: Digest | str) -> str:
    """`sha256:0123456789ab…`, for messages; full digests go in `Problem.object`."""
    text = str(digest)
    alg, sep, rest = text.partition(":")
    if not sep:
        return text[:12] + "…" if len(text) > 12 else text
    return f"{alg}:{rest[:12]}…"


@dataclass(frozen=True)
class Problem:
    object: str  # a digest, a V1 image id, or `repository:tag` for a tag link
    kind: str  # a key of KIND_STATUS
    detail: str  # in words, for people

    @property
    def status(self) -> str:
        return KIND_STATUS[self.kind]

    @property
    def fails(self) -> bool:
        """A finding of damage (not a skip, not a storage fault)."""
        return self.status in FAILING


@dataclass
class VerifyResult:
    """One tag (or manifest, or a storage-wide finding when `tag` is None)."""

    repository: str | None
    tag: str | None
    digest: str | None = None
    image_id: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def status(self) -> str:
        found = {p.status for p in self.problems}
        return next((s for s in STATUS_ORDER if s in found), "ok")

    def add(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            if problem not in self.problems:
                self.problems.append(problem)


@dataclass
class Verification:
    location: str
    layout: str
    results: list[VerifyResult] = field(default_factory=list)
    images: int = 0  # distinct manifests (V2) or images (V1) checked
    blobs: int = 0  # distinct blobs (V2) or layers (V1) checked
    bytes_hashed: int = 0
    seconds: float = 0.0
    quick: bool = False
    warnings: list[str] = field(default_factory=list)  # what was not checked, and why

    @property
    def problems(self) -> list[Problem]:
        """Distinct findings of damage (skips and storage faults are not)."""
        seen = {p: None for r in self.results for p in r.problems if p.fails}
        return list(seen)

    @property
    def faults(self) -> list[Problem]:
        """Distinct objects storage failed to read (status `error`): the run is
        incomplete."""
        seen = {p: None for r in self.results for p in r.problems if p.status == "error"}
        return list(seen)

    @property
    def ok(self) -> bool:
        """Everything checked is whole, and everything was checked."""
        return not self.problems and not self.faults

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


class Progress(Protocol):
    """Told how many bytes there are to hash, then of each chunk hashed, from any thread."""

    def expect(self, nbytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...


class NoProgress:
    def expect(self, nbytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Once(Generic[K, V]):
    """Computes each key's value once, however many threads ask at the same time: the
    first computes, the others wait for its answer."""

    def __init__(self, compute: Callable[[K], V]):
        self._compute = compute
        self._lock = threading.Lock()
        self._futures: dict[K, Future[V]] = {}

    def __call__(self, key: K) -> V:
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if future is None:
                future = self._futures[key] = Future()
        if owner:
            try:
                future.set_result(self._compute(key))
            except BaseException as e:
                future.set_exception(e)
        return future.result()

    def seed(self, key: K, value: V) -> None:
        """Record a value found another way, unless one is known already."""
        with self._lock:
            if key not in self._futures:
                future: Future[V] = Future()
                future.set_result(value)
                self._futures[key] = future

    def __contains__(self, key: object) -> bool:
        return key in self._futures

    def values(self) -> dict[K, V]:
        """Every value computed so far (failed computations left out)."""
        with self._lock:
            futures = dict(self._futures)
        return {k: f.result() for k, f in futures.items() if f.done() and f.exception() is None}


@dataclass(frozen=True)
class Target:
    """What the user named: a repository, `name:tag` or `name@digest`."""

    name: str
    tag: str | None = None
    digest: Digest | None = None


def parse_target(text: str, layout_kind: str) -> Target:
    if "@" in text:
        name, _, ref = text.partition("@")
        if layout_kind == "v1":
            raise UsageError(f"{text}: V1 stores have no digests; name a tag (name:tag)")
        return Target(check_name(name), digest=Digest.parse(ref))
    colon, slash = text.rfind(":"), text.rfind("/")
    name, tag = (text[:colon], check_tag(text[colon + 1 :])) if colon > slash else (text, None)
    if layout_kind == "v1":
        return Target(canonical_name(name), tag)
    return Target(check_name(name), tag)


def chunk_size_for(jobs: int) -> int:
    """1 MiB chunks, smaller when many jobs would otherwise hold many buffers at once."""
    return max(64 * 1024, min(CHUNK_SIZE, BUFFER_BUDGET // max(jobs, 1)))


def verify_registry(
    layout: Layout,
    location: str,
    targets: Iterable[str] = (),
    *,
    everything: bool = False,
    blobs: bool = False,
    quick: bool = False,
    jobs: int = 16,
    progress: Progress | None = None,
) -> Verification:
    """Verify the named targets, or every tag with `everything`; with `blobs` also re-hash
    every blob in storage. `NotFound` for an unknown repository or tag, `UsageError` for
    a malformed target or nothing to do."""
    names = list(targets)
    if everything and names:
        raise UsageError("give either --all or repositories/tags to verify, not both")
    if not everything and not names and not blobs:
        raise UsageError("nothing to verify: name a tag, a repository or use --all")
    parsed = [parse_target(t, layout.kind) for t in names]
    started = time.monotonic()
    verification = Verification(location, layout.kind, quick=quick)
    options = Options(everything, blobs, quick, jobs, progress or NoProgress())
    # the two verifiers build on the types above, so they are imported here, not at the top
    if isinstance(layout, V2Layout):
        from regtool.inspect.verify_v2 import verify_v2

        verify_v2(layout, parsed, options, verification)
    else:
        from regtool.inspect.verify_v1 import verify_v1

        verify_v1(layout, parsed, options, verification)
    verification.seconds = time.monotonic() - started
    return verification


@dataclass(frozen=True)
class Options:
    everything: bool
    blobs: bool
    quick: bool
    jobs: int
    progress: Progress

    @property
    def chunk_size(self) -> int:
        return chunk_size_for(self.jobs)


def not_found(what: str, location: str) -> NotFound:
    return NotFound(f"{what} not found in {location}")


def fault_detail(error: BaseException) -> str:
    """The words for a storage fault met reading one object, for an `unreadable` problem.
    Raises `error` itself when it is not such a fault: damage is for the caller to judge,
    and storage gone as a whole (unreachable, credentials refused) ends the run."""
    if not is_fault(error) or isinstance(error, Unreachable | AuthenticationFailed):
        raise error
    if isinstance(error, OSError) and not isinstance(error, RegtoolError):
        return f"storage failed: {error.strerror or error}"
    return f"storage failed: {error}"


def raise_failures(outcomes: dict[K, V | Exception], what: str) -> dict[K, V]:
    """The results of a `map_outcomes` whose work records every expected failure itself:
    a regtool or OS error left over (the storage gone) is raised as it is, anything else
    as a bug in checking `what`."""
    results: dict[K, V] = {}
    for key, outcome in outcomes.items():
        if isinstance(outcome, RegtoolError | OSError):
            raise outcome
        if isinstance(outcome, Exception):
            raise RuntimeError(f"checking {what} {key} failed") from outcome
        results[key] = outcome
    return results

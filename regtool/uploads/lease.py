"""Leases on uploads: which one writer may append to an upload, complete it, or delete
it (a request of `regtool serve`, a purge of the server or of `regtool gc`).

Several `regtool serve` processes in front of one store act as one registry, so a lease
lives in storage beside its upload (`V2Layout.upload_lease`): a small file holding
`<token> <expires> <committed>` in ASCII, a random hex token, a Unix time in seconds and
the size in bytes the upload held when the lease was written. Bytes a holder is still
appending may already be in the upload's data (appended in place, or as segments), so
while a lease is in force that size, not a stat of the data, is what the upload holds
(`committed_size`); the holder's last commit shows there at its next renewal, or once it
releases the lease.

- Taking one is `Driver.put_if_absent`: atomic on local and SFTP. On Swift two creates in
  flight at once can both succeed (the last one's content stays), so the taker reads its
  token back, and a holder reads it again at least every `CHECK_EVERY` seconds while
  writing and before each commit (`check`). What Swift still allows: a loser of such a
  race writing before the winner's create landed; every commit then compares the size
  stored with the size written.
- A holder renews its lease every `ttl / 4` (`renew`, driven by the request handling it)
  and counts it lost once `ttl / 2` passed without a renewal: it then never writes again.
  Others may take a lease over only after `ttl`, so hosts' clocks may differ by up to
  `ttl / 2`.
- Taking over an expired lease (its holder crashed) does not replace the file, which two
  takers could both do: it creates the next generation, `lease.<n+1>`, which again only
  one can create. An upload whose lease was ever taken over is `doubtful`: what its
  crashed holder wrote last is unknown, so its hash is always recomputed from storage.
- A lease also names its holder process where it can (`holder.py`, Linux): a lease whose
  holder ran on this host's boot, in this pid namespace, and no longer runs is over at
  once, not after `ttl`: a server restarted after a crash, or `regtool gc`, need not wait.
  A holder elsewhere is known only by its lease's expiry.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from regtool.errors import RegtoolError
from regtool.storage.base import Driver
from regtool.uploads.holder import current_holder, holder_gone

#: Seconds a lease lasts without renewal.
LEASE_TTL = 120.0
#: Generations followed before giving up (each is a crashed holder's takeover).
MAX_GENERATIONS = 64
#: While writing, a holder reads its lease back at least this often (seconds).
CHECK_EVERY = 1.0

_CONTENT_RE = re.compile(
    r"([0-9a-f]{32}) ([0-9]{1,12}(?:\.[0-9]{1,6})?)(?: ([0-9]{1,18}))?(?: ([0-9a-f/-]{1,128}))?",
    re.ASCII,
)


class LeaseBusy(RegtoolError):
    """Another holder's lease on the upload is in force, or this holder's was lost (or
    the upload changed under it): refused at once, not waited for. `size`: the bytes the
    upload holds (committed: without what a holder is still appending), 0 if unknown."""

    def __init__(self, message: str, size: int):
        super().__init__(message)
        self.size = size


@dataclass(frozen=True)
class LeaseTerms:
    """How long leases last (seconds), the clock (Unix seconds) they are judged by, how
    often a holder renews (by default `ttl / 4`, seconds of `time.monotonic`), and how
    often a writing holder reads its lease back (`check_every`, seconds)."""

    ttl: float = LEASE_TTL
    clock: Callable[[], float] = time.time
    renew_interval: float | None = None
    check_every: float = CHECK_EVERY

    @property
    def renew_every(self) -> float:
        return self.ttl / 4 if self.renew_interval is None else self.renew_interval


@dataclass(frozen=True)
class _Record:
    """What a lease file holds; `committed` is None in one written without it."""

    token: str
    expires: float
    committed: int | None
    holder: str | None = None  # `holder.current()` of the process that wrote it

    def in_force(self, now: float) -> bool:
        """Unexpired at `now` (Unix seconds), and its holder not known to be gone."""
        return self.expires > now and not holder_gone(self.holder)


def _read(driver: Driver, path: str) -> _Record | None:
    """The lease at `path`; None if absent. Unreadable content counts as long expired:
    nothing regtool writes looks like that."""
    try:
        data = driver.get(path)
    except FileNotFoundError:
        return None
    m = _CONTENT_RE.fullmatch(data.decode("ascii", "replace"))
    if m is None:
        return _Record("", 0.0, None)
    committed = None if m.group(3) is None else int(m.group(3))
    return _Record(m.group(1), float(m.group(2)), committed, m.group(4))


def _in_force(driver: Driver, path_of: Callable[[int], str], terms: LeaseTerms) -> _Record | None:
    """The lease in force at `path_of(0)`, `path_of(1)`...; None when none is."""
    now = terms.clock()
    for generation in range(MAX_GENERATIONS):
        record = _read(driver, path_of(generation))
        if record is None:
            return None
        if record.in_force(now):
            return record
    return None


def committed_size(driver: Driver, path_of: Callable[[int], str], terms: LeaseTerms) -> int | None:
    """The size (bytes) the holder of the lease in force at `path_of(0)`, `path_of(1)`...
    recorded as committed; None when no lease is in force (or it recorded none)."""
    record = _in_force(driver, path_of, terms)
    return None if record is None else record.committed


def in_force(driver: Driver, path_of: Callable[[int], str], terms: LeaseTerms) -> bool:
    """Whether a lease is in force at `path_of(0)`, `path_of(1)`... (one GET for each
    generation up to it): someone is writing the upload, and a purge would keep it."""
    return _in_force(driver, path_of, terms) is not None


class Lease:
    """A lease this process holds. Thread-safe: a request's writes and its renewals run
    in different worker threads."""

    def __init__(
        self,
        driver: Driver,
        path: str,
        generation: int,
        token: str,
        terms: LeaseTerms,
        committed: int,
    ):
        self.driver = driver
        self.path = path
        self.generation = generation
        self.token = token
        self.terms = terms
        #: The upload's committed size (bytes), written into the lease at each renewal.
        self.committed = committed
        self._renewed = terms.clock()
        self._checked = float("-inf")  # time.monotonic() of the last read-back
        self._lost = False
        # Held across a renewal's requests, so that a release or a completion (which
        # deletes the upload) never races a renewal writing the lease file again.
        self._lock = threading.RLock()

    @property
    def held(self) -> bool:
        """Whether this holder may still hold the lease (as far as it knows)."""
        return not self._lost

    @property
    def doubtful(self) -> bool:
        """Whether the upload's lease was ever taken over from a crashed holder."""
        return self.generation > 0

    @classmethod
    def take(
        cls, driver: Driver, path_of: Callable[[int], str], terms: LeaseTerms, committed: int
    ) -> Lease:
        """Take the lease whose generations live at `path_of(0)`, `path_of(1)`...,
        recording `committed` (bytes) as the upload's size; `LeaseBusy` while another
        holder's is in force, with the size that one recorded (else `committed`)."""
        generation, retried = 0, False
        busy = committed
        while generation < MAX_GENERATIONS:
            path = path_of(generation)
            token = secrets.token_hex(16)
            now = terms.clock()
            if driver.put_if_absent(path, _content(token, now + terms.ttl, committed)):
                lease = cls(driver, path, generation, token, terms, committed)
                lease.check()  # Swift: another create may have landed over this one
                return lease
            current = _read(driver, path)
            if current is None:
                if retried:  # released and taken again meanwhile: someone is active
                    break
                retried = True  # released between our create and our read: try again
                continue
            if current.token == token:  # ours: a retried create whose first try landed
                lease = cls(driver, path, generation, token, terms, committed)
                lease.check()
                return lease
            if current.in_force(now):
                busy = committed if current.committed is None else current.committed
                break
            generation += 1  # over: its holder is gone; the next generation decides
        raise LeaseBusy("the upload is being written by another request", busy)

    def ensure(self) -> None:
        """`LeaseBusy` unless the lease is surely still held, without a request: renewed
        less than `ttl / 2` ago and never found lost. Called before every write."""
        with self._lock:
            if not self._lost and self.terms.clock() - self._renewed > self.terms.ttl / 2:
                self._lost = True
            if self._lost:
                raise LeaseBusy("the upload was taken over by another request", 0)

    def check(self) -> None:
        """`ensure`, then read the lease back: it must still hold this holder's token.
        Called before anything is committed."""
        self.ensure()
        started = time.monotonic()
        current = _read(self.driver, self.path)
        with self._lock:
            if current is None or current.token != self.token:
                self._lost = True
                raise LeaseBusy("the upload was taken over by another request", 0)
            self._checked = max(self._checked, started)

    def check_now_and_then(self) -> None:
        """`check` if the last read-back is older than `terms.check_every`, else
        `ensure`. Called before every write: on Swift, where two creates can both seem
        to win, the loser finds out before much of its data reaches storage."""
        if time.monotonic() - self._checked > self.terms.check_every:
            self.check()
        else:
            self.ensure()

    def renew(self) -> None:
        """Extend the lease by `ttl` from now, recording `committed`; `LeaseBusy` if it
        was lost."""
        with self._lock:
            self.check()
            now = self.terms.clock()
            content = _content(self.token, now + self.terms.ttl, self.committed)
            self.driver.put(self.path, content)
            self._renewed = max(self._renewed, now)

    def release(self) -> None:
        """Give the lease up (nothing if it was lost: it is someone else's now)."""
        if self.forsake():
            # Not read first: on Swift, where two creates can both seem to win, deleting
            # the other's lease makes it fail its next check: closed, not open.
            with contextlib.suppress(FileNotFoundError):  # the upload went meanwhile
                self.driver.delete(self.path)

    def forsake(self) -> bool:
        """Stop holding the lease without touching storage (the upload, with its lease,
        is being deleted); False if it was lost already."""
        with self._lock:
            held, self._lost = not self._lost, True
        return held


def _content(token: str, expires: float, committed: int) -> bytes:
    holder = current_holder()
    named = f" {holder}" if holder else ""
    return f"{token} {expires:.3f} {committed}{named}".encode("ascii")

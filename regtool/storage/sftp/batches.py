"""Small reads that many threads ask for at once, sent together on one channel.

The tools fan small reads out over threads (`--jobs`): a `get` of a link or a manifest
each. Read one at a time on the pool's channels, every file costs two round trips on its
channel, and a channel that is opened first costs four more. Here a thread that asks
while no batch is being read reads its file at once; the reads asked for meanwhile wait,
and go out together as the next batch (`reads.ManyReads`), read by one of the threads
that asked for them: so threads asking at once cost about two round trips per batch, not
per file, on one channel (a database's group commit, applied to reads).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from regtool.storage.sftp.reads import Outcome

#: Reads a batch of driver paths: each path's `Outcome`; a fault of the whole batch
#: (the connection) is raised.
ReadBatch = Callable[[list[str]], dict[str, Outcome]]


@dataclass(eq=False)
class _Wanted:
    path: str
    done: bool = False
    outcome: Outcome = None
    failed: BaseException | None = None


class Batches:
    """Reads files for many threads at once through `read_batch`."""

    def __init__(self, read_batch: ReadBatch):
        self._read_batch = read_batch
        self._cond = threading.Condition()
        self._waiting: list[_Wanted] = []
        self._reading = False  # a batch is being read
        #: Sizes of the last batches read, in order (bounded: a server reads for ever).
        self.sizes: deque[int] = deque(maxlen=64)

    def read(self, path: str) -> Outcome:
        """`path`'s outcome, read in the next batch; what failed the batch is raised."""
        wanted = _Wanted(path)
        with self._cond:
            self._waiting.append(wanted)
            while self._reading and not wanted.done:
                self._cond.wait()
            if not wanted.done:  # this thread reads the batch, its own file among it
                self._reading = True
                batch, self._waiting = self._waiting, []
                self.sizes.append(len(batch))
        if not wanted.done:
            self._read(batch)
        if wanted.failed is not None:
            raise wanted.failed
        return wanted.outcome

    def _read(self, batch: list[_Wanted]) -> None:
        try:
            outcomes = self._read_batch(list(dict.fromkeys(w.path for w in batch)))
            for w in batch:
                w.outcome = outcomes[w.path]
        except BaseException as e:  # each thread of the batch raises it
            for w in batch:
                w.failed = e
        finally:
            with self._cond:
                for w in batch:
                    w.done = True
                self._reading = False  # one of those waiting reads the next batch
                self._cond.notify_all()

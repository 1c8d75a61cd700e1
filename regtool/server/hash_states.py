"""Running hashes of uploads, remembered in memory between the requests of one upload.

A state is only an optimisation: a request that lands on another process, or after a
restart, finds none and the upload's bytes are hashed again from storage. So that a
state can only ever describe the bytes stored, it is keyed by what a `stat` of the
upload's data tells (size and modification time), taken after the append that produced
it committed: any other change to the data (a writer that lost its lease, a truncation,
another process) makes the key miss.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any

#: States kept (each about 200 bytes), the least recently used dropped first.
HASH_CACHE_SIZE = 256

#: What a stat of an upload's data tells: (size, modified).
Fingerprint = tuple[int, datetime | None]


class HashStates:
    """sha256 states by (upload id, fingerprint). Thread-safe."""

    def __init__(self, size: int = HASH_CACHE_SIZE):
        self._states: OrderedDict[tuple[str, Fingerprint], Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, upload_id: str, fingerprint: Fingerprint) -> Any | None:
        """A copy of the state of exactly these stored bytes, or None."""
        with self._lock:
            state = self._states.get((upload_id, fingerprint))
            if state is None:
                return None
            self._states.move_to_end((upload_id, fingerprint))
            return state.copy()

    def put(self, upload_id: str, fingerprint: Fingerprint, hasher: Any) -> None:
        """Remember `hasher` (its copy) as the state of the upload's bytes; older states of
        the upload cannot describe them any more and go."""
        with self._lock:
            self._drop(upload_id)
            self._states[(upload_id, fingerprint)] = hasher.copy()
            while len(self._states) > self._size:
                self._states.popitem(last=False)

    def forget(self, upload_id: str) -> None:
        with self._lock:
            self._drop(upload_id)

    def _drop(self, upload_id: str) -> None:
        for key in [k for k in self._states if k[0] == upload_id]:
            del self._states[key]

    def __len__(self) -> int:
        return len(self._states)


def new_hasher() -> Any:
    return hashlib.sha256()

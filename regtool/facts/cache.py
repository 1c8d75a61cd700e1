"""`ManifestFacts`: the facts of a store's manifests by digest, used while still valid."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from regtool.facts import codec
from regtool.facts.store import DEFAULT_MAX_ENTRIES, FactsFile, default_path
from regtool.facts.validity import large_object_validator, validator
from regtool.oci import Digest, Manifest
from regtool.storage.base import Entry

#: `REGTOOL_CACHE=off` (or `0`, `no`, `false`) turns the cache off, as `--no-cache` does.
ENV = "REGTOOL_CACHE"
#: Decoded facts a process holds in memory (a few hundred bytes each).
MEMORY_ENTRIES = 50_000
#: Rows of large objects' segment sets: their own format, keyed by this and the path.
SEGMENT_SET_FORMAT = 1001
_SEGMENT_SET_KEY = "dlo:"


def cache_enabled(flag: bool = True) -> bool:
    """Whether to use the cache: `flag` (False for `--no-cache`) and `REGTOOL_CACHE` not
    off."""
    return flag and os.environ.get(ENV, "").strip().lower() not in ("off", "0", "no", "false")


class ManifestFacts:
    """What regtool needs of each manifest of one store (an `oci.Manifest`: media type,
    artifact type, subject, config, layers, children with platforms, sizes, annotations),
    kept across runs and processes by digest and used only while the manifest blob's
    listing entry matches (`validity`). Thread-safe.

    A disabled instance (`file` None) misses every time and keeps nothing, so callers
    need no second code path. `hits`/`misses` count `get` answers.

    The facts found or kept are also held decoded in memory (the last `MEMORY_ENTRIES`),
    under the same validity rule: a long-running process (the server's referrers)
    answers again without a query or a JSON parse."""

    def __init__(self, file: FactsFile | None, identity: str):
        self.file = file
        self.identity = identity
        self._store = file.store_id(identity) if file is not None else None
        self._count_lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        #: digest -> (validator, facts), oldest first.
        self._memory: dict[Digest, tuple[str, Manifest]] = {}

    def _recall(self, digest: Digest, key: str) -> Manifest | None:
        held = self._memory.get(digest)
        return held[1] if held is not None and held[0] == key else None

    def _remember(self, digest: Digest, key: str, manifest: Manifest) -> None:
        with self._count_lock:
            self._memory.pop(digest, None)
            self._memory[digest] = (key, manifest)
            while len(self._memory) > MEMORY_ENTRIES:
                del self._memory[next(iter(self._memory))]

    @property
    def enabled(self) -> bool:
        return self._store is not None

    def get(self, digest: Digest, entry: Entry) -> Manifest | None:
        """The facts of manifest `digest` if kept with the validator `entry` (its blob's
        listing entry or stat) gives now, else None."""
        found = None
        key = validator(entry)
        if self.file is not None and self._store is not None and key is not None:
            found = self._recall(digest, key)
            row = None if found is not None else self.file.get(self._store, str(digest))
            if row is not None and row[0] == codec.FORMAT and row[1] == key:
                try:
                    found = codec.decode(row[2])
                except (ValueError, KeyError, TypeError, IndexError):
                    found = None  # a row of some other shape: read it again
                else:
                    self._remember(digest, key, found)
        with self._count_lock:
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
        return found

    def get_many(self, entries: Mapping[Digest, Entry]) -> dict[Digest, Manifest]:
        """`get` for many manifests at once (digest -> its blob's entry), in one query per
        `store.QUERY_CHUNK`: the facts of those kept with the validator their entry gives
        now. Counts its answers as hits; one it cannot answer counts as a miss when `get`
        is asked for it (the caller reads it through `get`, as `ManifestReader` does)."""
        keys = {d: key for d, e in entries.items() if (key := validator(e)) is not None}
        found: dict[Digest, Manifest] = {}
        if self.file is None or self._store is None:
            return found
        for digest, key in keys.items():
            if (held := self._recall(digest, key)) is not None:
                found[digest] = held
        rows = self.file.get_many(self._store, (str(d) for d in keys if d not in found))
        for digest, key in keys.items():
            row = rows.get(str(digest))
            if row is None or row[0] != codec.FORMAT or row[1] != key:
                continue
            try:
                found[digest] = manifest = codec.decode(row[2])
            except (ValueError, KeyError, TypeError, IndexError):
                continue  # a row of some other shape: read it again
            self._remember(digest, key, manifest)
        with self._count_lock:
            self.hits += len(found)
        return found

    def put(self, digest: Digest, entry: Entry, manifest: Manifest) -> None:
        """Keep the facts of `manifest`, read from the blob `entry` describes (taken
        before the read: if the blob changed meanwhile, the next `get` misses)."""
        key = validator(entry)
        if self.file is None or self._store is None or key is None:
            return
        self.file.put(self._store, str(digest), codec.FORMAT, key, codec.encode(manifest))
        self._remember(digest, key, manifest)

    def segment_sets(self, entries: Iterable[Entry]) -> dict[str, str | None]:
        """path -> the segment set (driver path; None: a plain object) kept for each of
        the large objects listed by `entries` (Swift DLO manifests) while its entry still
        gives the validator it was kept with (`validity.large_object_validator`). One
        query per `store.QUERY_CHUNK` entries; those not answered are left out."""
        keys = {e.path: key for e in entries if (key := large_object_validator(e)) is not None}
        found: dict[str, str | None] = {}
        if self.file is None or self._store is None or not keys:
            return found
        rows = self.file.get_many(self._store, (_SEGMENT_SET_KEY + p for p in keys))
        for path, key in keys.items():
            row = rows.get(_SEGMENT_SET_KEY + path)
            if row is not None and row[0] == SEGMENT_SET_FORMAT and row[1] == key:
                found[path] = row[2].decode("utf-8", "surrogateescape") or None
        return found

    def put_segment_set(self, entry: Entry, segment_set: str | None) -> None:
        """Keep the segment set that the large object listed by `entry` names (None: a
        plain object), learnt from a HEAD made after the listing: if the object was
        rewritten meanwhile, its next listing gives another validator."""
        key = large_object_validator(entry)
        if self.file is None or self._store is None or key is None:
            return
        body = (segment_set or "").encode("utf-8", "surrogateescape")
        self.file.put(self._store, _SEGMENT_SET_KEY + entry.path, SEGMENT_SET_FORMAT, key, body)

    def flush(self) -> None:
        """Write what waits (a long-running process's batches; `close` does it too)."""
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        """Write what waits and release the file."""
        if self.file is not None:
            self.file.close()

    def __enter__(self) -> ManifestFacts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_cache(
    identity: str,
    *,
    enabled: bool = True,
    path: Path | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> ManifestFacts:
    """The manifest facts of the store named `identity` (`layout.store_identity`: the
    driver's `describe()` and the layout's root), from the facts file at `path` (default
    `store.default_path()`). Disabled when `enabled` is False or `REGTOOL_CACHE` is off;
    close it (or use `with`) to write what it learnt."""
    if not cache_enabled(enabled):
        return ManifestFacts(None, identity)
    return ManifestFacts(FactsFile(path or default_path(), max_entries), identity)

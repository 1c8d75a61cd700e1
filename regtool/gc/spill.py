"""The mark set and the plan, held in memory while small and in an sqlite file when large.

A store of ten million blobs has millions of marked blobs and, with much garbage, millions
of plan items: as Python sets and lists they would take gigabytes. Past `threshold`
entries each spills to an sqlite database in a temporary directory of its own (removed
when the object is closed or collected, and at exit), whose page cache is bounded, so
memory stays bounded and time linear in the listing (each lookup or insert is one
B-tree step). Below the threshold nothing touches the disk.
"""

from __future__ import annotations

import pickle
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import islice, pairwise
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # model.py holds a Plan and imports this module
    from regtool.gc.model import Doomed

#: Marked blobs or plan items held in memory before spilling to disk.
IN_MEMORY = 100_000
#: Rows written to the database at once.
_BATCH = 50_000
#: sqlite's page cache per database, in KiB (a negative `cache_size` is KiB).
_CACHE_KIB = 16 * 1024


def _database() -> tuple[tempfile.TemporaryDirectory[str], sqlite3.Connection]:
    where = tempfile.TemporaryDirectory(prefix="regtool-gc-", ignore_cleanup_errors=True)
    db = sqlite3.connect(f"{where.name}/spill.sqlite", check_same_thread=False)
    # A scratch file: nothing to recover after a crash, so no journal and no syncs.
    db.executescript(
        f"PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE;"
        f"PRAGMA cache_size=-{_CACHE_KIB};"
    )
    return where, db


def _dump(item: Doomed) -> bytes:
    # A plain tuple: pickling the dataclass itself walks its fields on every item.
    fields = (item.kind, item.name, item.paths, item.size, item.reason, item.repository)
    return pickle.dumps((*fields, item.links_to), 5)


class KeySet:
    """A set of blob keys (digest hex, see `references.blob_key`): add, `in`, `len`."""

    def __init__(self, keys: Iterable[str] = (), *, threshold: int = IN_MEMORY):
        self.threshold = threshold
        self._memory: set[str] | None = set()
        self._pending: list[bytes] = []  # added since the last flush to the database
        self._where: tempfile.TemporaryDirectory[str] | None = None
        self._db: sqlite3.Connection | None = None
        self._count = 0
        self.update(keys)

    @property
    def spilled(self) -> bool:
        return self._db is not None

    def add(self, key: str) -> None:
        self.update((key,))

    def update(self, keys: Iterable[str]) -> None:
        if self._memory is not None:
            self._memory.update(keys)
            if len(self._memory) > self.threshold:
                self._spill()
            return
        self._pending.extend(bytes.fromhex(k) for k in keys)
        if len(self._pending) >= _BATCH:
            self._flush()

    def __ior__(self, keys: Iterable[str]) -> KeySet:
        self.update(keys)
        return self

    def __contains__(self, key: object) -> bool:
        if self._memory is not None:
            return key in self._memory
        if not isinstance(key, str):
            return False
        self._flush()
        assert self._db is not None
        try:
            raw = bytes.fromhex(key)
        except ValueError:
            return False
        return self._db.execute("SELECT 1 FROM k WHERE key = ?", (raw,)).fetchone() is not None

    def __len__(self) -> int:
        if self._memory is not None:
            return len(self._memory)
        self._flush()
        return self._count

    def _spill(self) -> None:
        assert self._memory is not None
        self._where, self._db = _database()
        self._db.execute("CREATE TABLE k (key BLOB PRIMARY KEY) WITHOUT ROWID")
        memory, self._memory = self._memory, None
        self._pending = [bytes.fromhex(k) for k in memory]
        memory.clear()
        self._flush()

    def _flush(self) -> None:
        if not self._pending or self._db is None:
            return
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO k VALUES (?)", ((k,) for k in self._pending)
            )
        self._pending.clear()
        self._count = self._db.execute("SELECT count(*) FROM k").fetchone()[0]

    def close(self) -> None:
        """Remove the database, if any; the set is empty afterwards."""
        if self._db is not None:
            self._db.close()
        if self._where is not None:
            self._where.cleanup()
        self._db = self._where = None
        self._memory, self._pending, self._count = set(), [], 0


class Plan:
    """The items of a gc plan, in the order added, except that each `extend_sorted` batch
    comes out sorted by item name. Kept in memory up to `threshold` items, then in sqlite.
    Counts and sizes per kind are kept as items come, so summaries read nothing back."""

    def __init__(self, items: Iterable[Doomed] = (), *, threshold: int = IN_MEMORY):
        self.threshold = threshold
        self._memory: list[Doomed] | None = []
        self._batches: list[tuple[int, bool]] = []  # (first index, sorted) in memory
        self._batch = 0
        self._last_sorted = False
        self._seq = 0
        self._where: tempfile.TemporaryDirectory[str] | None = None
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[int, str, int, bytes]] = []
        self.counts: Counter[str] = Counter()
        self.sizes: Counter[str] = Counter()
        self.extend(items)

    @property
    def spilled(self) -> bool:
        return self._db is not None

    def append(self, item: Doomed) -> None:
        self.extend((item,))

    def extend(self, items: Iterable[Doomed]) -> None:
        """Add `items` in their order."""
        self._add(items, False)

    def __iadd__(self, items: Iterable[Doomed]) -> Plan:
        self.extend(items)
        return self

    def extend_sorted(self, items: Iterable[Doomed]) -> None:
        """Add `items` to come out sorted by name (stable), however many they are."""
        self._add(items, True)

    def _add(self, items: Iterable[Doomed], by_name: bool) -> None:
        # A sorted batch is a batch of its own; unsorted items continue an unsorted one
        # (their sequence numbers keep their order), so appending item by item is cheap.
        if by_name or self._last_sorted or not self._batch:
            self._batch += 1
            if self._memory is not None:
                self._batches.append((len(self._memory), by_name))
        self._last_sorted = by_name
        start = len(self._memory) if self._memory is not None else None
        it = iter(items)
        while chunk := list(islice(it, _BATCH)):
            for item in chunk:
                self.counts[item.kind] += 1
                self.sizes[item.kind] += item.size or 0
            if self._memory is not None:
                self._memory.extend(chunk)
                if len(self._memory) > self.threshold:
                    self._spill()
                    start = None
                continue
            self._pending.extend(self._row(item, by_name) for item in chunk)
            if len(self._pending) >= _BATCH:
                self._flush()
        if self._memory is not None and by_name and start is not None:
            self._memory[start:] = sorted(self._memory[start:], key=lambda i: i.name)

    def _row(self, item: Doomed, by_name: bool) -> tuple[int, str, int, bytes]:
        self._seq += 1
        return self._batch, item.name if by_name else "", self._seq, _dump(item)

    def _spill(self) -> None:
        assert self._memory is not None
        self._where, self._db = _database()
        self._db.execute(
            "CREATE TABLE items (batch INTEGER, name TEXT, seq INTEGER, item BLOB, "
            "PRIMARY KEY (batch, name, seq)) WITHOUT ROWID"
        )
        memory, self._memory = self._memory, None
        bounds = [*self._batches, (len(memory), False)]
        batch = self._batch - len(self._batches)
        for (first, by_name), (end, _) in pairwise(bounds):
            batch += 1
            for item in memory[first:end]:
                self._seq += 1
                name = item.name if by_name else ""
                self._pending.append((batch, name, self._seq, _dump(item)))
            if len(self._pending) >= _BATCH:
                self._flush()
        memory.clear()
        self._flush()

    def _flush(self) -> None:
        if not self._pending or self._db is None:
            return
        with self._db:
            self._db.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", self._pending)
        self._pending.clear()

    def __iter__(self) -> Iterator[Doomed]:
        if self._memory is not None:
            yield from list(self._memory)  # a copy: adding while iterating is allowed
            return
        from regtool.gc.model import Doomed  # here: model.py imports this module

        assert self._db is not None
        self._flush()
        rows = self._db.execute("SELECT item FROM items ORDER BY batch, name, seq")
        for (raw,) in rows:
            yield Doomed(*pickle.loads(raw))

    def __len__(self) -> int:
        return sum(self.counts.values())

    def __bool__(self) -> bool:
        return len(self) > 0

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Plan, list)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def close(self) -> None:
        """Remove the database, if any; the plan is empty afterwards."""
        if self._db is not None:
            self._db.close()
        if self._where is not None:
            self._where.cleanup()
        self._db = self._where = None
        self._memory, self._batches, self._pending = [], [], []
        self.counts.clear()
        self.sizes.clear()

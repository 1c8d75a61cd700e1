"""gc's working sets, held in memory while small and in an sqlite file when large.

A store of ten million blobs has millions of marked blobs, listed links and manifests and,
with much garbage, millions of plan items: as Python sets, dicts and lists they would take
gigabytes. Past `threshold` entries each spills to a `ScratchTable`: an sqlite database in
a temporary directory of its own (removed when closed or collected, and at exit), whose
page cache is bounded, so memory stays bounded and time linear in the listing (each
lookup or insert is one B-tree step). Below the threshold nothing touches the disk.

- `KeySet`: blob keys (digest hex): the mark set, the revisions.
- `KeyMap`: blob key -> a value (pickled once spilled): what each manifest references,
  the listing of `blobs/`.
- `Groups`: values under text keys, given back key by key: the listing of
  `repositories/`, directory by directory.
- `Plan`: the plan's items in order, sorted batches sorted by name.
"""

from __future__ import annotations

import pickle
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:  # model.py holds a Plan and imports this module
    from regtool.gc.model import Doomed

#: Entries held in memory by each working set before it spills to disk.
IN_MEMORY = 100_000
#: Rows written to the database at once.
_BATCH = 50_000
#: sqlite's page cache per database, in KiB (a negative `cache_size` is KiB).
_CACHE_KIB = 16 * 1024

V = TypeVar("V")
#: An item as `update` takes it: a key, or a (key, value) pair.
R = TypeVar("R")


class _Memory(Protocol):
    """A set or a dict, as `_Keyed` holds one before it spills."""

    def __contains__(self, key: object, /) -> bool: ...
    def __len__(self) -> int: ...
    def clear(self) -> None: ...
    def update(self, items: Any, /) -> None: ...


M = TypeVar("M", bound=_Memory)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def pack_time(when: datetime | None) -> int | None:
    """An aware time as whole microseconds since the epoch, exactly: what spilled rows
    keep (pickling an aware `datetime` pickles its time zone too, twenty times slower)."""
    return None if when is None else (when - _EPOCH) // _MICROSECOND


def unpack_time(micros: int | None) -> datetime | None:
    """The UTC time `pack_time` gave `micros` for."""
    return None if micros is None else _EPOCH + micros * _MICROSECOND


class ScratchTable:
    """One sqlite table `t` of `columns` (name and type each) whose primary key is `key`
    (column names), in a temporary directory of its own: rows are written in batches of
    `_BATCH` (a row of a key already there is dropped with `ignore`, else an error), read
    back with `query`, which writes what is pending first."""

    def __init__(self, columns: tuple[str, ...], key: str, *, ignore: bool = False):
        self._where = tempfile.TemporaryDirectory(prefix="regtool-gc-", ignore_cleanup_errors=True)
        self._db = sqlite3.connect(f"{self._where.name}/spill.sqlite", check_same_thread=False)
        # A scratch file: nothing to recover after a crash, so no journal and no syncs.
        self._db.executescript(
            f"PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE;"
            f"PRAGMA cache_size=-{_CACHE_KIB};"
            f"CREATE TABLE t ({', '.join(columns)}, PRIMARY KEY ({key})) WITHOUT ROWID;"
        )
        places = ", ".join("?" * len(columns))
        self._insert = f"INSERT {'OR IGNORE ' if ignore else ''}INTO t VALUES ({places})"
        self._pending: list[tuple[Any, ...]] = []

    def add(self, rows: Iterable[tuple[Any, ...]]) -> None:
        it = iter(rows)
        while chunk := list(islice(it, _BATCH)):
            self._pending.extend(chunk)
            if len(self._pending) >= _BATCH:
                self.flush()

    def flush(self) -> None:
        if self._pending:
            with self._db:
                self._db.executemany(self._insert, self._pending)
            self._pending.clear()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        self.flush()
        return self._db.execute(sql, params)

    def close(self) -> None:
        """Remove the database."""
        self._db.close()
        self._where.cleanup()
        self._pending.clear()


def _raw(key: str) -> bytes | None:
    try:
        return bytes.fromhex(key)
    except ValueError:
        return None


class _Keyed(Generic[M, R]):
    """What `KeySet` and `KeyMap` share: blob keys (digest hex) held in `memory` (a set
    or a dict, filled by its `update`) until `threshold`, then in a `ScratchTable` of
    `columns` keyed by the key's bytes, one row per item by `_row`."""

    columns: tuple[str, ...]

    def __init__(self, memory: M, threshold: int):
        self.threshold = threshold
        self._memory: M | None = memory
        self._table: ScratchTable | None = None

    @property
    def spilled(self) -> bool:
        return self._table is not None

    def _row(self, item: R) -> tuple[Any, ...]:
        raise NotImplementedError

    def _memory_items(self, memory: M) -> Iterable[R]:
        raise NotImplementedError

    def update(self, items: Iterable[R]) -> None:
        it = iter(items)
        while self._memory is not None:  # a chunk at a time: spill before it gets large
            chunk = list(islice(it, _BATCH))
            if not chunk:
                return
            self._memory.update(chunk)
            if len(self._memory) > self.threshold:
                self._spill()
        assert self._table is not None
        self._table.add(self._row(item) for item in it)

    def __contains__(self, key: object) -> bool:
        if self._memory is not None:
            return key in self._memory
        assert self._table is not None
        raw = _raw(key) if isinstance(key, str) else None
        if raw is None:
            return False
        return self._table.query("SELECT 1 FROM t WHERE key = ?", (raw,)).fetchone() is not None

    def __len__(self) -> int:
        if self._memory is not None:
            return len(self._memory)
        assert self._table is not None
        return int(self._table.query("SELECT count(*) FROM t").fetchone()[0])

    def _spill(self) -> None:
        assert self._memory is not None
        self._table = ScratchTable(self.columns, "key", ignore=True)
        memory, self._memory = self._memory, None
        self._table.add(self._row(item) for item in self._memory_items(memory))
        memory.clear()

    def _close(self, empty: M) -> None:
        if self._table is not None:
            self._table.close()
        self._table, self._memory = None, empty


class KeySet(_Keyed[set[str], str]):
    """A set of blob keys (digest hex, see `references.blob_key`): add, `in`, `len`."""

    columns = ("key BLOB",)

    def __init__(self, keys: Iterable[str] = (), *, threshold: int = IN_MEMORY):
        super().__init__(set(), threshold)
        self.update(keys)

    def _row(self, item: str) -> tuple[Any, ...]:
        return (bytes.fromhex(item),)

    def _memory_items(self, memory: set[str]) -> Iterable[str]:
        return memory

    def add(self, key: str) -> None:
        self.update((key,))

    def __ior__(self, keys: Iterable[str]) -> KeySet:
        self.update(keys)
        return self

    def close(self) -> None:
        """Remove the database, if any; the set is empty afterwards."""
        self._close(set())


class KeyMap(_Keyed[dict[str, V], tuple[str, V]]):
    """A map from blob keys (digest hex) to values: set, `get`, `in`, `len`, and `items`
    in key order once spilled (in the order set before). Spilled values are pickled: a
    value read back is a copy. A key set again keeps its first value once spilled."""

    columns = ("key BLOB", "value BLOB")

    def __init__(self, *, threshold: int = IN_MEMORY):
        super().__init__({}, threshold)

    def _row(self, item: tuple[str, V]) -> tuple[Any, ...]:
        return (bytes.fromhex(item[0]), pickle.dumps(item[1], 5))

    def _memory_items(self, memory: dict[str, V]) -> Iterable[tuple[str, V]]:
        return memory.items()

    def __setitem__(self, key: str, value: V) -> None:
        self.update(((key, value),))

    def get(self, key: str) -> V | None:
        if self._memory is not None:
            return self._memory.get(key)
        assert self._table is not None
        raw = _raw(key)
        if raw is None:
            return None
        row = self._table.query("SELECT value FROM t WHERE key = ?", (raw,)).fetchone()
        return None if row is None else pickle.loads(row[0])

    def items(self) -> Iterator[tuple[str, V]]:
        if self._memory is not None:
            yield from list(self._memory.items())
            return
        assert self._table is not None
        for raw, value in self._table.query("SELECT key, value FROM t ORDER BY key"):
            yield raw.hex(), pickle.loads(value)

    def close(self) -> None:
        """Remove the database, if any; the map is empty afterwards."""
        self._close({})


def _group_key(name: str) -> bytes:
    # A directory name that is not UTF-8 holds surrogates: kept byte for byte.
    return name.encode("utf-8", "surrogateescape")


class Groups(Generic[V]):
    """Values added under text keys, given back key by key (`groups`), keys in byte order
    of their UTF-8 and each key's values in the order added."""

    def __init__(self, *, threshold: int = IN_MEMORY):
        self.threshold = threshold
        self._memory: dict[str, list[V]] | None = {}
        self._size = 0
        self._seq = 0
        self._table: ScratchTable | None = None

    @property
    def spilled(self) -> bool:
        return self._table is not None

    def add(self, key: str, value: V) -> None:
        if self._memory is not None:
            self._memory.setdefault(key, []).append(value)
            self._size += 1
            if self._size > self.threshold:
                self._spill()
            return
        assert self._table is not None
        self._seq += 1
        self._table.add(((_group_key(key), self._seq, pickle.dumps(value, 5)),))

    def groups(self) -> Iterator[tuple[str, list[V]]]:
        if self._memory is not None:
            for name in sorted(self._memory, key=_group_key):
                yield name, self._memory[name]
            return
        assert self._table is not None
        key: bytes | None = None
        values: list[V] = []
        for raw, value in self._table.query("SELECT key, value FROM t ORDER BY key, seq"):
            if raw != key:
                if key is not None:
                    yield key.decode("utf-8", "surrogateescape"), values
                key, values = raw, []
            values.append(pickle.loads(value))
        if key is not None:
            yield key.decode("utf-8", "surrogateescape"), values

    def _spill(self) -> None:
        assert self._memory is not None
        self._table = ScratchTable(("key BLOB", "seq INTEGER", "value BLOB"), "key, seq")
        memory, self._memory = self._memory, None
        for key, values in memory.items():
            for value in values:
                self._seq += 1
                self._table.add(((_group_key(key), self._seq, pickle.dumps(value, 5)),))
        memory.clear()

    def close(self) -> None:
        """Remove the database, if any; no groups are left afterwards."""
        if self._table is not None:
            self._table.close()
        self._table, self._memory, self._size = None, {}, 0


def _dump(item: Doomed) -> bytes:
    # A plain tuple: pickling the dataclass itself walks its fields on every item.
    fields = (item.kind, item.name, item.paths, item.size, item.reason, item.repository)
    return pickle.dumps((*fields, item.links_to), 5)


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
        self._table: ScratchTable | None = None
        self.counts: Counter[str] = Counter()
        self.sizes: Counter[str] = Counter()
        self.extend(items)

    @property
    def spilled(self) -> bool:
        return self._table is not None

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
            assert self._table is not None
            self._table.add(self._row(item, by_name) for item in chunk)
        if self._memory is not None and by_name and start is not None:
            self._memory[start:] = sorted(self._memory[start:], key=lambda i: i.name)

    def _row(self, item: Doomed, by_name: bool) -> tuple[int, str, int, bytes]:
        self._seq += 1
        return self._batch, item.name if by_name else "", self._seq, _dump(item)

    def _spill(self) -> None:
        assert self._memory is not None
        self._table = ScratchTable(
            ("batch INTEGER", "name TEXT", "seq INTEGER", "item BLOB"), "batch, name, seq"
        )
        memory, self._memory = self._memory, None
        bounds = [*self._batches, (len(memory), False)]
        batch = self._batch - len(self._batches)
        for (first, by_name), (end, _) in pairwise(bounds):
            batch += 1
            for item in memory[first:end]:
                self._seq += 1
                name = item.name if by_name else ""
                self._table.add(((batch, name, self._seq, _dump(item)),))
        memory.clear()

    def __iter__(self) -> Iterator[Doomed]:
        if self._memory is not None:
            yield from list(self._memory)  # a copy: adding while iterating is allowed
            return
        from regtool.gc.model import Doomed  # here: model.py imports this module

        assert self._table is not None
        for (raw,) in self._table.query("SELECT item FROM t ORDER BY batch, name, seq"):
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
        if self._table is not None:
            self._table.close()
        self._table = None
        self._memory, self._batches = [], []
        self.counts.clear()
        self.sizes.clear()

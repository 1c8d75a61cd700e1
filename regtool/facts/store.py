"""The facts file: sqlite (stdlib) in WAL mode, shared by every regtool process of a user.

    $XDG_CACHE_HOME/regtool/facts.sqlite       (default ~/.cache/regtool/facts.sqlite)

Tables: `stores` (an id per store identity, see `ManifestFacts`) and `facts` (store id,
digest, validator, encoded facts, last used in Unix seconds), keyed by (store, digest);
a large object's segment set has a row of its own format keyed by `dlo:<path>`.
Readers never wait for writers (WAL); writers wait for each other up to `BUSY_TIMEOUT`.
New rows are written in batches (`FLUSH_EVERY`, and on `close`), and the rows used least
recently are evicted on `close` once there are more than `max_entries`.

The file is a cache: a file that is not a database, or one sqlite finds damaged, is
deleted and made again with one warning; one that cannot be opened or written at all
(a read-only home) turns the cache off with one warning. Nothing else fails for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "facts.sqlite"
#: Rows kept; past it, the least recently used go (about 1 KiB a row: 256 MiB).
DEFAULT_MAX_ENTRIES = 250_000
#: New rows are written once this many wait (and on close).
FLUSH_EVERY = 512
#: Digests asked in one query by `get_many` (sqlite allows 32,766 parameters).
QUERY_CHUNK = 500
#: Seconds a writer waits for another process's write to end.
BUSY_TIMEOUT = 30.0
#: A row's last-used time is refreshed when older than this (seconds): few writes on hits.
TOUCH_AFTER = 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stores (id INTEGER PRIMARY KEY, identity TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS facts (
    store INTEGER NOT NULL, digest TEXT NOT NULL, format INTEGER NOT NULL,
    validator TEXT NOT NULL, body BLOB NOT NULL, used INTEGER NOT NULL,
    PRIMARY KEY (store, digest)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS facts_used ON facts (used);
"""


def default_path() -> Path:
    """`$XDG_CACHE_HOME/regtool/facts.sqlite`, `~/.cache/regtool/...` without it."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "regtool" / FILE_NAME


class FactsFile:
    """One process's connection to the facts file; safe to use from several threads."""

    def __init__(self, path: Path, max_entries: int = DEFAULT_MAX_ENTRIES):
        self.path = path
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, str], tuple[int, str, bytes]] = {}
        self._touched: set[tuple[int, str]] = set()
        self._db: sqlite3.Connection | None = self._open()

    @property
    def usable(self) -> bool:
        return self._db is not None

    # --- opening --------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection | None:
        try:
            return self._connect()
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError) and not _damaged(e):
                log.warning("manifest cache %s unusable (%s); going on without it", self.path, e)
                return None
            log.warning("manifest cache %s is damaged (%s); starting a new one", self.path, e)
            self._remove_files()
            try:
                return self._connect()
            except sqlite3.DatabaseError as again:
                log.warning(
                    "manifest cache %s unusable (%s); going on without it", self.path, again
                )
                return None
        except OSError as e:
            log.warning("manifest cache %s unusable (%s); going on without it", self.path, e)
            return None

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _remove_files(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").unlink()

    def _failed(self, e: sqlite3.DatabaseError) -> None:
        """A fault met while in use: the cache is off for the rest of this process; a
        damaged file is removed so that the next run starts a new one."""
        log.warning("manifest cache %s failed (%s); going on without it", self.path, e)
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()
        if _damaged(e):
            self._remove_files()

    # --- rows -----------------------------------------------------------------------
    def store_id(self, identity: str) -> int | None:
        """The id of store `identity`, made on first use; None with the cache off."""
        with self._lock:
            if self._db is None:
                return None
            try:
                self._db.execute("INSERT OR IGNORE INTO stores (identity) VALUES (?)", (identity,))
                row = self._db.execute(
                    "SELECT id FROM stores WHERE identity = ?", (identity,)
                ).fetchone()
            except sqlite3.DatabaseError as e:
                self._failed(e)
                return None
            return int(row[0])

    def get(self, store: int, digest: str) -> tuple[int, str, bytes] | None:
        """(format, validator, body) of a row, or None."""
        key = (store, digest)
        with self._lock:
            if (pending := self._pending.get(key)) is not None:
                return pending
            if self._db is None:
                return None
            try:
                row = self._db.execute(
                    "SELECT format, validator, body, used FROM facts"
                    " WHERE store = ? AND digest = ?",
                    key,
                ).fetchone()
            except sqlite3.DatabaseError as e:
                self._failed(e)
                return None
            if row is None:
                return None
            if row[3] < time.time() - TOUCH_AFTER:
                self._touched.add(key)
            return int(row[0]), str(row[1]), bytes(row[2])

    def get_many(self, store: int, digests: Iterable[str]) -> dict[str, tuple[int, str, bytes]]:
        """(format, validator, body) of each of `digests` that has a row: one query per
        `QUERY_CHUNK` digests, not one each."""
        wanted = list(dict.fromkeys(digests))
        found: dict[str, tuple[int, str, bytes]] = {}
        old = time.time() - TOUCH_AFTER
        with self._lock:
            for digest in wanted:
                if (pending := self._pending.get((store, digest))) is not None:
                    found[digest] = pending
            rest = [d for d in wanted if d not in found]
            for start in range(0, len(rest), QUERY_CHUNK):
                if self._db is None:
                    break
                chunk = rest[start : start + QUERY_CHUNK]
                marks = ",".join("?" * len(chunk))
                try:
                    rows = self._db.execute(
                        "SELECT digest, format, validator, body, used FROM facts"
                        f" WHERE store = ? AND digest IN ({marks})",
                        (store, *chunk),
                    ).fetchall()
                except sqlite3.DatabaseError as e:
                    self._failed(e)
                    break
                for digest, fmt, key, body, used in rows:
                    if used < old:
                        self._touched.add((store, digest))
                    found[digest] = int(fmt), str(key), bytes(body)
        return found

    def put(self, store: int, digest: str, fmt: int, validator: str, body: bytes) -> None:
        """Keep a row (written with the next batch)."""
        with self._lock:
            if self._db is None:
                return
            self._pending[(store, digest)] = (fmt, validator, body)
            if len(self._pending) >= FLUSH_EVERY:
                self._flush()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        if self._db is None or not (self._pending or self._touched):
            return
        now = int(time.time())
        rows = [(s, d, f, v, b, now) for (s, d), (f, v, b) in self._pending.items()]
        touched = [(now, s, d) for s, d in self._touched]
        self._pending, self._touched = {}, set()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO facts VALUES (?,?,?,?,?,?)", rows)
                self._db.executemany(
                    "UPDATE facts SET used = ? WHERE store = ? AND digest = ?", touched
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            self._failed(e)

    def _evict(self) -> None:
        """Delete the least recently used rows beyond `max_entries` (down to 90% of it,
        so that eviction is not due again at once)."""
        assert self._db is not None
        (count,) = self._db.execute("SELECT count(*) FROM facts").fetchone()
        excess = count - self.max_entries
        if excess <= 0:
            return
        excess += self.max_entries // 10
        self._db.execute(
            "DELETE FROM facts WHERE (store, digest) IN"
            " (SELECT store, digest FROM facts ORDER BY used LIMIT ?)",
            (excess,),
        )

    def close(self) -> None:
        """Write what waits, evict past the bound, and close."""
        with self._lock:
            self._flush()
            db, self._db = self._db, None
            if db is None:
                return
            try:
                self._db = db
                self._evict()
            except sqlite3.DatabaseError as e:
                self._failed(e)
            finally:
                self._db = None
                with contextlib.suppress(sqlite3.Error):
                    db.close()

    def count(self) -> int:
        """Rows in the file (for tests and reports)."""
        with self._lock:
            if self._db is None:
                return 0
            (n,) = self._db.execute("SELECT count(*) FROM facts").fetchone()
            return int(n)


def _damaged(e: sqlite3.DatabaseError) -> bool:
    """Whether `e` says the file is not (or no longer) a sound database."""
    if not isinstance(e, sqlite3.OperationalError):
        return True  # DatabaseError proper: "file is not a database", "malformed"
    text = str(e).lower()
    return "malformed" in text or "not a database" in text

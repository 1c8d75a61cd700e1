"""Repository names as a depth-first listing finds them, for the catalog pages asked for
before the first walk of the store has ended: the names come in their final order
(`catalog_order`), so a page needs only the names up to its last row."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

#: Names gathered between two wake-ups of the pages waiting for them.
BATCH = 64


def catalog_order(name: str) -> tuple[str, ...]:
    """Sort key of the catalog: by components, a repository before those below it (the
    order of `V2Layout.iter_repository_names`)."""
    return tuple(name.split("/"))


class NameStream:
    """Gathers `names` in a thread of its own until they end or `stop()` holds (asked
    after each name), then calls `then()`; pages wait for as many as they need
    (`matching`)."""

    def __init__(
        self,
        names: Iterator[str],
        stop: Callable[[], bool],
        then: Callable[[], None] = lambda: None,
    ):
        self.found: list[str] = []
        self.done = False  # no more names will come
        self.complete = False  # ... and they are every name (not stopped, no fault)
        self.error: Exception | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, args=(names, stop, then), daemon=True)
        self._thread.start()

    def _run(
        self, names: Iterator[str], stop: Callable[[], bool], then: Callable[[], None]
    ) -> None:
        batch: list[str] = []
        try:
            for name in names:
                batch.append(name)
                if len(batch) == BATCH:
                    self._add(batch)
                    batch = []
                if stop():
                    break
            else:
                self.complete = True
        except Exception as e:  # a storage fault: the pages waiting say so
            log.warning("listing repository names failed: %s", e)
            self.error = e
        finally:
            with self._changed:
                self.found += batch
                self.done = True
                self._changed.notify_all()
        then()

    def _add(self, batch: list[str]) -> None:
        with self._changed:
            self.found += batch
            self._changed.notify_all()

    def matching(self, keep: Callable[[str], bool], wanted: int) -> tuple[list[str], int | None]:
        """(the first `wanted` names `keep` lets through, fewer if there are no more; how
        many it lets through in all, None unless every name has come), once that many
        are found or no more will come. Raises the storage fault that ended the listing,
        unless enough were found."""
        chosen: list[str] = []
        at = 0
        with self._changed:
            while True:
                while at < len(self.found) and len(chosen) < wanted:
                    if keep(self.found[at]):
                        chosen.append(self.found[at])
                    at += 1
                if len(chosen) >= wanted or self.done:
                    break
                self._changed.wait()
            if self.error is not None and len(chosen) < wanted:
                raise self.error
            if not self.complete:
                return chosen, None
            rest = self.found[at:]
        return chosen, len(chosen) + sum(1 for n in rest if keep(n))

    def join(self) -> None:
        """Returns once the listing has ended (for tests)."""
        self._thread.join()

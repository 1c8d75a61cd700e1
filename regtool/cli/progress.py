"""A progress bar of bytes on stderr (done of a total, rate, ETA) for long commands on a
terminal; rich is imported only here, when a bar is shown."""

from __future__ import annotations


class ByteBar:
    """Bytes done of `total` (None until known) under a description that may change."""

    def __init__(self, description: str):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._bar.add_task(description, total=None)
        self._total = 0
        self._bar.start()

    def add_total(self, nbytes: int) -> None:
        """`nbytes` more to do."""
        self._total += nbytes
        self._bar.update(self._task, total=self._total or None)

    def describe(self, description: str) -> None:
        self._bar.update(self._task, description=description)

    def advance(self, nbytes: int) -> None:
        self._bar.advance(self._task, nbytes)

    def stop(self) -> None:
        self._bar.stop()

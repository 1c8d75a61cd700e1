"""What an in-process server logs, regtool's and uvicorn's loggers alike (uvicorn's do
not reach the root logger, so pytest's caplog misses them), with a wait for a line: a
test knows a request is over once its last line is logged, without a sleep.

    with LogWatch() as logs:
        ...
        logs.wait_for("disconnected")
        assert logs.errors() == []
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

#: uvicorn.error propagates to uvicorn; uvicorn configures its loggers when a server
#: starts (dropping handlers): watch once the servers are up.
LOGGERS = ("regtool", "uvicorn")


class LogWatch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.changed = threading.Condition()
        self._levels: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.records.append(record)
            self.changed.notify_all()

    def wait_for(self, text: str, timeout: float = 30) -> logging.LogRecord:
        """The first record whose message holds `text`, once it is logged."""
        with self.changed:
            found: list[logging.LogRecord] = []

            def seen() -> bool:
                found[:] = [r for r in self.records if text in r.getMessage()]
                return bool(found)

            if not self.changed.wait_for(seen, timeout):
                raise AssertionError(f"nothing logged {text!r}: {self.lines()}")
            return found[0]

    def lines(self) -> list[str]:
        return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in self.records]

    def errors(self) -> list[str]:
        """Records at ERROR or above, and any that carries a traceback."""
        return [
            f"{r.levelname} {r.getMessage()}"
            for r in self.records
            if r.levelno >= logging.ERROR or r.exc_info
        ]

    def __enter__(self) -> LogWatch:
        for name in LOGGERS:
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            if logger.getEffectiveLevel() > logging.INFO:
                logger.setLevel(logging.INFO)
            logger.addHandler(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for name in LOGGERS:
            logger = logging.getLogger(name)
            logger.removeHandler(self)
            logger.setLevel(self._levels[name])

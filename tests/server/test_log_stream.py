"""`regtool serve`'s logging: the handler writes to the stderr of the moment a line is
logged (a stream replaced and closed since takes nothing and breaks nothing), and the
process's logging is put back as it was when the server stops (a server run inside a
longer process, as the CLI's tests run it, leaves no format behind)."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from regtool.server.access_log import configure_logging
from regtool.server.settings import LogSettings


def test_lines_go_to_the_stderr_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), logging.getLogger("regtool").level
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    restore = configure_logging(LogSettings(), "INFO")
    try:
        first.close()  # as a test's captured stream is, once the test ends
        second = io.StringIO()
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("regtool.test").warning("one line")
        written = second.getvalue()
        assert "one line" in written and "Logging error" not in written, written
        assert "level=warning" in written
    finally:
        restore()
    assert root.handlers == handlers
    assert logging.getLogger("regtool").level == level

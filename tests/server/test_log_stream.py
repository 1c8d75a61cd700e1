"""`regtool serve`'s log handler writes to the stderr of the moment a line is logged: a
stream replaced (and closed) since logging was set up takes nothing and breaks nothing."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest

from regtool.server.access_log import configure_logging
from regtool.server.settings import LogSettings


@pytest.fixture
def root_handlers() -> Iterator[None]:
    root = logging.getLogger()
    kept, level = list(root.handlers), logging.getLogger("regtool").level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in kept:
        root.addHandler(handler)
    logging.getLogger("regtool").setLevel(level)


@pytest.mark.usefixtures("root_handlers")
def test_lines_go_to_the_stderr_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging(LogSettings(), "INFO")
    first.close()  # as a test's captured stream is, once the test ends
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("regtool.test").warning("one line")
    written = second.getvalue()
    assert "one line" in written and "Logging error" not in written, written

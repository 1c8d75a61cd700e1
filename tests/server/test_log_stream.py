"""`regtool serve`'s logging: the handler writes to the stderr of the moment a line is
written (a stream replaced and closed since takes nothing and breaks nothing); lines
below WARNING are gathered and written by a thread of its own, a warning at once after
them; and the
process's logging is put back as it was when the server stops (a server run inside a
longer process, as the CLI's tests run it, leaves no format behind)."""

from __future__ import annotations

import io
import logging
import sys
import threading
import time

import pytest

from regtool.server.access_log import _StderrHandler, configure_logging
from regtool.server.settings import LogSettings
from regtool.url_secrets import redact_query, redact_url


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


class _Recording(io.StringIO):
    """A stream that remembers which thread wrote each piece."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: list[str] = []

    def write(self, text: str) -> int:
        self.writers.append(threading.current_thread().name)
        return super().write(text)


def test_info_lines_are_gathered_and_a_warning_writes_them_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lines below WARNING (an access line per request) are not written by the thread
    that logs them, which is the event loop's: a warning writes those gathered before it,
    then itself, at once."""
    stream = _Recording()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(_StderrHandler, "LINGER", 3600.0)  # the writer thread never gets to
    restore = configure_logging(LogSettings(), "INFO")
    try:
        log = logging.getLogger("regtool.test")
        log.info("first")
        log.info("second")
        assert stream.getvalue() == ""
        log.warning("third")
        lines = stream.getvalue().splitlines()
        assert [line.split("msg=")[1] for line in lines] == ["first", "second", "third"]
        assert stream.writers == [threading.current_thread().name]  # one write
    finally:
        restore()


def test_past_the_bound_the_logging_thread_writes_what_is_gathered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While stderr does not keep up, lines are not gathered without end: past
    `MAX_GATHERED` the thread that logs writes them (and waits for stderr), in order."""
    stream = _Recording()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(_StderrHandler, "LINGER", 3600.0)  # the writer thread never gets to
    monkeypatch.setattr(_StderrHandler, "MAX_GATHERED", 3)
    restore = configure_logging(LogSettings(), "INFO")
    try:
        log = logging.getLogger("regtool.test")
        for n in range(3):
            log.info("line %d", n)
        assert stream.getvalue() == ""
        log.info("line 3")
        lines = stream.getvalue().splitlines()
        assert [line.split("msg=")[1] for line in lines] == [f'"line {n}"' for n in range(4)]
        assert stream.writers == [threading.current_thread().name]
    finally:
        restore()


def test_gathered_lines_are_written_by_the_writer_thread_and_at_restore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = _Recording()
    monkeypatch.setattr(sys, "stderr", stream)
    restore = configure_logging(LogSettings(), "INFO")
    try:
        logging.getLogger("regtool.test").info("by the writer")
        deadline = time.monotonic() + 10
        while "by the writer" not in stream.getvalue():
            assert time.monotonic() < deadline, "the line was never written"
            time.sleep(0.01)
        assert stream.writers == ["log-writer"]
        monkeypatch.setattr(_StderrHandler, "LINGER", 3600.0)
        logging.getLogger("regtool.test").info("at restore")
    finally:
        restore()
    assert "at restore" in stream.getvalue()  # written when logging was put back


@pytest.mark.parametrize(
    ("query", "logged"),
    [
        ("digest=sha256:ab12", "digest=sha256:ab12"),
        ("n=10&last=team/app", "n=10&last=team/app"),
        ("account=a&access_token=abc&scope=x", "account=a&access_token=***&scope=x"),
        ("PASSWORD=hunter2&key=k", "PASSWORD=***&key=***"),
        (
            "client_secret=s&api_key=k&access-token=t&X-Amz-Signature=x&sig=y&auth=z",
            "client_secret=***&api_key=***&access-token=***&X-Amz-Signature=***&sig=***&auth=***",
        ),
        ("pass%77ord=p;password=q&mount=sha256:ab", "pass%77ord=***;password=***&mount=sha256:ab"),
        ("a=1&&b&=x&token", "a=1&&b&=x&token"),
    ],
)
def test_query_values_that_carry_credentials_are_hidden(query: str, logged: str) -> None:
    assert redact_query(query) == logged


@pytest.mark.parametrize(
    ("referer", "logged"),
    [
        ("https://bob:SECRET@host/?token=SECRET&x=1", "https://***@host/?token=***&x=1"),
        ("http://host/ui/?q=app", "http://host/ui/?q=app"),
        ("-", "-"),
    ],
)
def test_a_referer_loses_its_user_and_query_credentials(referer: str, logged: str) -> None:
    assert redact_url(referer) == logged


def test_records_leave_out_thread_and_process_names_while_serving() -> None:
    restore = configure_logging(LogSettings(), "INFO")
    try:
        logger = logging.getLogger("regtool.test")
        record = logger.makeRecord("x", logging.INFO, "", 0, "m", (), None)
        assert record.threadName is None and record.processName is None
    finally:
        restore()
    assert logging.logThreads and logging.logProcesses  # put back

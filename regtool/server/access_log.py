"""What `regtool serve` logs: one access line per request (`log_access`, called by
`request_life`), every line of a request with its request id, in distribution's
`log.formatter` (text or json) with `log.fields`.

distribution gives each request a UUID (`http.request.id` in its context's log lines)
and writes an Apache combined line per request without it; regtool puts the id in the
access line too, and in the answer's `X-Request-Id` header, so a client's report finds
its lines. Credentials never reach a line: `Authorization` is not logged at all, and
query values that carry secrets (`token`, `access_token`, `password`...) are shown as
`***`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.types import Scope

from regtool.server.settings import LogSettings
from regtool.url_secrets import redact_query, redact_url

access_log = logging.getLogger("regtool.access")

#: The request a line belongs to; worker threads inherit it (anyio copies the context).
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "regtool_request_id", default=None
)
REQUEST_ID_HEADER = "X-Request-Id"


def log_access(scope: Scope, status: int, sent: int, seconds: float) -> None:
    """The access line of the request of `scope` (as the client sent it: prefix and all),
    answered `status` (0: not at all) with `sent` body bytes after `seconds`: the
    combined log format's fields (client, time, request line, status, bytes sent,
    referer, user agent) and the duration, as `extra` fields `http.request.*` /
    `http.response.*` for json. Nothing is built while the line would not be written."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    referer = agent = "-"
    for name, value in scope["headers"]:
        if name == b"referer":
            referer = redact_url(value.decode("latin-1"))
        elif name == b"user-agent":
            agent = value.decode("latin-1")
    client = scope.get("client") or ("-", 0)
    query = scope.get("query_string", b"").decode("latin-1")
    uri = scope["path"]
    if query:
        uri += "?" + redact_query(query)
    uri, referer, agent = _printable(uri), _printable(referer), _printable(agent)
    line = (
        f'{client[0]} - - [{_now()}] "{scope["method"]} {uri} '
        f'HTTP/{scope.get("http_version", "1.1")}" {status} {sent} "{referer}" "{agent}"'
    )
    fields = {
        "http.request.method": scope["method"],
        "http.request.uri": uri,
        "http.request.remoteaddr": client[0],
        "http.request.useragent": agent,
        "http.response.status": status,
        "http.response.written": sent,
        "http.response.duration": f"{seconds:.6f}s",
    }
    # The record made directly: `info()` would look up the caller's frame and file for
    # every request (a third of the line's cost), which no format here shows.
    record = access_log.makeRecord(
        access_log.name, logging.INFO, "", 0, line, (), None, extra={"fields": fields}
    )
    access_log.handle(record)


_clock: tuple[int, str] = (0, "")


def _now() -> str:
    """The combined log format's time, made once a second."""
    global _clock
    second = int(time.time())
    if _clock[0] != second:
        _clock = (second, datetime.fromtimestamp(second, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"))
    return _clock[1]


def _printable(text: str) -> str:
    """`text` with control characters escaped, so a request cannot forge log lines."""
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class TextFormatter(logging.Formatter):
    """logrus's text format, as distribution writes it: `time="..." level=info
    msg="..." key=value ...`, with `http.request.id` and `log.fields` on each line."""

    def __init__(self, fields: tuple[tuple[str, Any], ...]):
        super().__init__()
        self.fields = fields

    def format(self, record: logging.LogRecord) -> str:
        if record.name == access_log.name:  # distribution's access lines: combined format
            rid = getattr(record, "request_id", None)
            return record.getMessage() + (f" http.request.id={rid}" if rid else "")
        pairs = [
            ("time", _timestamp(record)),
            ("level", _level(record)),
            ("msg", record.getMessage()),
            *_record_fields(record, self.fields),
        ]
        line = " ".join(f"{k}={_logfmt(v)}" for k, v in pairs)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, as logrus's JSON formatter: `time`, `level`, `msg` and
    the fields."""

    def __init__(self, fields: tuple[tuple[str, Any], ...]):
        super().__init__()
        self.fields = fields

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _timestamp(record),
            "level": _level(record),
            "msg": record.getMessage(),
            **dict(_record_fields(record, self.fields)),
        }
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class _StderrHandler(logging.Handler):
    """Lines to whatever `sys.stderr` is when they are written, not what it was when
    logging was set up (which may have been replaced and closed since: a test's captured
    stream, a daemon's redirection).

    Lines below WARNING (the access lines) are gathered and written by a thread of the
    handler's own, up to `LINGER` seconds later, many in one write: a write and flush
    per line on the event loop's thread is a system call per request, during which the
    storage threads take the GIL and the loop waits to have it back (the access log
    cost more CPU than the rest of the request's life: `benchmarks/serve_cost`). A
    warning or worse is written at once, after every line gathered before it, by the
    thread that logs it; `flush` (at `restore`, and by `logging.shutdown` at exit)
    writes what is gathered."""

    #: Seconds a gathered line waits for others to share its write.
    LINGER = 0.05
    #: Lines gathered at most; past that, the thread that logs writes them itself.
    MAX_GATHERED = 10_000

    def __init__(self) -> None:
        super().__init__()
        self._lines: deque[str] = deque()  # appends and pops are atomic: no lock
        self._write_lock = threading.Lock()  # one writer at a time, lines in order
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record) + "\n")
        except Exception:
            self.handleError(record)
            return
        if (
            record.levelno >= logging.WARNING
            or self._stopping.is_set()
            or len(self._lines) > self.MAX_GATHERED
        ):
            # the last: stderr is not keeping up (a stalled pipe); the logging thread
            # waits for it, as it did before lines were gathered, rather than memory grow
            self.flush()
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
            self._thread.start()
        if not self._wake.is_set():
            self._wake.set()

    def flush(self) -> None:
        """Write every line gathered so far, in order."""
        with self._write_lock:
            parts = []
            while self._lines:
                parts.append(self._lines.popleft())
            if not parts:
                return
            stream = sys.stderr
            try:
                stream.write("".join(parts))
                stream.flush()
            except (OSError, ValueError):  # stderr closed or gone: the lines go with it
                pass

    def close(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
        super().close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()  # then the lines are looked at again: no wake-up is lost
            self._stopping.wait(self.LINGER)
            self.flush()


def configure_logging(settings: LogSettings, level: str) -> Callable[[], None]:
    """Sends every line (regtool's, uvicorn's) through one handler on stderr in
    `settings.formatter`, at `level` (a Python level name) and above. Returns what puts
    the process's logging back as it was (for a server run inside a longer process).

    Records leave out the thread's and process's names and the process id, which no
    format here shows (logging's documented optimisation: each costs every line)."""
    handler = _StderrHandler()
    handler.addFilter(_RequestIdFilter())
    formatter = JsonFormatter if settings.formatter == "json" else TextFormatter
    handler.setFormatter(formatter(settings.fields))
    root = logging.getLogger()
    names = ("regtool", "uvicorn", "uvicorn.error")
    before = [(root, list(root.handlers), root.level, root.propagate)]
    before += [
        (lg, list(lg.handlers), lg.level, lg.propagate) for lg in map(logging.getLogger, names)
    ]
    kept = (logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    for name in names:
        logging.getLogger(name).setLevel(level)
        if name != "regtool":
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True

    def restore() -> None:
        root.removeHandler(handler)
        handler.close()
        logging.logThreads, logging.logProcesses, logging.logMultiprocessing = kept
        for logger, handlers, old_level, propagate in before:
            logger.handlers[:] = handlers
            logger.setLevel(old_level)
            logger.propagate = propagate

    return restore


def _record_fields(
    record: logging.LogRecord, fields: tuple[tuple[str, Any], ...]
) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = list(fields)
    rid = getattr(record, "request_id", None)
    if rid:
        found.append(("http.request.id", rid))
    found.extend(getattr(record, "fields", {}).items())
    return found


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def _level(record: logging.LogRecord) -> str:
    return {"WARNING": "warning", "CRITICAL": "fatal"}.get(
        record.levelname, record.levelname.lower()
    )


def _logfmt(value: Any) -> str:
    text = str(value)
    if text and re.fullmatch(r"[A-Za-z0-9._:/@+-]+", text, re.ASCII):
        return text
    return json.dumps(text)

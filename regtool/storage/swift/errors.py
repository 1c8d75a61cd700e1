"""Translating what swiftclient, requests and urllib3 raise into regtool's errors.

One table maps an HTTP status to an error class (`status_error`); every request path
(object and container requests, bulk delete, `/info`, v1 and Keystone login) goes through
it, so a throttled answer is a `TransientError` carrying the server's `Retry-After`
wherever it happens, and never reads as "not found" or as an empty listing.
"""

from __future__ import annotations

import http.client
import re
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlparse

import requests
import urllib3
from swiftclient.exceptions import ClientException  # type: ignore[import-untyped]

from regtool.errors import (
    AuthenticationFailed,
    PathNotFound,
    StorageError,
    TransientError,
    Unreachable,
)

#: The driver name in messages.
DRIVER = "swift"

#: What a request or a body being read can raise below swiftclient.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)

# A URL that cannot be requested at all: configuration, not a passing fault.
_BAD_URL = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    urllib3.exceptions.LocationValueError,
)

#: Statuses worth retrying: request timeout, throttling (429; 498 is Swift's ratelimit
#: middleware), and every 5xx.
_TRANSIENT = frozenset({408, 429, 498})

# The userinfo of a URL (`user:password@`) in any text, up to the `@` ending the authority.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")


def without_userinfo(url: str) -> str:
    """`url` without its userinfo (`http://u:pw@host/x` -> `http://host/x`): URLs of
    Swift's and Keystone's endpoints may carry credentials, and reach messages and logs
    only without them."""
    return _USERINFO.sub(r"\1", url)


def redact(text: str) -> str:
    """`text` with the userinfo of every URL in it removed (a native error's message may
    quote the URL it was given)."""
    return _USERINFO.sub(r"\1", text)


def host(url: str | None) -> str:
    """The `host[:port]` of `url`, for messages ("Swift" if there is none or it does not
    parse)."""
    try:
        return (urlparse(url).netloc.rpartition("@")[2] if url else "") or "Swift"
    except ValueError:
        return "Swift"


def bad_url(url: str, e: ValueError) -> StorageError:
    """The error for a URL that does not parse (`e`, from urllib)."""
    return StorageError(f"unusable Swift URL ({host(url)}): {redact(str(e))}", driver=DRIVER)


# ASCII digits: Python's `\d` takes any script's, which `int()` and `float()` then refuse.
_MAX_LIMIT = re.compile(r"Maximum limit is ([0-9]{1,18})", re.ASCII)
_SECONDS = re.compile(r"[0-9]{1,18}(\.[0-9]{1,9})?", re.ASCII)
DECIMAL = re.compile(r"[0-9]{1,18}", re.ASCII)  # matched whole: fullmatch


class RangeNotSatisfiable(StorageError):
    """HTTP 416: an offset at or past the end, which `open` reads as empty."""


class PreconditionFailed(StorageError):
    """HTTP 412: a conditional request's condition (`If-None-Match: *`) did not hold, or
    a listing asked for more names than the cluster allows (`max_listing_limit`)."""

    def __init__(self, message: str, *, path: str | None = None, detail: str = ""):
        super().__init__(message, path=path, driver=DRIVER)
        self.detail = detail  # the response body

    def max_listing_limit(self) -> int | None:
        """N from Swift's `412 Maximum limit is N` answer to a listing, else None."""
        match = _MAX_LIMIT.search(self.detail)
        return int(match[1]) if match else None


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from an HTTP `Retry-After` value (RFC 9110 10.2.3: delay-seconds
    or an HTTP-date); None if absent or unreadable. A date in the past is 0."""
    if not value:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):  # a fraction is not RFC 9110, but harmless to honour
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 850 and asctime dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def status_error(
    status: int | None,
    text: str,
    path: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> StorageError:
    """The error for an HTTP answer `status` (None: no answer), with `text` as message.
    `headers` are the response's (case-insensitive, as requests gives them), read for
    `Retry-After`."""
    if status == 404 and path is not None:
        return PathNotFound(path, driver=DRIVER)
    if status == 416:
        return RangeNotSatisfiable(text, path=path, driver=DRIVER)
    if status == 401:
        where = f" ({path})" if path else ""
        return AuthenticationFailed(f"Swift refused the token{where}", path=path, driver=DRIVER)
    if status in _TRANSIENT or (status is not None and status >= 500):
        wait = retry_after(headers.get("Retry-After") if headers else None)
        if wait is not None:
            text += f" (retry after {wait:g} s)"
        return TransientError(text, path=path, driver=DRIVER, retry_after=wait)
    return StorageError(text, path=path, driver=DRIVER)


def client_error(e: ClientException, path: str | None) -> StorageError:
    """The error for a swiftclient `ClientException` (an HTTP answer, or swiftclient's
    own complaint when `http_status` is None)."""
    status = e.http_status
    where = f" ({path})" if path else ""
    text = f"{e.msg}{where}: HTTP {status} {e.http_reason}".strip() if status else str(e.msg)
    text = redact(text)
    if status == 412:
        body = e.http_response_content
        detail = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
        return PreconditionFailed(text, path=path, detail=detail[:200])
    return status_error(status, text, path, e.http_response_headers)


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost error under requests' and urllib3's wrappers."""
    seen = exc
    for _ in range(10):
        if isinstance(seen, urllib3.exceptions.MaxRetryError) and seen.reason is not None:
            seen = seen.reason
            continue
        nested = [a for a in getattr(seen, "args", ()) if isinstance(a, BaseException)]
        inner = nested[0] if nested else seen.__cause__
        if inner is None:
            break
        seen = inner
    return seen


def _unreachable(exc: BaseException) -> bool:
    """Connection refused or the name did not resolve (not a timeout, not a reset)."""
    # NewConnectionError subclasses ConnectTimeoutError, so it is tested first.
    return isinstance(
        exc, urllib3.exceptions.NewConnectionError | ConnectionRefusedError | socket.gaierror
    )


def network_error(e: BaseException, path: str | None, url: str | None = None) -> StorageError:
    """The error for one of `NETWORK_ERRORS` met talking to `url` (only its host and port
    are named: the rest may identify an account, or carry credentials). Refused
    connections and unknown hosts are `Unreachable`, TLS failures and unusable URLs plain
    `StorageError`, the rest (resets, timeouts, a body cut short) `TransientError`."""
    where = host(url)
    cause = _root_cause(e)
    reason = redact(str(cause).rsplit("): ", 1)[-1] or type(cause).__name__)  # no urllib3 repr
    if _unreachable(cause):
        return Unreachable(f"cannot connect to {where}: {reason}", path=path, driver=DRIVER)
    if isinstance(e, requests.exceptions.SSLError):
        return StorageError(f"TLS error talking to {where}: {reason}", path=path, driver=DRIVER)
    if isinstance(e, _BAD_URL):
        return StorageError(f"unusable Swift URL ({where}): {reason}", path=path, driver=DRIVER)
    return TransientError(f"connection to {where} failed: {reason}", path=path, driver=DRIVER)

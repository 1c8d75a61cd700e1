"""Talking to one Swift cluster: login (v1 or Keystone), one token shared by all threads,
an HTTP connection per thread (swiftclient's are not thread-safe), a count of every
request, and the cluster's capabilities from `/info`, read once.

swiftclient's own retries are not used: transient faults raise `TransientError` for the
retry wrapper, so `requests` counts every HTTP request made.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import weakref
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import urlparse

from swiftclient import client as sc  # type: ignore[import-untyped]
from swiftclient.exceptions import ClientException  # type: ignore[import-untyped]

from regtool.errors import AuthenticationFailed, StorageError, TransientError
from regtool.storage.swift.capabilities import Capabilities
from regtool.storage.swift.credentials import SwiftCredentials
from regtool.storage.swift.errors import (
    DRIVER,
    NETWORK_ERRORS,
    bad_url,
    client_error,
    network_error,
    redact,
    without_userinfo,
)
from regtool.storage.swift.keystone import keystone_login

T = TypeVar("T")
log = logging.getLogger(__name__)

# swiftclient logs failed requests at INFO with the first 16 characters of the token, and
# with their URLs, which may carry credentials.
sc.logger_settings["reveal_sensitive_prefix"] = 0


class _Redacting(logging.Filter):
    """Takes the userinfo out of every URL in a log record (see `errors.redact`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


logging.getLogger("swiftclient").addFilter(_Redacting())

# The API version in a storage URL: `/info` sits beside it (`/v1/AUTH_x` -> `/info`,
# Ceph's `/swift/v1` -> `/swift/info`).
_API_VERSION = re.compile(r"/v1(?:/|\Z)", re.ASCII)


def info_url(storage_url: str) -> str:
    """The `/info` URL of the cluster serving `storage_url`."""
    parsed = urlparse(storage_url)
    match = _API_VERSION.search(parsed.path)
    root = parsed.path[: match.start()] if match else ""
    return parsed._replace(path=root + "/info", query="", fragment="").geturl()


class SwiftSession:
    """Login state, connections, the request count and the capabilities of one driver.
    Safe to use from several threads."""

    def __init__(self, credentials: SwiftCredentials, timeout: float):
        self.credentials = credentials
        self.timeout = timeout
        self._auth: tuple[str, str] | None = None
        self._preauth_used = False
        self._auth_lock = threading.Lock()
        self._lock = threading.Lock()
        self._info_lock = threading.Lock()
        self._capabilities: Capabilities | None = None
        self._requests = 0
        self._local = threading.local()
        # Weak: a thread's connection goes with the thread; close() closes the rest.
        self._connections: weakref.WeakSet[sc.HTTPConnection] = weakref.WeakSet()

    @property
    def requests(self) -> int:
        """HTTP requests made so far, logins and `/info` included."""
        return self._requests

    @property
    def storage_url(self) -> str | None:
        """The account's URL once logged in, else None."""
        auth = self._auth
        return auth[0] if auth else None

    def count(self) -> None:
        with self._lock:
            self._requests += 1

    def close(self) -> None:
        with self._lock:
            connections, self._connections = list(self._connections), weakref.WeakSet()
        for conn in connections:
            with contextlib.suppress(*NETWORK_ERRORS):
                conn.close()
        self._local = threading.local()

    # --- login -------------------------------------------------------------------------
    def _login(self) -> tuple[str, str]:
        c = self.credentials
        if c.storage_url and c.token and not self._preauth_used:
            self._preauth_used = True
            return c.storage_url, c.token
        if not c.can_log_in:
            what = "the token was refused" if c.token else "incomplete credentials"
            raise AuthenticationFailed(
                f"cannot log in to Swift: {what} (need auth URL, user and key)", driver=DRIVER
            )
        assert c.auth_url and c.user and c.key is not None
        at = without_userinfo(c.auth_url)
        refused = AuthenticationFailed(
            f"Swift refused the credentials for user {c.user} at {at}", driver=DRIVER
        )
        self.count()
        if c.auth_version not in ("1", "1.0"):
            return keystone_login(c, self.timeout, refused)
        try:
            url, token = sc.get_auth_1_0(
                c.auth_url, c.user, c.key, insecure=c.insecure, timeout=self.timeout
            )
        except ClientException as e:
            if e.http_status in (401, 403):
                raise refused from None
            raise client_error(e, None) from None
        except NETWORK_ERRORS as e:
            raise network_error(e, None, c.auth_url) from None
        except ValueError as e:  # urllib's word for a URL that does not parse
            raise bad_url(c.auth_url, e) from None
        url = c.storage_url or url
        if not url or not token:
            missing = "storage URL" if not url else "token"
            raise StorageError(f"the login at {at} gave no {missing}", driver=DRIVER)
        return url, token

    def _authenticate(self) -> tuple[str, str]:
        auth = self._auth
        if auth is None:
            with self._auth_lock:
                if self._auth is None:
                    self._auth = self._login()
                auth = self._auth
        return auth

    def _invalidate(self, token: str) -> bool:
        """Forget a refused token (once for all threads); False if a new login cannot help."""
        with self._auth_lock:
            if self._auth is not None and self._auth[1] == token:
                self._auth = None
        return self.credentials.can_log_in

    # --- requests ----------------------------------------------------------------------
    def _connection(self, url: str) -> tuple[Any, sc.HTTPConnection]:
        conn: tuple[Any, sc.HTTPConnection] | None = getattr(self._local, "conn", None)
        if conn is None or conn[1].url != url:
            conn = sc.http_connection(
                url,
                insecure=self.credentials.insecure,
                timeout=self.timeout,
                default_user_agent="regtool",
            )
            self._local.conn = conn
            with self._lock:
                self._connections.add(conn[1])
        return conn

    def call(self, fn: Callable[..., T], *args: Any, path: str | None = None, **kwargs: Any) -> T:
        """`fn(url, token, *args, http_conn=..., **kwargs)`: one swiftclient request with
        this thread's connection and the shared token, logging in first if needed and
        once more if the token is refused. `path` names what is asked for in errors (and
        a 404 is `PathNotFound(path)`); every failure is one of regtool's errors (see
        `errors`)."""
        for attempt in (1, 2):
            url, token = self._authenticate()
            self.count()
            try:
                http_conn = self._connection(url)
            except ValueError as e:  # urllib's word for a URL that does not parse
                raise bad_url(url, e) from None
            except ClientException as e:  # swiftclient's, for a scheme it cannot use
                raise client_error(e, path) from None
            try:
                return fn(url, token, *args, http_conn=http_conn, **kwargs)
            except ClientException as e:
                if e.http_status == 401 and attempt == 1 and self._invalidate(token):
                    continue
                raise client_error(e, path) from None
            except NETWORK_ERRORS as e:
                self._local.conn = None  # its state is unknown now
                raise network_error(e, path, url) from None
            except ValueError as e:  # a 2xx whose body is not what Swift sends
                where = f" ({path})" if path else ""
                text = f"unexpected answer from Swift{where}: {redact(str(e))}"
                raise StorageError(text, path=path, driver=DRIVER) from None
        raise AssertionError("unreachable")

    def stream_error(self, e: BaseException, path: str) -> StorageError:
        """The error for a network fault while a response body is being read."""
        return network_error(e, path, self.storage_url)

    # --- capabilities ------------------------------------------------------------------
    def capabilities(self) -> Capabilities:
        """The cluster's limits, from `/info` on first use (one request), then cached.

        A cluster without a usable `/info` (hidden, missing, not JSON) gets Swift's
        defaults. A transient fault (throttling, 5xx, a dropped connection) raises
        `TransientError` and is not cached; other faults reaching the cluster raise as
        `call` does."""
        caps = self._capabilities
        if caps is None:
            with self._info_lock:
                if self._capabilities is None:
                    self._capabilities = Capabilities.from_info(self._read_info())
                caps = self._capabilities
        return caps

    def lower_listing_limit(self, limit: int) -> None:
        """Use listing pages of at most `limit` names from now on: the cluster said so
        (`412 Maximum limit is N`) though `/info` did not."""
        caps = self.capabilities()
        if 0 < limit < caps.listing_limit:
            log.info("Swift allows %d names a listing page, not %d", limit, caps.listing_limit)
            self._capabilities = replace(caps, listing_limit=limit)

    def _read_info(self) -> object:
        """The parsed JSON of `/info`, or None if the cluster gives no usable one."""
        url, _ = self._authenticate()
        try:
            parsed, connection = urlparse(info_url(url)), self._connection(url)[1]
        except ValueError as e:
            raise bad_url(url, e) from None
        except ClientException as e:
            raise client_error(e, None) from None
        where = without_userinfo(parsed.geturl())
        self.count()
        try:
            return sc.get_capabilities((parsed, connection))
        except ClientException as e:
            error = client_error(e, None)
            if isinstance(error, TransientError):
                raise error from None
            log.info("no usable %s (%s): Swift's default limits apply", where, error)
            return None
        except NETWORK_ERRORS as e:
            self._local.conn = None
            raise network_error(e, None, url) from None
        except ValueError:
            log.info("%s is not JSON: Swift's default limits apply", where)
            return None

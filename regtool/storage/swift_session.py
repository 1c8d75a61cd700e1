"""Talking to Swift: login (v1 or Keystone), one token shared by all threads, an HTTP
connection per thread (swiftclient's are not thread-safe), a count of every request, and
the translation of swiftclient, requests and urllib3 errors into regtool's.

swiftclient's own retries are not used: transient faults raise `TransientError` for the
retry wrapper, so `requests` counts every HTTP request made.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlparse

import requests
import urllib3
from swiftclient import client as sc
from swiftclient.exceptions import ClientException

from regtool.errors import (
    AuthenticationFailed,
    PathNotFound,
    StorageError,
    TransientError,
    Unreachable,
)

T = TypeVar("T")

NETWORK_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)

# swiftclient logs failed requests at INFO with the first 16 characters of the token.
sc.logger_settings["reveal_sensitive_prefix"] = 0


@dataclass(frozen=True)
class SwiftCredentials:
    """Credentials the way the `swift` CLI takes them (ST_* for v1, OS_* for Keystone)."""

    auth_url: str | None = None
    user: str | None = None
    key: str | None = field(default=None, repr=False)
    auth_version: str = "1"  # "1" (tempauth / Orbit), "2", "3" (Keystone)
    project_name: str | None = None
    project_id: str | None = None
    user_domain_name: str | None = None
    project_domain_name: str | None = None
    region_name: str | None = None
    storage_url: str | None = None  # pre-authenticated: with `token`, no login needed
    token: str | None = field(default=None, repr=False)
    insecure: bool = False


class RangeNotSatisfiable(StorageError):
    """HTTP 416: an offset at or past the end, which `open` reads as empty."""


class PreconditionFailed(StorageError):
    """HTTP 412: a conditional request's condition (`If-None-Match: *`) did not hold."""


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


class SwiftSession:
    """Login state, connections and the request count of one driver."""

    name = "swift"

    def __init__(self, credentials: SwiftCredentials, timeout: float):
        self.credentials = credentials
        self.timeout = timeout
        self._auth: tuple[str, str] | None = None
        self._preauth_used = False
        self._auth_lock = threading.Lock()
        self._lock = threading.Lock()
        self._requests = 0
        self._local = threading.local()
        # Weak: a thread's connection goes with the thread; close() closes the rest.
        self._connections: weakref.WeakSet[sc.HTTPConnection] = weakref.WeakSet()

    @property
    def requests(self) -> int:
        """HTTP requests made so far, logins included."""
        return self._requests

    def count(self) -> None:
        with self._lock:
            self._requests += 1

    def close(self) -> None:
        with self._lock:
            connections, self._connections = list(self._connections), weakref.WeakSet()
        for conn in connections:
            with contextlib.suppress(NETWORK_ERRORS):
                conn.close()
        self._local = threading.local()

    def _login(self) -> tuple[str, str]:
        c = self.credentials
        if c.storage_url and c.token and not self._preauth_used:
            self._preauth_used = True
            return c.storage_url, c.token
        if not (c.auth_url and c.user and c.key is not None):
            what = "the token was refused" if c.token else "incomplete credentials"
            raise AuthenticationFailed(
                f"cannot log in to Swift: {what} (need auth URL, user and key)", driver=self.name
            )
        refused = AuthenticationFailed(
            f"Swift refused the credentials for user {c.user} at {c.auth_url}", driver=self.name
        )
        self.count()
        if c.auth_version in ("1", "1.0"):
            try:
                url, token = sc.get_auth_1_0(
                    c.auth_url, c.user, c.key, insecure=c.insecure, timeout=self.timeout
                )
            except ClientException as e:
                if e.http_status in (401, 403):
                    raise refused from None
                raise self.error(e, None) from None
            except NETWORK_ERRORS as e:
                raise self.network_error(e, None, c.auth_url) from None
        else:
            url, token = self._keystone_login(refused)
        return c.storage_url or url, token

    def _keystone_login(self, refused: AuthenticationFailed) -> tuple[str, str]:
        """Keystone v2/v3 through keystoneauth1 (imported only when needed)."""
        from keystoneauth1 import exceptions as ks
        from keystoneauth1 import session
        from keystoneauth1.identity import v2, v3

        c = self.credentials
        assert c.auth_url and c.user and c.key is not None
        base = c.auth_url.rstrip("/")
        user, project = c.user, c.project_name
        if ":" in user and not (project or c.project_id):  # the CLI's "tenant:user" form
            project, user = user.split(":", 1)
        auth: v2.Password | v3.Password
        if c.auth_version.startswith("2"):
            url = base if base.endswith("/v2.0") else base + "/v2.0"
            auth = v2.Password(
                url, username=user, password=c.key, tenant_name=project, tenant_id=c.project_id
            )
        else:
            url = base if base.endswith("/v3") else base + "/v3"
            auth = v3.Password(
                url,
                password=c.key,
                username=user,
                user_domain_name=c.user_domain_name,
                project_name=project,
                project_id=c.project_id,
                project_domain_name=c.project_domain_name,
            )
        host = urlparse(url).netloc
        sess = session.Session(auth=auth, verify=not c.insecure, timeout=self.timeout)
        try:
            token = sess.get_token()
            storage = sess.get_endpoint(
                service_type="object-store", interface="public", region_name=c.region_name
            )
        except (ks.Unauthorized, ks.Forbidden):
            raise refused from None
        except (ks.ConnectTimeout, ks.RequestTimeout) as e:
            raise TransientError(f"Keystone at {host} timed out: {e}", driver=self.name) from None
        except ks.ConnectFailure as e:
            raise Unreachable(
                f"cannot connect to Keystone at {host}: {e}", driver=self.name
            ) from None
        except ks.HttpError as e:
            cls = TransientError if (e.http_status or 0) >= 500 else StorageError
            raise cls(f"Keystone at {host}: HTTP {e.http_status}", driver=self.name) from None
        except ks.ClientException as e:
            raise StorageError(f"Keystone at {host}: {e}", driver=self.name) from None
        if not token or not storage:
            raise StorageError(
                f"Keystone at {host} lists no object-store endpoint"
                + (f" in region {c.region_name}" if c.region_name else ""),
                driver=self.name,
            )
        return storage, token

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
        c = self.credentials
        with self._auth_lock:
            if self._auth is not None and self._auth[1] == token:
                self._auth = None
        return bool(c.auth_url and c.user and c.key is not None)

    def _connection(self, url: str) -> tuple[Any, sc.HTTPConnection]:
        conn = getattr(self._local, "conn", None)
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
        """One swiftclient request with this thread's connection and the shared token."""
        for attempt in (1, 2):
            url, token = self._authenticate()
            http_conn = self._connection(url)
            self.count()
            try:
                return fn(url, token, *args, http_conn=http_conn, **kwargs)
            except ClientException as e:
                if e.http_status == 401 and attempt == 1 and self._invalidate(token):
                    continue
                raise self.error(e, path) from None
            except NETWORK_ERRORS as e:
                self._local.conn = None  # its state is unknown now
                raise self.network_error(e, path, url) from None
        raise AssertionError("unreachable")

    def error(self, e: ClientException, path: str | None) -> StorageError:
        status = e.http_status
        where = f" ({path})" if path else ""
        text = f"{e.msg}{where}: HTTP {status} {e.http_reason}".strip()
        if status == 404 and path is not None:
            return PathNotFound(path, driver=self.name)
        if status == 416:
            return RangeNotSatisfiable(text, path=path, driver=self.name)
        if status == 412:
            return PreconditionFailed(text, path=path, driver=self.name)
        if status == 401:
            return AuthenticationFailed(
                f"Swift refused the token{where}", path=path, driver=self.name
            )
        if status in (408, 429, 498) or (status is not None and status >= 500):
            return TransientError(text, path=path, driver=self.name)
        return StorageError(text, path=path, driver=self.name)

    def network_error(
        self, e: BaseException, path: str | None, url: str | None = None
    ) -> StorageError:
        host = urlparse(url).netloc if url else "Swift"
        cause = _root_cause(e)
        reason = str(cause).rsplit("): ", 1)[-1] or type(cause).__name__  # drop urllib3's repr
        if _unreachable(cause):
            return Unreachable(f"cannot connect to {host}: {reason}", path=path, driver=self.name)
        if isinstance(e, requests.exceptions.SSLError):
            return StorageError(
                f"TLS error talking to {host}: {reason}", path=path, driver=self.name
            )
        return TransientError(f"connection to {host} failed: {reason}", path=path, driver=self.name)

    def capabilities(self) -> dict[str, Any]:
        """The cluster's `/info` (bulk delete limits and the like). A cluster that has no
        usable `/info` answers `{}`; a fault reaching it raises `StorageError`."""
        url, _ = self._authenticate()
        parsed = urlparse(url)
        version = parsed.path.find("/v1/")
        info_path = (parsed.path[:version] if version >= 0 else "") + "/info"
        self.count()
        try:
            info = sc.get_capabilities((parsed._replace(path=info_path), self._connection(url)[1]))
        except ClientException:
            return {}
        except (*NETWORK_ERRORS, ValueError) as e:
            raise StorageError(f"cannot read Swift's /info: {e}", driver=self.name) from None
        return info if isinstance(info, dict) else {}

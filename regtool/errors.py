"""The one error hierarchy.

Native paramiko, swiftclient and OS errors are translated into these inside `storage/`;
the CLI maps them to exit codes in one place (`cli/errors.py`), the server to OCI error
codes in one table.
"""

from __future__ import annotations

from collections.abc import Iterable


class RegtoolError(Exception):
    """Base of every error regtool raises on purpose."""


class UsageError(RegtoolError):
    """The user asked for something malformed: a bad LOCATION, reference or option."""


class LocationError(UsageError):
    """A LOCATION string or configuration file cannot be turned into storage."""


class StorageError(RegtoolError):
    """Storage could not do what was asked (other than a missing path)."""

    def __init__(self, message: str, *, path: str | None = None, driver: str | None = None):
        super().__init__(message)
        self.path = path
        self.driver = driver

    def __str__(self) -> str:
        text = super().__str__()
        return f"{self.driver}: {text}" if self.driver else text


class PathNotFound(StorageError, FileNotFoundError):
    """Nothing exists at the path."""

    def __init__(self, path: str, *, driver: str | None = None):
        super().__init__(f"no such path: {path or '/'}", path=path, driver=driver)


class InvalidPath(StorageError, ValueError):
    """A path that a driver refuses: empty segments, `.` or `..`, a leading slash."""

    def __init__(self, path: str, *, driver: str | None = None):
        super().__init__(f"invalid path: {path!r}", path=path, driver=driver)


class StorageFull(StorageError):
    """The store has no room for a write: no space left on its device (ENOSPC), or the
    user's disk quota is used up (EDQUOT). What the write had written is discarded. The
    message names the cause and the store."""


class AuthenticationFailed(StorageError):
    """The backend refused the credentials."""


class Unreachable(StorageError):
    """The backend could not be contacted at all."""


class TransientError(StorageError):
    """A fault worth retrying: a timeout, a 5xx, a dropped channel, throttling.
    `retry_after` is the wait in seconds the server asked for (HTTP `Retry-After`)."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        driver: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, path=path, driver=driver)
        self.retry_after = retry_after


class LayoutError(RegtoolError):
    """The storage does not hold a registry layout regtool can read."""


class NotFound(RegtoolError):
    """A repository, tag or manifest the user named does not exist."""


class ManifestInvalid(RegtoolError):
    """A manifest's bytes cannot be parsed as any known manifest format."""


class DigestInvalid(UsageError, ValueError):
    """A string is not a valid `algorithm:hex` digest."""


class NameInvalid(UsageError, ValueError):
    """A repository name or tag does not match the distribution grammar."""


def is_fault(error: object) -> bool:
    """Whether `error` is storage failing to answer (a timeout, a dropped connection,
    refused credentials, an I/O error), rather than a finding about what storage holds (a
    missing path, content that does not parse). A fault says nothing about the registry:
    tools report it as an access error, never as damage."""
    return isinstance(error, StorageError | OSError) and not isinstance(error, FileNotFoundError)


def raise_faults(outcomes: Iterable[object]) -> None:
    """Raise the first fault among `outcomes` (results and exceptions, as `map_outcomes`
    gives them), for a tool that stops at a fault rather than report it as damage."""
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and is_fault(outcome):
            raise outcome

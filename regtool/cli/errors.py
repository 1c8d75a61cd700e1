"""Errors -> exit codes and messages, in one place: 0 success, 1 problems found, 2 usage
or access."""

from __future__ import annotations

from regtool.errors import RegtoolError, StorageError, is_fault

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_READER_GONE = 141  # the reader of stdout went away: 128 + SIGPIPE, as a shell shows


def exit_code_for(error: BaseException) -> int:
    """Every expected failure (bad LOCATION, credentials, unreachable storage, a storage
    fault, not a registry, unknown repository) is a usage/access error: 2."""
    if isinstance(error, RegtoolError | OSError):
        return EXIT_USAGE
    raise error


def message_for(error: BaseException) -> str:
    """One line for people. A storage fault names the object it met, when its message
    does not already."""
    if not is_fault(error):
        return str(error)
    text = str(error) if isinstance(error, StorageError) else _os_error(error)
    path = getattr(error, "path", None) or getattr(error, "filename", None)
    return f"{text} (at {path})" if path and str(path) not in text else text


def _os_error(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"{type(error).__name__}: {error}"

"""Errors -> exit codes, in one place: 0 success, 1 problems found, 2 usage or access."""

from __future__ import annotations

from regtool.errors import RegtoolError

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2


def exit_code_for(error: BaseException) -> int:
    """Every expected failure (bad LOCATION, credentials, unreachable storage, not a
    registry, unknown repository) is a usage/access error: 2."""
    if isinstance(error, RegtoolError):
        return EXIT_USAGE
    raise error

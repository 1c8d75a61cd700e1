"""Regular expressions that match in linear time (RE2), for patterns operators write
against names anyone who can push chooses.

Python's `re` backtracks: `(a+)+b` against a tag of 40 `a`s runs for minutes, so one
careless `--keep-tags` and a hostile tag name would hang `prune`. RE2 (Google's, the
engine behind Go's `regexp`, which distribution, Harbor and zot use for the same job)
never backtracks; its syntax is Go's: no backreferences or lookaround.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 logs a refused pattern to stderr itself; we say it once


@dataclass(frozen=True)
class Regex:
    """`pattern` compiled by RE2; `ValueError` saying why it is refused."""

    pattern: str
    _compiled: Any = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        try:
            compiled = re2.compile(self.pattern, _OPTIONS)
        except re2.error as e:
            why = e.args[0] if e.args else e
            why = why.decode(errors="replace") if isinstance(why, bytes) else str(why)
            raise ValueError(why) from None
        object.__setattr__(self, "_compiled", compiled)

    def fullmatch(self, text: str) -> bool:
        """Whether the whole of `text` matches."""
        return self._compiled.fullmatch(text) is not None

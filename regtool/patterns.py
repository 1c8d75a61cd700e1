"""Globs over repository names and tags: `ci/*`, `team/**`, `pr-*`, `1.?`.

`*` and `?` stay within one name component (`ci/*` is `ci/web`, not `ci/web/cache`), `**`
crosses components, anything else is literal. Tags have no components, so in a tag `*`
is any run of characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from regtool.regex import Regex

_WILDCARDS = re.compile(r"\*\*|\*|\?")
_NAME_CHARS = re.compile(r"[a-z0-9._/*?-]+", re.ASCII)
_TAG_CHARS = re.compile(r"[A-Za-z0-9_.*?-]+", re.ASCII)


def is_pattern(text: str) -> bool:
    return bool(_WILDCARDS.search(text))


def _translate(text: str, one: str) -> Regex:
    out, last = [], 0
    for m in _WILDCARDS.finditer(text):
        out.append(re.escape(text[last : m.start()]))
        out.append({"**": ".*", "*": f"{one}*", "?": one}[m.group()])
        last = m.end()
    out.append(re.escape(text[last:]))
    return Regex("".join(out))  # linear time: `*a*a*a*b` never backtracks


@dataclass(frozen=True)
class RepositoryGlob:
    """A glob over repository names; `ValueError` for characters no name can hold."""

    text: str
    regex: Regex = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not _NAME_CHARS.fullmatch(self.text):
            raise ValueError(
                f"repository pattern {self.text[:100]!r}: names hold only lowercase "
                "letters, digits, '.', '_', '-' and '/' (wildcards: * ? **)"
            )
        object.__setattr__(self, "regex", _translate(self.text, "[^/]"))

    def matches(self, name: str) -> bool:
        return self.regex.fullmatch(name)


@dataclass(frozen=True)
class TagGlob:
    """A glob over tags; `ValueError` for characters no tag can hold."""

    text: str
    regex: Regex = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not _TAG_CHARS.fullmatch(self.text):
            raise ValueError(
                f"tag pattern {self.text[:140]!r}: tags hold only letters, digits, '_', "
                "'.' and '-' (wildcards: * ?)"
            )
        object.__setattr__(self, "regex", _translate(self.text.replace("**", "*"), "."))

    def matches(self, tag: str) -> bool:
        return self.regex.fullmatch(tag)

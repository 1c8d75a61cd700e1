"""YAML documents regtool reads (distribution's config.yml, retention policies): parsed
safely, a key given twice refused, and errors told without the text of the file.

PyYAML keeps the last of two equal keys without a word, so a policy that says
`keep_last: 5` and then `keep_last: 0` would silently delete every tag; distribution's
YAML parser (gopkg.in/yaml.v2) refuses such a document, and so does this one.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

YAMLError = yaml.YAMLError


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader refusing a mapping that gives one key twice."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable):
                if key in seen:
                    raise ConstructorError(
                        None, None, f"duplicate key {str(key)[:40]}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(data: str | bytes) -> Any:
    """The document in `data` (bytes: PyYAML detects the encoding and reports a bad
    one); `YAMLError` for a syntax error or a key given twice in one mapping."""
    return yaml.load(data, Loader=_UniqueKeyLoader)


#: A quoted bit of a PyYAML problem: a token's kind (`'<block end>'`), kept, or a
#: character of the file (`'\t'`), dropped.
_QUOTED_RE = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_TOKEN_KIND_RE = re.compile(r"'<[a-z ]+>'")


def yaml_problem(e: Exception) -> str:
    """Where and what kind of error, on one line, without the text of the file: a config
    holds passwords, and PyYAML's message quotes the offending line (and some problems
    quote a character of it: shown as `...`). Line and column count from 1."""
    problem = str(getattr(e, "problem", None) or getattr(e, "reason", None) or "")
    words = (
        _QUOTED_RE.sub(lambda m: m[0] if _TOKEN_KIND_RE.fullmatch(m[0]) else "...", problem)
        or type(e).__name__
    )
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {words}"
    position = getattr(e, "position", None)  # a ReaderError: a bad encoding
    return f"byte {position}: {words}" if isinstance(position, int) else words

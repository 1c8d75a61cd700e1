"""Retention policies: which tags of which repositories to keep, from flags or a YAML file.

A policy file (`regtool prune --policy retention.yml`):

    keep_referrers: false              # true: referrers of a deleted manifest stay
    rules:
      - repositories: ["ci/*"]         # globs: `*` within a name component, `**` across
        tags: ["pr-.*"]                # regexes (whole tag): the rule covers only these
        keep_tags: ['v?\\d+\\.\\d+\\.\\d+', latest]   # regexes: covered tags always kept
        keep_last: 5                   # the 5 most recently pushed covered tags
        keep_pushed_within: 2d
        keep_pulled_within: 30d        # needs pull records (`regtool serve`)
        delete_older_than: 7d          # only tags pushed longer ago than this may go
        delete_untagged: true          # manifests no tag, kept index or subject reaches

Flags (`--keep-last 5 --older-than 7d ...`) make a policy of one rule. See
`regtool/retention/__init__.py` for how rules combine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from regtool.durations import format_duration, parse_duration
from regtool.errors import UsageError
from regtool.patterns import RepositoryGlob
from regtool.regex import Regex
from regtool.yamldoc import YAMLError, load_yaml, yaml_problem


class PolicyError(UsageError):
    """A policy that cannot be used: unknown key, bad regex, glob or duration, a rule that
    says nothing."""


@dataclass(frozen=True)
class Rule:
    """One rule. A tag is *covered* by the rule when its repository matches one of
    `repositories` and the tag matches one of `tags` (every tag when `tags` is empty)."""

    repositories: tuple[RepositoryGlob, ...] = (RepositoryGlob("**"),)
    tags: tuple[Regex, ...] = ()
    keep_tags: tuple[Regex, ...] = ()
    keep_last: int | None = None
    keep_pushed_within: timedelta | None = None
    keep_pulled_within: timedelta | None = None
    delete_older_than: timedelta | None = None
    delete_untagged: bool = False

    @property
    def deletes_tags(self) -> bool:
        """Whether the rule may delete tags at all: only one that bounds what it keeps by
        count or age does (`keep_tags` alone would delete every other tag)."""
        return any(
            v is not None
            for v in (
                self.keep_last,
                self.keep_pushed_within,
                self.keep_pulled_within,
                self.delete_older_than,
            )
        )

    def covers_repository(self, name: str) -> bool:
        return any(g.matches(name) for g in self.repositories)

    def covers_tag(self, tag: str) -> bool:
        return not self.tags or any(p.fullmatch(tag) for p in self.tags)

    def describe(self) -> str:
        """The rule as flags, for reports: `--repositories 'ci/*' --keep-last 5`."""
        words = [f"--repositories {g.text}" for g in self.repositories if g.text != "**"]
        words += [f"--tags {p.pattern}" for p in self.tags]
        words += [f"--keep-tags {p.pattern}" for p in self.keep_tags]
        if self.keep_last is not None:
            words.append(f"--keep-last {self.keep_last}")
        for flag, span in (
            ("--keep-within", self.keep_pushed_within),
            ("--keep-pulled-within", self.keep_pulled_within),
            ("--older-than", self.delete_older_than),
        ):
            if span is not None:
                words.append(f"{flag} {format_duration(span)}")
        if self.delete_untagged:
            words.append("--delete-untagged")
        return " ".join(words)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    keep_referrers: bool = False

    def rules_for(self, repository: str) -> list[Rule]:
        return [r for r in self.rules if r.covers_repository(repository)]

    @property
    def needs_pull_records(self) -> bool:
        return any(r.keep_pulled_within is not None for r in self.rules)


_RULE_KEYS = {
    "repositories",
    "tags",
    "keep_tags",
    "keep_last",
    "keep_pushed_within",
    "keep_pulled_within",
    "delete_older_than",
    "delete_untagged",
}
_POLICY_KEYS = {"rules", "keep_referrers"}


def make_rule(
    where: str,
    *,
    repositories: Iterable[str] = (),
    tags: Iterable[str] = (),
    keep_tags: Iterable[str] = (),
    keep_last: int | None = None,
    keep_pushed_within: timedelta | None = None,
    keep_pulled_within: timedelta | None = None,
    delete_older_than: timedelta | None = None,
    delete_untagged: bool = False,
) -> Rule:
    """A checked rule; `PolicyError` naming `where` (`--keep-tags`, `rule 2`) otherwise."""
    if keep_last is not None and keep_last < 0:
        raise PolicyError(f"{where}: keep_last must be 0 or more, not {keep_last}")
    globs = tuple(_glob(g, where) for g in repositories) or (RepositoryGlob("**"),)
    rule = Rule(
        repositories=globs,
        tags=tuple(_regex(p, where) for p in tags),
        keep_tags=tuple(_regex(p, where) for p in keep_tags),
        keep_last=keep_last,
        keep_pushed_within=keep_pushed_within,
        keep_pulled_within=keep_pulled_within,
        delete_older_than=delete_older_than,
        delete_untagged=delete_untagged,
    )
    if not rule.deletes_tags and not delete_untagged:
        raise PolicyError(
            f"{where}: says nothing to delete: give keep_last, keep_pushed_within, "
            "keep_pulled_within, delete_older_than or delete_untagged "
            "(--keep-last, --keep-within, --keep-pulled-within, --older-than, "
            "--delete-untagged)"
        )
    return rule


def load_policy(path: str | Path) -> Policy:
    """The policy in YAML file `path` (format in the module docstring); `PolicyError`
    naming the file and the key for anything it cannot use."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyError(f"{where}: cannot read the policy: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise PolicyError(f"{where}: not UTF-8 text") from None
    try:
        doc = load_yaml(text)
    except YAMLError as e:
        raise PolicyError(f"{where}: not valid YAML: {yaml_problem(e)}") from None
    return policy_from_document(doc, where)


def policy_from_document(doc: Any, where: str) -> Policy:
    """A policy from a parsed YAML document (a mapping with `rules`)."""
    if not isinstance(doc, dict):
        raise PolicyError(f"{where}: expected a mapping with 'rules'")
    _known_keys(doc, _POLICY_KEYS, where)
    raw_rules = doc.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise PolicyError(f"{where}: 'rules' must be a non-empty list of rules")
    keep_referrers = doc.get("keep_referrers", False)
    if not isinstance(keep_referrers, bool):
        raise PolicyError(f"{where}: keep_referrers must be true or false")
    rules = []
    for n, raw in enumerate(raw_rules, 1):
        rule_where = f"{where}: rule {n}"
        if not isinstance(raw, dict):
            raise PolicyError(f"{rule_where}: expected a mapping")
        _known_keys(raw, _RULE_KEYS, rule_where)
        rules.append(
            make_rule(
                rule_where,
                repositories=_strings(raw, "repositories", rule_where),
                tags=_strings(raw, "tags", rule_where),
                keep_tags=_strings(raw, "keep_tags", rule_where),
                keep_last=_count(raw, "keep_last", rule_where),
                keep_pushed_within=_duration(raw, "keep_pushed_within", rule_where),
                keep_pulled_within=_duration(raw, "keep_pulled_within", rule_where),
                delete_older_than=_duration(raw, "delete_older_than", rule_where),
                delete_untagged=_flag(raw, "delete_untagged", rule_where),
            )
        )
    return Policy(tuple(rules), keep_referrers)


def _known_keys(doc: dict[Any, Any], known: set[str], where: str) -> None:
    for key in doc:
        if key not in known:
            raise PolicyError(
                f"{where}: unknown key {str(key)!r} (known: {', '.join(sorted(known))})"
            )


def _strings(doc: dict[str, Any], key: str, where: str) -> list[str]:
    value = doc.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}: {key} must be a string or a list of strings")
    if key in doc and not value:
        # Absent means "all"; an empty list written out (a generated policy whose list
        # came out empty) must not mean "all" too.
        raise PolicyError(f"{where}: {key} is an empty list: leave it out to mean all")
    return value


def _count(doc: dict[str, Any], key: str, where: str) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(f"{where}: {key} must be a whole number")
    return value


def _duration(doc: dict[str, Any], key: str, where: str) -> timedelta | None:
    value = doc.get(key)
    if value is None:
        return None
    try:
        return parse_duration(str(value))
    except ValueError as e:
        raise PolicyError(f"{where}: {key}: {e}") from None


def _flag(doc: dict[str, Any], key: str, where: str) -> bool:
    value = doc.get(key, False)
    if not isinstance(value, bool):
        raise PolicyError(f"{where}: {key} must be true or false")
    return value


def _regex(pattern: str, where: str) -> Regex:
    try:
        return Regex(pattern)
    except ValueError as e:
        raise PolicyError(f"{where}: invalid regex {pattern[:100]!r}: {e}") from None


def _glob(text: str, where: str) -> RepositoryGlob:
    try:
        return RepositoryGlob(text)
    except ValueError as e:
        raise PolicyError(f"{where}: {e}") from None

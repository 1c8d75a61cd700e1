"""Which tags a policy keeps: the rules of `regtool/retention/__init__.py` applied to one
repository's tags, by push time (and pull time, where pull records exist)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from regtool.durations import format_duration
from regtool.retention.policy import Rule


@dataclass(frozen=True)
class TagState:
    """What a rule needs to know of a tag. `target` is what it names (a manifest digest
    or V1 image id, as text); `pushed` when its link was written."""

    tag: str
    target: str | None
    pushed: datetime | None


@dataclass(frozen=True)
class PullTimes:
    """One repository's pull records: `last` maps a target to its last recorded pull;
    records began at `since`, so before it a missing record means "unknown"."""

    since: datetime
    last: Mapping[str, datetime]


@dataclass(frozen=True)
class Verdict:
    keep: bool
    reason: str


def decide(
    tags: list[TagState],
    rules: list[Rule],
    now: datetime,
    pulled: PullTimes | None = None,
) -> dict[str, Verdict]:
    """A verdict for every tag of one repository under the rules that cover it.

    A rule that covers a tag keeps it if a keep clause does (`keep_tags`, `keep_last`,
    `keep_pushed_within`, `keep_pulled_within`), and otherwise condemns it if it may
    delete tags and the tag is older than `delete_older_than` (when given). A tag is
    deleted if some rule condemns it and no rule keeps it; a tag no rule condemns stays.
    A tag whose link could not be read, or whose push time is unknown, is kept.
    `pulled`: the repository's pull records (None: the store keeps none, and a rule with
    `keep_pulled_within` keeps every tag it covers)."""
    kept: dict[str, list[str]] = {}
    condemned: dict[str, list[str]] = {}
    for rule in rules:
        covered = [t for t in tags if rule.covers_tag(t.tag)]
        ranked = _ranked(rule, covered)
        for state in covered:
            why_keep = _keep_reason(rule, state, ranked, now, pulled)
            if why_keep is not None:
                kept.setdefault(state.tag, []).append(why_keep)
                continue
            why_delete = _delete_reason(rule, state, now)
            if why_delete is not None:
                condemned.setdefault(state.tag, []).append(why_delete)
    verdicts = {}
    for state in tags:
        if state.tag in kept:
            verdicts[state.tag] = Verdict(True, kept[state.tag][0])
        elif state.tag in condemned:
            verdicts[state.tag] = Verdict(False, condemned[state.tag][0])
        else:
            verdicts[state.tag] = Verdict(True, "no rule deletes it")
    return verdicts


def _ranked(rule: Rule, covered: list[TagState]) -> dict[str, int]:
    """Rank (1 = most recent) by push time of the covered tags `keep_tags` does not keep
    already; ties broken by tag name, so a plan is the same on every run."""
    candidates = [
        t
        for t in covered
        if t.pushed is not None and not any(p.fullmatch(t.tag) for p in rule.keep_tags)
    ]
    candidates.sort(key=lambda t: (t.pushed, t.tag), reverse=True)
    return {t.tag: n for n, t in enumerate(candidates, 1)}


def _keep_reason(
    rule: Rule,
    state: TagState,
    ranked: dict[str, int],
    now: datetime,
    pulled: PullTimes | None,
) -> str | None:
    if state.target is None:
        return "its link could not be read"
    for pattern in rule.keep_tags:
        if pattern.fullmatch(state.tag):
            return f"matches --keep-tags {pattern.pattern}"
    if state.pushed is None:
        return "push time unknown"
    if rule.keep_last is not None and ranked.get(state.tag, 0) <= rule.keep_last:
        return f"among the last {rule.keep_last} pushed (#{ranked[state.tag]})"
    if rule.keep_pushed_within is not None and state.pushed > now - rule.keep_pushed_within:
        return f"pushed within {format_duration(rule.keep_pushed_within)}"
    if rule.keep_pulled_within is not None:
        start = now - rule.keep_pulled_within
        within = format_duration(rule.keep_pulled_within)
        if pulled is None:
            return "no pull records"
        last = pulled.last.get(state.target)
        if last is not None and last > start:
            return f"pulled within {within}"
        if pulled.since > start:  # unknown is never "not pulled"
            return f"pull records began {pulled.since:%Y-%m-%d}, less than {within} ago"
    return None


def _delete_reason(rule: Rule, state: TagState, now: datetime) -> str | None:
    if not rule.deletes_tags or state.pushed is None:
        return None
    if rule.delete_older_than is not None:
        if state.pushed > now - rule.delete_older_than:
            return None
        why = [f"pushed more than {format_duration(rule.delete_older_than)} ago"]
    else:
        why = []
    if rule.keep_last is not None:
        why.append(f"not among the last {rule.keep_last} pushed")
    if rule.keep_pushed_within is not None:
        why.append(f"not pushed within {format_duration(rule.keep_pushed_within)}")
    if rule.keep_pulled_within is not None:
        why.append(f"not pulled within {format_duration(rule.keep_pulled_within)}")
    return ", ".join(why)

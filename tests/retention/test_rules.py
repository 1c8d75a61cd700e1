"""How rules decide tags, alone and combined; globs; policy files."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from regtool.patterns import RepositoryGlob, TagGlob
from regtool.retention.decide import PullTimes, TagState, decide
from regtool.retention.policy import PolicyError, load_policy, make_rule

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _tags(**ages_in_days: float) -> list[TagState]:
    return [
        TagState(tag, f"sha256:{tag}", NOW - timedelta(days=age))
        for tag, age in ages_in_days.items()
    ]


def _deleted(tags: list[TagState], *rules: object, pulled: PullTimes | None = None) -> set[str]:
    return {t for t, v in decide(tags, list(rules), NOW, pulled).items() if not v.keep}  # type: ignore[arg-type]


TAGS = _tags(v1=90, v2=60, pr1=40, pr2=20, pr3=5, latest=1)


def test_keep_last_keeps_the_most_recently_pushed() -> None:
    assert _deleted(TAGS, make_rule("r", keep_last=2)) == {"v1", "v2", "pr1", "pr2"}
    assert _deleted(TAGS, make_rule("r", keep_last=0)) == set(t.tag for t in TAGS)


def test_older_than_deletes_only_old_tags() -> None:
    assert _deleted(TAGS, make_rule("r", delete_older_than=timedelta(days=30))) == {
        "v1",
        "v2",
        "pr1",
    }


def test_keep_within_keeps_recent_pushes() -> None:
    assert _deleted(TAGS, make_rule("r", keep_pushed_within=timedelta(days=30))) == {
        "v1",
        "v2",
        "pr1",
    }


def test_keep_last_and_older_than_together_delete_only_what_both_allow() -> None:
    rule = make_rule("r", keep_last=5, delete_older_than=timedelta(days=7))
    assert _deleted(TAGS, rule) == {"v1"}
    rule = make_rule("r", keep_last=1, delete_older_than=timedelta(days=30))
    assert _deleted(TAGS, rule) == {"v1", "v2", "pr1"}


def test_keep_tags_are_kept_and_not_counted() -> None:
    rule = make_rule("r", keep_last=1, keep_tags=[r"v\d+"])
    verdicts = decide(TAGS, [rule], NOW)
    assert {t for t, v in verdicts.items() if not v.keep} == {"pr1", "pr2", "pr3"}
    assert verdicts["v1"].reason == r"matches --keep-tags v\d+"
    assert verdicts["latest"].reason == "among the last 1 pushed (#1)"
    assert verdicts["pr3"].reason == "not among the last 1 pushed"
    # whole tags only: `v` does not keep `v1`
    assert "v1" in _deleted(TAGS, make_rule("r", keep_last=0, keep_tags=["v"]))


def test_tags_narrow_a_rule_to_the_tags_it_covers() -> None:
    rule = make_rule("r", tags=["pr.*"], keep_last=1)
    verdicts = decide(TAGS, [rule], NOW)
    assert {t for t, v in verdicts.items() if not v.keep} == {"pr1", "pr2"}
    assert verdicts["v1"].reason == "no rule deletes it"


def test_a_tag_any_rule_keeps_is_kept() -> None:
    strict = make_rule("r1", keep_last=0)
    lenient = make_rule("r2", tags=["v.*"], keep_pushed_within=timedelta(days=365))
    assert _deleted(TAGS, strict, lenient) == {"pr1", "pr2", "pr3", "latest"}


def test_unknown_push_time_or_unreadable_link_keeps_the_tag() -> None:
    tags = [TagState("a", "sha256:a", None), TagState("b", None, NOW - timedelta(days=99))]
    verdicts = decide(tags, [make_rule("r", keep_last=0)], NOW)
    assert verdicts["a"].keep and verdicts["a"].reason == "push time unknown"
    assert verdicts["b"].keep and verdicts["b"].reason == "its link could not be read"


def test_pulled_within_keeps_what_was_pulled_and_never_guesses() -> None:
    rule = make_rule("r", keep_pulled_within=timedelta(days=30))
    long_ago = NOW - timedelta(days=400)
    records = PullTimes(long_ago, {"sha256:pr1": NOW - timedelta(days=2)})
    assert _deleted(TAGS, rule, pulled=records) == {"v1", "v2", "pr2", "pr3", "latest"}
    # records that began within the window cannot tell "not pulled" from "before records"
    recent = PullTimes(NOW - timedelta(days=3), {"sha256:pr1": NOW - timedelta(days=2)})
    verdicts = decide(TAGS, [rule], NOW, recent)
    assert all(v.keep for v in verdicts.values())
    assert verdicts["v1"].reason.startswith("pull records began 2026-05-29")
    assert _deleted(TAGS, rule, pulled=None) == set()  # no records: nothing is deleted


def test_a_rule_must_say_what_to_delete() -> None:
    with pytest.raises(PolicyError, match="says nothing to delete"):
        make_rule("r", keep_tags=["v.*"])
    assert not make_rule("r", delete_untagged=True).deletes_tags


def test_globs() -> None:
    assert RepositoryGlob("ci/*").matches("ci/web")
    assert not RepositoryGlob("ci/*").matches("ci/web/cache")
    assert RepositoryGlob("ci/**").matches("ci/web/cache")
    assert RepositoryGlob("app").matches("app") and not RepositoryGlob("app").matches("app2")
    assert TagGlob("pr-*").matches("pr-12") and not TagGlob("pr-*").matches("v1")
    assert TagGlob("1.?").matches("1.2") and not TagGlob("1.?").matches("1x2")
    with pytest.raises(ValueError):
        RepositoryGlob("Team/*")


def test_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "retention.yml"
    path.write_text(
        "keep_referrers: true\n"
        "rules:\n"
        "  - repositories: ['ci/*']\n"
        "    keep_last: 5\n"
        "    delete_older_than: 7d\n"
        "  - keep_tags: ['v?\\d+\\.\\d+\\.\\d+', latest]\n"
        "    delete_older_than: 30d\n"
        "    delete_untagged: true\n"
    )
    policy = load_policy(path)
    assert policy.keep_referrers
    ci, everything = policy.rules
    assert ci.keep_last == 5 and ci.delete_older_than == timedelta(days=7)
    assert policy.rules_for("ci/web") == [ci, everything]
    assert policy.rules_for("web") == [everything]
    assert everything.keep_tags[0].fullmatch("v1.2.3")
    assert everything.describe() == (
        r"--keep-tags v?\d+\.\d+\.\d+ --keep-tags latest --older-than 30d --delete-untagged"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  - keep_lst: 5\n", "rule 1: unknown key 'keep_lst'"),
        ("rulez: []\n", "unknown key 'rulez'"),
        ("rules: []\n", "'rules' must be a non-empty list"),
        ("rules:\n  - keep_last: five\n", "keep_last must be a whole number"),
        ("rules:\n  - keep_last: 1\n    tags: ['(']\n", "invalid regex '('"),
        ("rules:\n  - delete_older_than: soon\n", "'soon' is not a duration"),
        ("rules:\n  - keep_last: 1\n    repositories: ['A/*']\n", "repository pattern"),
        ("rules: [\n", "not valid YAML"),
        # PyYAML keeps the last of two equal keys: here that would delete every tag.
        ("rules:\n  - keep_last: 1\n    keep_last: 0\n", "line 3, column 5: duplicate key"),
        ("rules:\n  - keep_last: 1\nrules:\n  - keep_last: 0\n", "duplicate key rules"),
        ("rules:\n  - keep_last: 1\n    repositories: []\n", "repositories is an empty list"),
        ("rules:\n  - keep_last: 1\n    tags: []\n", "tags is an empty list"),
        ("rules:\n  - keep_last: 1\n    keep_tags: ['(a)\\1']\n", "invalid escape"),
    ],
)
def test_policy_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "retention.yml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_policy(path)


def test_regexes_match_in_linear_time() -> None:
    """A tag anyone who can push names cannot make a careless pattern run for ever:
    Python's backtracking `re` takes minutes for this one, RE2 microseconds."""
    rule = make_rule("test", keep_tags=["(a+)+b", "(a|aa)+c"], keep_last=1)
    started = time.process_time()
    for hostile in ("a" * 32, "a" * 5000):  # 2**32 steps for a backtracking engine
        assert not any(p.fullmatch(hostile) for p in rule.keep_tags)
    assert time.process_time() - started < 1
    assert rule.keep_tags[0].fullmatch("aaab")

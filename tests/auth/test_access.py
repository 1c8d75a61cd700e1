"""The access each request needs (distribution's, one difference) and the rules file."""

from __future__ import annotations

from pathlib import Path

import pytest

from regtool.errors import UsageError
from regtool.server.auth.access import CATALOG, Access, AccessRules, needed

RULES = """
rules:
  - repositories: ["team/*"]
    users: [alice]
    allow: [pull, push, delete]
  - repositories: ["**"]
    users: [bob]
    allow: [pull]
  - repositories: ["public/*"]
    anonymous: true
    allow: [pull]
  - repositories: ["shared"]
    users: ["*"]
    allow: [pull]
"""


@pytest.mark.parametrize(
    ("method", "route", "mount_from", "want"),
    [
        ("GET", "manifests", None, [("app", ("pull",))]),
        ("HEAD", "blobs", None, [("app", ("pull",))]),
        ("GET", "tags", None, [("app", ("pull",))]),
        ("GET", "referrers", None, [("app", ("pull",))]),
        ("PUT", "manifests", None, [("app", ("pull", "push"))]),
        ("POST", "uploads", None, [("app", ("pull", "push"))]),
        ("PATCH", "uploads", None, [("app", ("pull", "push"))]),
        ("DELETE", "uploads", None, [("app", ("pull", "push"))]),  # cancelling: push
        ("DELETE", "manifests", None, [("app", ("delete",))]),
        ("DELETE", "blobs", None, [("app", ("delete",))]),
        ("POST", "uploads", "other", [("app", ("pull", "push")), ("other", ("pull",))]),
        ("POST", "uploads", "app", [("app", ("pull", "push"))]),
    ],
)
def test_needed_per_route(
    method: str, route: str, mount_from: str | None, want: list[tuple[str, tuple[str, ...]]]
) -> None:
    assert needed(method, "app", route, mount_from) == [Access("repository", n, a) for n, a in want]


def test_catalog_and_base() -> None:
    assert needed("GET", None, "catalog", None) == [CATALOG]
    assert CATALOG.scope == "registry:catalog:*"
    assert needed("GET", None, "base", None) == []


def test_rules(tmp_path: Path) -> None:
    path = tmp_path / "access.yml"
    path.write_text(RULES)
    rules = AccessRules.load(path)
    assert rules.allows("alice", "team/app", "push")
    assert not rules.allows("alice", "team/sub/app", "pull")  # `*` stays in a component
    assert rules.allows("bob", "team/sub/app", "pull")  # `**` crosses them
    assert not rules.allows("alice", "other", "pull")
    assert rules.allows("alice", "public/x", "pull")  # anonymous grants hold for users too
    assert rules.allows("alice", "shared", "pull")  # "*": every logged-in user
    assert rules.allows("bob", "team/app", "pull")
    assert not rules.allows("bob", "team/app", "push")
    assert rules.allows(None, "public/x", "pull")
    assert not rules.allows(None, "public/x", "push")
    assert not rules.allows(None, "shared", "pull")
    assert rules.anonymous_grants
    no_file = AccessRules()
    assert no_file.allows("anyone", "x", "delete") and not no_file.allows(None, "x", "pull")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: {}", "must be a mapping with one key, rules: a list"),
        ("rules: []\nextra: 1", "must be a mapping with one key"),
        ("rules: [[1]]", "rule 1: must be a mapping"),
        (
            "rules:\n- {repositories: [a], users: [x], allow: [pull, write]}",
            "unknown action 'write'",
        ),
        ("rules:\n- {repositories: [a], allow: [pull]}", "grants nothing"),
        ("rules:\n- {repositories: [], users: [x], allow: [pull]}", "must not be empty"),
        ("rules:\n- {repositories: [a], users: [x], allow: [pull], who: y}", "unknown key 'who'"),
        ("rules:\n- {repositories: [a], anonymous: yes please, allow: [pull]}", "true or false"),
        ("rules: [\n", "not valid YAML: line 2, column 1"),
        # PyYAML keeps the last of two equal keys: a rule would change without a word
        ("rules:\n- {repositories: [a], users: [x], allow: [pull], allow: [push]}", "duplicate"),
        ("rules:\n- {repositories: [Team/*], users: [x], allow: [pull]}", "repository pattern"),
    ],
)
def test_a_malformed_rules_file_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "access.yml"
    path.write_text(text)
    with pytest.raises(UsageError) as e:
        AccessRules.load(path)
    assert str(e.value).startswith(f"access rules {path}")
    assert message in str(e.value)

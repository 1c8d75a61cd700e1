"""Who may do what where: the access each request needs, and the rules (an optional
YAML file) that grant it to htpasswd users.

What a request needs is distribution's (`registry/handlers/app.go`,
`appendAccessRecords`), so the same tokens and the same habits work for both: GET and
HEAD need `pull` on the repository; POST, PUT and PATCH need `pull` and `push`; DELETE
of a manifest, tag or blob needs `delete`; a cross-repository mount needs `pull` on the
repository it mounts from as well; `/v2/_catalog` needs `registry:catalog:*`. One
difference: cancelling an upload (DELETE of `/blobs/uploads/<id>`) needs `pull` and `push` here,
as it deletes nothing stored.

The rules file:

    rules:
      - repositories: ["team/*"]      # globs: `*` within a name component, `**` across
        users: [alice]                # htpasswd users; "*" is every logged-in user
        allow: [pull, push, delete]
      - repositories: ["**"]          # every repository
        users: [bob]
        allow: [pull]
      - repositories: ["public/*"]
        anonymous: true               # also without logging in
        allow: [pull]

An action is allowed when any rule grants it; nothing else is. Without a rules file
every logged-in user may do everything and nobody else anything (distribution's
htpasswd behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regtool.errors import UsageError
from regtool.patterns import RepositoryGlob

PULL, PUSH, DELETE = "pull", "push", "delete"
ACTIONS = (PULL, PUSH, DELETE)
#: Any logged-in user, in a rule's `users`.
EVERY_USER = "*"


@dataclass(frozen=True)
class Access:
    """One resource and the actions a request needs on it, as a token scope names
    them: `repository:team/app:pull,push`, `registry:catalog:*`."""

    type: str
    name: str
    actions: tuple[str, ...]

    @property
    def scope(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


CATALOG = Access("registry", "catalog", ("*",))


def needed(method: str, name: str | None, route: str, mount_from: str | None) -> list[Access]:
    """The access a request needs: `name` is its repository (None for `/v2/` and
    `_catalog`), `route` the last part of its path pattern (`manifests`, `blobs`,
    `uploads`, `tags`, `referrers`, `catalog`, `base`), `mount_from` the repository of a
    mount's `from`. `/v2/` needs nothing but a login."""
    if route == "catalog":
        return [CATALOG]
    if name is None:
        return []
    if method in ("GET", "HEAD"):
        actions: tuple[str, ...] = (PULL,)
    elif method == "DELETE" and route != "uploads":
        actions = (DELETE,)
    else:
        actions = (PULL, PUSH)
    wanted = [Access("repository", name, actions)]
    if mount_from is not None and mount_from != name:
        wanted.append(Access("repository", mount_from, (PULL,)))
    return wanted


@dataclass(frozen=True)
class Rule:
    repositories: tuple[RepositoryGlob, ...]
    users: frozenset[str]
    anonymous: bool
    allow: frozenset[str]

    def grants(self, user: str | None, repository: str, action: str) -> bool:
        if action not in self.allow:
            return False
        if user is None:
            if not self.anonymous:
                return False
        elif not (user in self.users or EVERY_USER in self.users or self.anonymous):
            return False
        return any(p.matches(repository) for p in self.repositories)


class AccessRules:
    """The grants of a rules file; with no file, everything for logged-in users."""

    def __init__(self, rules: list[Rule] | None = None):
        self.rules = rules

    @classmethod
    def load(cls, path: Path) -> AccessRules:
        """The rules in the YAML file at `path`; `UsageError` naming the file (and the
        rule, by its number from 1) when it cannot be read or a rule is malformed."""
        from regtool.yamldoc import YAMLError, load_yaml, yaml_problem

        try:
            doc: Any = load_yaml(path.read_bytes())
        except OSError as e:
            raise UsageError(f"cannot read access rules {path}: {e.strerror or e}") from None
        except YAMLError as e:  # a key given twice too: a rule must not change silently
            raise UsageError(f"access rules {path}: not valid YAML: {yaml_problem(e)}") from None
        if not isinstance(doc, dict) or set(doc) != {"rules"} or not isinstance(doc["rules"], list):
            raise UsageError(f"access rules {path}: must be a mapping with one key, rules: a list")
        where = f"access rules {path} rule"
        return cls([_rule(r, f"{where} {i}") for i, r in enumerate(doc["rules"], 1)])

    @property
    def anonymous_grants(self) -> bool:
        """Whether anything at all is allowed without logging in."""
        return self.rules is not None and any(r.anonymous for r in self.rules)

    def allows(self, user: str | None, repository: str, action: str) -> bool:
        """Whether `user` (None: not logged in) may `action` on `repository`."""
        if self.rules is None:
            return user is not None
        return any(r.grants(user, repository, action) for r in self.rules)


def _rule(doc: Any, where: str) -> Rule:
    if not isinstance(doc, dict):
        raise UsageError(f"{where}: must be a mapping")
    unknown = set(doc) - {"repositories", "users", "anonymous", "allow"}
    if unknown:
        raise UsageError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    repositories = _words(doc.get("repositories"), f"{where}: repositories")
    users = _words(doc.get("users", []), f"{where}: users", empty=True)
    anonymous = doc.get("anonymous", False)
    if not isinstance(anonymous, bool):
        raise UsageError(f"{where}: anonymous must be true or false")
    if not users and not anonymous:
        raise UsageError(f"{where}: names no users and is not anonymous: it grants nothing")
    allow = _words(doc.get("allow"), f"{where}: allow")
    wrong = [a for a in allow if a not in ACTIONS]
    if wrong:
        raise UsageError(f"{where}: unknown action {wrong[0]!r} (use {', '.join(ACTIONS)})")
    try:
        globs = tuple(RepositoryGlob(p) for p in repositories)
    except ValueError as e:
        raise UsageError(f"{where}: {e}") from None
    return Rule(globs, frozenset(users), anonymous, frozenset(allow))


def _words(value: Any, where: str, empty: bool = False) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{where} must be a list of names")
    if not value and not empty:
        raise UsageError(f"{where} must not be empty")
    return value

"""What `prune` and `rm` ask for, as one interface the planner calls per repository:
which repositories to look at, and for each the verdict on every tag and the manifests
named for deletion."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from regtool.errors import NotFound, UsageError
from regtool.oci import Digest, check_name
from regtool.patterns import RepositoryGlob, TagGlob, is_pattern
from regtool.retention.decide import PullTimes, TagState, Verdict, decide
from regtool.retention.policy import Policy

#: The reason of a tag that goes because `rm` named its manifest.
WITH_ITS_MANIFEST = "names a manifest named for deletion"


@dataclass
class Choice:
    """The selector's word on one repository."""

    verdicts: dict[str, Verdict]
    condemned: dict[Digest, str] = field(default_factory=dict)  # manifests named to go
    delete_untagged: bool = False


class Selector(Protocol):
    keep_referrers: bool

    def repositories(self, names: Iterable[str]) -> list[str]:
        """The repositories among `names` to look at; `NotFound` for one named that is
        not there."""

    def choose(
        self,
        name: str,
        tags: list[TagState],
        revisions: set[Digest],
        now: datetime,
        pulled: PullTimes | None,
    ) -> Choice:
        """Verdicts for every tag of repository `name`; `NotFound` for a tag or manifest
        named that is not there."""


class PolicySelector:
    """`prune`: the rules of a policy."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.keep_referrers = policy.keep_referrers
        #: Patterns that matched no repository: not an error (a nightly prune of `ci/*`
        #: before the first CI push), but said.
        self.unmatched: list[str] = []

    def repositories(self, names: Iterable[str]) -> list[str]:
        """The repositories of `names` some rule covers; `NotFound` for a repository a
        rule names (not a pattern) that is not there."""
        names = sorted(names)
        for rule in self.policy.rules:
            for glob in rule.repositories:
                if glob.text == "**" or any(glob.matches(n) for n in names):
                    continue
                if not is_pattern(glob.text):
                    raise NotFound(f"no repository {glob.text} in this registry")
                self.unmatched.append(glob.text)
        return [n for n in names if self.policy.rules_for(n)]

    def choose(
        self,
        name: str,
        tags: list[TagState],
        revisions: set[Digest],
        now: datetime,
        pulled: PullTimes | None,
    ) -> Choice:
        rules = self.policy.rules_for(name)
        return Choice(decide(tags, rules, now, pulled), {}, any(r.delete_untagged for r in rules))


@dataclass(frozen=True)
class Reference:
    """`repo:tag`, `repo@digest`, with globs in the repository and the tag."""

    repository: RepositoryGlob
    tag: TagGlob | None = None
    digest: Digest | None = None

    @property
    def text(self) -> str:
        if self.digest is not None:
            return f"{self.repository.text}@{self.digest}"
        return f"{self.repository.text}:{self.tag.text if self.tag else ''}"


def parse_reference(text: str, *, v1: bool = False) -> Reference:
    """`exampleapp:1.0`, `exampleapp@sha256:<hex>`, `team/web:pr-*`; `UsageError` for
    anything else. On a V1 store a name without a namespace is under `library/`."""
    name, at, digest_text = text.partition("@")
    if at:
        if is_pattern(name):
            raise UsageError(f"{text}: a digest names one manifest of one repository")
        return Reference(_repository(name, text, v1), digest=Digest.parse(digest_text))
    name, colon, tag = name.rpartition(":")
    if not colon or not name or not tag:
        raise UsageError(f"{text!r} is not REPOSITORY:TAG or REPOSITORY@DIGEST")
    try:
        tag_glob = TagGlob(tag)
    except ValueError as e:
        raise UsageError(f"{text}: {e}") from None
    return Reference(_repository(name, text, v1), tag=tag_glob)


def _repository(name: str, text: str, v1: bool) -> RepositoryGlob:
    if v1 and "/" not in name:
        name = f"library/{name}"
    try:
        if not is_pattern(name):
            check_name(name)
        return RepositoryGlob(name)
    except ValueError as e:
        raise UsageError(f"{text}: {e}") from None


class ReferenceSelector:
    """`rm`: the tags and manifests named; everything else stays."""

    def __init__(self, references: list[Reference], keep_referrers: bool = False):
        self.references = references
        self.keep_referrers = keep_referrers
        self._matched: set[Reference] = set()

    @property
    def unmatched(self) -> list[str]:
        """References (with a pattern) that matched no tag: not an error, but said."""
        return [r.text for r in self.references if r not in self._matched]

    def repositories(self, names: Iterable[str]) -> list[str]:
        names = sorted(names)
        chosen: set[str] = set()
        for ref in self.references:
            found = [n for n in names if ref.repository.matches(n)]
            if not found and not is_pattern(ref.repository.text):
                raise NotFound(f"no repository {ref.repository.text} in this registry")
            chosen.update(found)
        return sorted(chosen)

    def choose(
        self,
        name: str,
        tags: list[TagState],
        revisions: set[Digest],
        now: datetime,
        pulled: PullTimes | None,
    ) -> Choice:
        verdicts = {t.tag: Verdict(True, "not named") for t in tags}
        condemned: dict[Digest, str] = {}
        for ref in self.references:
            if not ref.repository.matches(name):
                continue
            if ref.digest is not None:
                if ref.digest not in revisions:
                    raise NotFound(f"no manifest {ref.digest} in repository {name}")
                condemned[ref.digest] = "named for deletion"
                self._matched.add(ref)
                for t in tags:
                    if t.target == str(ref.digest):
                        verdicts[t.tag] = Verdict(False, WITH_ITS_MANIFEST)
                continue
            assert ref.tag is not None
            matched = [t for t in tags if ref.tag.matches(t.tag)]
            if not matched and not is_pattern(ref.text):
                raise NotFound(f"no tag {name}:{ref.tag.text}")
            if matched:
                self._matched.add(ref)
            for t in matched:  # a tag whose link is damaged may go too: it names nothing
                verdicts[t.tag] = Verdict(False, "named")
        return Choice(verdicts, condemned)

"""What retention knows of a V2 store before it decides: one walk of `repositories/`
(one paginated listing on Swift), then one read of each tag link whose digest the listing
cannot tell for certain (on Swift the listing's MD5 tells; elsewhere every link is read,
concurrently: SFTP pipelines them on its connection)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from regtool.concurrency import DEFAULT_JOBS, map_outcomes
from regtool.errors import raise_faults
from regtool.layout.v2 import LinkStat, RepositoryIndex, V2Layout
from regtool.layout.v2_delete import tag_of_path
from regtool.oci import Digest
from regtool.storage.base import Entry


@dataclass
class TagFacts:
    tag: str
    link: LinkStat  # its current/link, as listed: the push time is `link.modified`
    files: list[str] = field(default_factory=list)  # everything below its directory
    digest: Digest | None = None  # once known (`read_tag_digests`)
    error: str | None = None  # the link could not be read as a digest


@dataclass
class RepositoryFacts:
    index: RepositoryIndex
    tags: dict[str, TagFacts] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.index.name

    def tagged(self) -> set[Digest]:
        return {t.digest for t in self.tags.values() if t.digest is not None}


class Inventory(dict[str, RepositoryFacts]):
    """Repositories by name; `warnings` name the directories of `repositories/` that are
    no repository (`Repositories.skipped`), which retention leaves alone as gc does."""

    def __init__(self, found: dict[str, RepositoryFacts], warnings: list[str]):
        super().__init__(found)
        self.warnings = warnings


def scan(layout: V2Layout, only: str | None = None) -> Inventory:
    """Every repository (or just `only`) with its tags and their files, from one walk."""
    tag_files: dict[tuple[str, str], list[str]] = {}

    def remember(entries: Iterable[Entry]) -> Iterator[Entry]:
        for entry in entries:
            key = tag_of_path(layout, entry.path)
            if key is not None:
                tag_files.setdefault(key, []).append(entry.path)
            yield entry

    top = layout.repositories_dir() if only is None else layout.repository_dir(only)
    indexes = layout.index_entries(remember(layout.driver.walk(top)), only=only)
    repos = {}
    for name, index in indexes.items():
        tags = {
            tag: TagFacts(tag, link, sorted(tag_files.get((name, tag), [])))
            for tag, link in index.tags.items()
        }
        repos[name] = RepositoryFacts(index, tags)
    return Inventory(repos, indexes.skipped_warnings("left alone"))


def certain_digest(index: RepositoryIndex, tag: str) -> Digest | None:
    """The tag's digest where the listing tells it for certain (an MD5 to compare, on
    Swift); None where only reading the link can tell. A size is no proof: a link of the
    right length may name another digest."""
    link = index.tags.get(tag)
    if link is None or link.checksum is None:
        return None
    return index.listed_tag_digest(tag)


def read_tag_digests(
    layout: V2Layout, repos: Iterable[RepositoryFacts], jobs: int = DEFAULT_JOBS
) -> int:
    """Fill in every tag's digest: from the listing where certain, else by reading its
    link (`jobs` at a time). A link that holds no digest sets `TagFacts.error`; a storage
    fault is raised. Returns the number of links read."""
    to_read: list[tuple[str, str]] = []
    facts: dict[tuple[str, str], TagFacts] = {}
    for repo in repos:
        for tag, fact in repo.tags.items():
            fact.digest = certain_digest(repo.index, tag)
            if fact.digest is None:
                to_read.append((repo.name, tag))
                facts[(repo.name, tag)] = fact
    outcomes = map_outcomes(lambda nt: layout.tag_digest(*nt), to_read, jobs)
    raise_faults(outcomes.values())
    for key, outcome in outcomes.items():
        if isinstance(outcome, Exception):
            facts[key].error = str(outcome)
        else:
            facts[key].digest = outcome
    return len(to_read)

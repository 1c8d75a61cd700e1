"""Mark: which manifests and blobs of a V2 store are still wanted.

Roots are the manifests tags point at, every revision unless untagged ones may go, and
revisions younger than --min-age (a multi-arch push uploads its children before the
index that tags them). From each kept manifest: its config and layers, the children of an
index (recursively), and its referrers (revisions whose `subject` is kept). A repository
in which a tag link or a manifest is damaged is *unsure*: all its revisions and every
blob in its `_layers` are kept, since a damaged manifest is never a reason to delete. A
storage fault while reading stops the mark (it is raised): gc deletes nothing on what it
could not read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from regtool.concurrency import map_outcomes
from regtool.errors import raise_faults
from regtool.gc.aliases import Aliases, reached
from regtool.gc.references import BlobKey, ReferenceReader, References, blob_key
from regtool.gc.spill import KeySet
from regtool.layout.v2 import RepositoryIndex, V2Layout
from regtool.oci import Digest


@dataclass
class Marks:
    blobs: KeySet = field(default_factory=KeySet)  # every blob and manifest kept
    manifests: dict[str, set[Digest]] = field(default_factory=dict)  # repo -> kept
    # repo -> blobs its `_layers` links that no kept manifest of it references (usually
    # few: kept instead of every repository's referenced set, which would cost memory)
    stale_layers: dict[str, set[Digest]] = field(default_factory=dict)
    unsure: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    aliases: Aliases = field(default_factory=dict)


def read_tags(
    layout: V2Layout, repos: dict[str, RepositoryIndex], jobs: int
) -> tuple[dict[str, set[Digest]], dict[str, str]]:
    """Each repository's tagged digests, reading every link whose digest the listing does
    not tell for certain (all of them on local and SFTP storage: a listing there gives a
    link's size, and a tag whose history holds one digest may point at another of the same
    length); and repo -> error for repositories with a damaged tag link. A storage fault
    is raised: it says nothing about the tag."""
    tagged: dict[str, set[Digest]] = {name: set() for name in repos}
    to_read = []
    for name, repo in repos.items():
        for tag in repo.tags:
            known = repo.certain_tag_digest(tag)
            if known is not None:
                tagged[name].add(known)
            else:
                to_read.append((name, tag))
    errors: dict[str, str] = {}
    outcomes = map_outcomes(lambda nt: layout.tag_digest(*nt), to_read, jobs)
    raise_faults(outcomes.values())
    for (name, tag), outcome in outcomes.items():
        if isinstance(outcome, Exception):
            errors.setdefault(name, f"{name}: tag {tag} unreadable ({outcome})")
        else:
            tagged[name].add(outcome)
    return tagged, errors


def mark(
    layout: V2Layout,
    repos: dict[str, RepositoryIndex],
    reader: ReferenceReader,
    *,
    delete_untagged: bool,
    young_revisions: dict[str, set[Digest]],
    young_layers: dict[str, set[Digest]],
    aliases: Aliases | None = None,
    everything_in: Iterable[str] = (),
    blobs: KeySet | None = None,
) -> Marks:
    """Mark what `repos` keep; a blob an alias of theirs reaches (`gc/aliases.py`) is
    kept with the alias. Repositories named in `everything_in` are unsure from the start
    (the re-check before deleting uses that for repositories that changed). Marked blobs
    are added to `blobs` where given (a mark set shared by batches of repositories: it
    spills to disk past its threshold), else to a new set."""
    marks = Marks(
        blobs=KeySet() if blobs is None else blobs,
        unsure=set(everything_in),
        aliases=aliases or {},
    )
    tagged, tag_errors = read_tags(layout, repos, reader.jobs)
    marks.unsure |= set(tag_errors)
    marks.warnings += tag_errors.values()
    roots_all = set().union(*tagged.values(), *(r.revisions for r in repos.values()))
    reader.fetch(roots_all)
    for name, repo in repos.items():
        kept, referenced, broken = _mark_repository(
            repo,
            reader,
            tagged[name],
            young_revisions.get(name, set()),
            not delete_untagged or name in marks.unsure,
        )
        for digest, error in broken.items():
            marks.warnings.append(f"{name}: manifest {digest} unreadable ({error})")
        if broken:
            marks.unsure.add(name)
        if name in marks.unsure:
            kept |= repo.revisions
            referenced.update(map(blob_key, repo.layers))
            for digest in repo.revisions:  # what the readable ones reference
                manifest = reader.cache.get(digest)
                if isinstance(manifest, References):
                    referenced.update(manifest.blobs)
        referenced.update(map(blob_key, young_layers.get(name, ())))
        referenced |= reached(marks.aliases.get(name, {}), referenced)
        marks.manifests[name] = kept
        marks.stale_layers[name] = {d for d in repo.layers if blob_key(d) not in referenced}
        marks.blobs.update(map(blob_key, kept))
        marks.blobs |= referenced
    return marks


def _mark_repository(
    repo: RepositoryIndex,
    reader: ReferenceReader,
    tagged: set[Digest],
    young: set[Digest],
    all_revisions: bool,
) -> tuple[set[Digest], set[BlobKey], dict[Digest, str]]:
    """(kept manifests, blobs they reference, unreadable manifest -> error)."""
    kept: set[Digest] = set()
    referenced: set[BlobKey] = set()
    broken: dict[Digest, str] = {}

    def keep(roots: Iterable[Digest]) -> None:
        stack = [d for d in roots if d not in kept]
        while stack:
            digest = stack.pop()
            if digest in kept:
                continue
            kept.add(digest)
            manifest = reader.cache.get(digest)
            if not isinstance(manifest, References):
                broken[digest] = str(manifest) if manifest else "not read"
                continue
            referenced.update(manifest.blobs)
            stack.extend(c for c in manifest.children if c not in kept)

    keep(tagged | young | (repo.revisions if all_revisions else set()))
    # Referrers stay with their subject; a referrer may itself have referrers.
    while True:
        found: set[Digest] = set()
        for digest in repo.revisions - kept:
            manifest = reader.cache.get(digest)
            if isinstance(manifest, References):
                if manifest.subject is not None and manifest.subject in kept:
                    found.add(digest)
            else:  # unreadable: it might be an index or a referrer of something kept
                broken[digest] = str(manifest) if manifest else "not read"
        if not found:
            break
        keep(found)
    return kept, referenced, broken

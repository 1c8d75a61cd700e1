"""Verifying a V2 (distribution) store: see `regtool.inspect.verify`.

Three passes, so that blobs hash in parallel and each only once: (1) per tag, its link and
manifests (indexes followed down), collecting the blobs they reference; (2) every distinct
referenced blob checked, `jobs` at a time, largest first; (3) each reference judged
against its blob's verdict (existence, repository link, size, digest).

A repository link (`_layers` or revision) counts only if it names the digest of its path:
distribution cannot serve a blob through an empty link (HTTP 500) and serves another blob
through one naming another digest. A Swift listing's MD5 tells right from wrong with no
request; on local and SFTP storage a link of the right length is read (one GET per link
checked: those the checked images use, and with `--all` every link).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from regtool.concurrency import map_outcomes
from regtool.errors import ManifestInvalid, RegtoolError
from regtool.inspect.verify import (
    LEFTOVER_AGE,
    Once,
    Options,
    Problem,
    Target,
    Verification,
    VerifyResult,
    fault_detail,
    not_found,
    raise_failures,
    short,
)
from regtool.layout.blobs import blob_size, hash_blob, walk_blobs
from regtool.layout.v2 import (
    CANONICAL_ALGORITHM,
    CorruptLink,
    LinkKind,
    RepositoryIndex,
    V2Layout,
    describe_link_content,
    linked_data,
    parse_link,
)
from regtool.oci import SCHEMA1_TYPES, Descriptor, Digest, Manifest, parse_manifest, schema1_payload
from regtool.storage.base import Entry, set_aside_temporaries
from regtool.text import plural

#: A repository's link of a kind to a digest.
LinkKey = tuple[str, LinkKind, Digest]
#: A blob as a reference reaches it: (its digest, the digest whose data holds it), the
#: same digest twice unless a repository's link is an alias (`V2Layout.resolve_blob`).
BlobKey = tuple[Digest, Digest]
_LINK_KINDS: tuple[LinkKind, ...] = ("layer", "revision")
_LINK_WORDS: dict[LinkKind, str] = {"layer": "_layers", "revision": "revision"}


@dataclass(frozen=True)
class BlobVerdict:
    """What storage holds for one digest."""

    size: int | None = None  # None: absent
    actual: Digest | None = None  # what it hashes to; None when not hashed (quick, absent)
    error: str | None = None  # storage failed while reading
    hashed: int = 0  # bytes hashed to reach this verdict


@dataclass(frozen=True)
class ManifestVerdict:
    manifest: Manifest | None  # None unless it exists, hashes right and parses
    size: int | None
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class LinkVerdict:
    """What a repository's link to a digest is: absent, naming it, or not."""

    present: bool
    holds: str | None = None  # what a link that does not name its blob holds, in words
    error: str | None = None  # storage failed while reading it
    data: Digest | None = None  # whose data a link naming its blob reaches (`linked_data`)

    def problems(self, key: LinkKey, role: str) -> list[Problem]:
        """The problems of a link a checked image needs (`role`: what it links)."""
        name, kind, digest = key
        d = str(digest)
        if not self.present:
            if kind == "revision":
                return [Problem(d, "unlinked", f"{role} {short(d)} has no revision link in {name}")]
            return [Problem(d, "unlinked", f"{role} {short(d)} is not linked into {name}")]
        return self.link_problems(key)

    def link_problems(self, key: LinkKey) -> list[Problem]:
        """The problems of the link file itself (the same words wherever it is reported,
        so that a link counts once)."""
        name, kind, digest = key
        what = f"the {_LINK_WORDS[kind]} link of {short(digest)} in {name}"
        if self.error is not None:
            return [Problem(str(digest), "unreadable", f"{what}: {self.error}")]
        if self.holds is not None:
            return [Problem(str(digest), "link", f"{what} holds {self.holds}")]
        return []


@dataclass
class _Plan:
    """Pass 1's findings for one tag: its result so far and the blobs to judge."""

    result: VerifyResult
    repo: RepositoryIndex
    refs: list[tuple[str, Descriptor]] = field(default_factory=list)  # (role, descriptor)


class V2Verifier:
    def __init__(self, layout: V2Layout, options: Options, repos: dict[str, RepositoryIndex]):
        self.layout = layout
        self.options = options
        self.repos = repos
        self.known: dict[Digest, Entry] | None = None  # from one walk of blobs/, when done
        self.blobs: Once[BlobKey, BlobVerdict] = Once(self._check_blob)
        self.manifests: Once[Digest, ManifestVerdict] = Once(self._check_manifest)
        self.links: Once[LinkKey, LinkVerdict] = Once(self._check_link)

    # --- blobs, manifests and links, each once ------------------------------------------
    def _check_blob(self, key: BlobKey) -> BlobVerdict:
        digest, data = key
        if self.known is not None and data not in self.known:
            return BlobVerdict()  # the walk says absent: no request needed
        try:
            if self.options.quick:
                entry = self.known.get(data) if self.known is not None else None
                # a Swift large object lists as 0 bytes: ask for its real size
                size = entry.size if entry is not None and entry.size else None
                return BlobVerdict(size if size is not None else blob_size(self.layout, data))
            hashed = hash_blob(
                self.layout,
                digest,
                self.options.progress.advance,
                self.options.chunk_size,
                stored_as=data,
            )
            return BlobVerdict(hashed.size, hashed.digest, hashed=hashed.size)
        except FileNotFoundError:
            return BlobVerdict()
        except (RegtoolError, OSError) as e:
            return BlobVerdict(size=0, error=fault_detail(e))

    def _check_manifest(self, digest: Digest) -> ManifestVerdict:
        d = str(digest)
        try:
            data = self.layout.read_blob(digest)
        except FileNotFoundError:
            self.blobs.seed((digest, digest), BlobVerdict())
            return ManifestVerdict(
                None, None, (Problem(d, "missing", f"manifest {short(d)} is not in blob storage"),)
            )
        except (RegtoolError, OSError) as e:
            detail = f"manifest {short(d)}: {fault_detail(e)}"
            return ManifestVerdict(None, None, (Problem(d, "unreadable", detail),))
        problems: list[Problem] = []
        manifest: Manifest | None = None
        try:
            manifest = parse_manifest(data)
        except ManifestInvalid as e:
            problems.append(Problem(d, "invalid", f"manifest {short(d)} does not parse: {e}"))
        actual = Digest.of(data, digest.algorithm)
        if actual != digest and manifest is not None and manifest.media_type in SCHEMA1_TYPES:
            # a signed schema 1 manifest's digest is over its payload, signatures left out
            with contextlib.suppress(ValueError, KeyError, TypeError, IndexError, AttributeError):
                actual = Digest.of(schema1_payload(data), digest.algorithm)
        if actual != digest:
            problems.insert(
                0, Problem(d, "digest", f"manifest {short(d)}: content hashes to {short(actual)}")
            )
            manifest = None  # its references cannot be trusted
        self.blobs.seed((digest, digest), BlobVerdict(len(data), actual, hashed=len(data)))
        return ManifestVerdict(manifest, len(data), tuple(problems))

    def _check_link(self, key: LinkKey) -> LinkVerdict:
        name, kind, digest = key
        repo = self.repos[name]
        if digest not in repo.links(kind):
            return LinkVerdict(present=False)
        if repo.listed_link_names(kind, digest):
            return LinkVerdict(present=True, data=digest)  # a Swift listing's MD5 says so
        path = self.layout.link(kind, name, digest)
        try:
            data = self.layout.driver.get(path)
        except FileNotFoundError:
            return LinkVerdict(present=False)  # deleted since the walk
        except (RegtoolError, OSError) as e:
            return LinkVerdict(present=True, error=fault_detail(e))
        try:
            if (stored_as := linked_data(digest, parse_link(data, path))) is not None:
                return LinkVerdict(present=True, data=stored_as)
        except CorruptLink:
            pass
        return LinkVerdict(present=True, holds=describe_link_content(data))

    def check_links(self, keys: list[LinkKey]) -> None:
        """Check `keys` (those not checked yet), `jobs` at a time."""
        todo = [k for k in dict.fromkeys(keys) if k not in self.links]
        raise_failures(map_outcomes(self.links, todo, self.options.jobs), "link")

    # --- pass 1: tags and manifests -----------------------------------------------------
    def plan(self, repo: RepositoryIndex, tag: str | None, digest: Digest | None) -> _Plan:
        name = repo.name
        plan = _Plan(VerifyResult(name, tag), repo)
        result = plan.result
        if tag is not None:
            digest = repo.certain_tag_digest(tag)
        if tag is not None and digest is None:
            try:
                digest = self.layout.read_link(self.layout.tag_current_link(name, tag))
            except CorruptLink as e:
                result.add([Problem(f"{name}:{tag}", "invalid", str(e))])
                return plan
            except FileNotFoundError:
                result.add([Problem(f"{name}:{tag}", "missing", "the tag's link vanished")])
                return plan
            except (RegtoolError, OSError) as e:
                detail = f"tag link: {fault_detail(e)}"
                result.add([Problem(f"{name}:{tag}", "unreadable", detail)])
                return plan
        assert digest is not None
        result.digest = str(digest)
        own: LinkKey = (name, "revision", digest)
        result.add(self.links(own).problems(own, "manifest"))
        stack: list[tuple[Digest, Descriptor | None]] = [(digest, None)]
        seen: set[Digest] = set()
        while stack:
            current, descriptor = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            verdict = self.manifests(current)
            result.add(verdict.problems)
            if (
                descriptor is not None
                and verdict.size is not None
                and descriptor.size != verdict.size
                and not verdict.problems
            ):
                result.add(
                    [_size_problem(current, verdict.size, descriptor.size, "index", "manifest")]
                )
            manifest = verdict.manifest
            if manifest is None:
                continue
            for child in reversed(manifest.manifests):
                key: LinkKey = (name, "revision", child.digest)
                result.add(self.links(key).problems(key, "child manifest"))
                stack.append((child.digest, child))
            if manifest.config is not None:
                plan.refs.append(("config", manifest.config))
            plan.refs.extend(("layer", layer) for layer in manifest.layers)
        return plan

    # --- pass 3: references against verdicts --------------------------------------------
    def judge(self, plan: _Plan) -> None:
        for role, ref in plan.refs:
            plan.result.add(self.reference_problems(role, ref, plan.repo))

    def blob_key(self, role: str, ref: Descriptor, repo: RepositoryIndex) -> BlobKey:
        """How the repository reaches the blob `ref` names: through its `_layers` link,
        which for a digest of another algorithm than sha256 may be an alias (checked
        with `check_links` before)."""
        digest = ref.digest
        if digest.algorithm == CANONICAL_ALGORITHM or not _needs_link(role, ref):
            return digest, digest
        return digest, self.links((repo.name, "layer", digest)).data or digest

    def reference_problems(
        self, role: str, ref: Descriptor, repo: RepositoryIndex
    ) -> list[Problem]:
        verdict = self.blobs(self.blob_key(role, ref, repo))
        d = str(ref.digest)
        if verdict.error is not None:
            return [Problem(d, "unreadable", f"{role} {short(d)}: {verdict.error}")]
        if verdict.size is None:
            if not _needs_link(role, ref):
                detail = f"foreign {role} {short(d)} not in storage (non-distributable, has urls)"
                return [Problem(d, "foreign", detail)]
            return [Problem(d, "missing", f"{role} {short(d)} is not in blob storage")]
        problems = []
        if _needs_link(role, ref):
            key: LinkKey = (repo.name, "layer", ref.digest)
            problems += self.links(key).problems(key, role)
            problems += self._alias_problems(role, ref, repo)
        if ref.size is not None and verdict.size != ref.size:
            problems.append(_size_problem(ref.digest, verdict.size, ref.size, "manifest", "blob"))
        elif verdict.actual is not None and verdict.actual != ref.digest:
            actual = short(verdict.actual)
            problems.append(Problem(d, "digest", f"{role} {short(d)}: content hashes to {actual}"))
        return problems

    def _alias_problems(self, role: str, ref: Descriptor, repo: RepositoryIndex) -> list[Problem]:
        """distribution serves a blob reached through an alias by the digest whose data
        holds it (`blobHandler.GetBlob` serves `desc.Digest`), so the repository must link
        that digest too, as distribution's upload does."""
        _, data = self.blob_key(role, ref, repo)
        if data == ref.digest:
            return []
        key: LinkKey = (repo.name, "layer", data)
        verdict = self.links(key)
        if verdict.present:
            return verdict.link_problems(key)
        d = str(ref.digest)
        detail = (
            f"{role} {short(d)} is stored as {short(data)}, which is not linked into {repo.name}"
        )
        return [Problem(d, "unlinked", detail)]

    # --- pass 2: hashing ----------------------------------------------------------------
    def check_blobs(self, sizes: dict[BlobKey, int]) -> None:
        """Check every digest in `sizes` (expected bytes), largest first so that the last
        jobs to finish are short ones."""
        todo = [d for d in sizes if d not in self.blobs]
        if not self.options.quick:
            self.options.progress.expect(sum(sizes[d] for d in todo))
        todo.sort(key=lambda d: sizes[d], reverse=True)
        raise_failures(map_outcomes(self.blobs, todo, self.options.jobs), "blob")


def _needs_link(role: str, ref: Descriptor) -> bool:
    """Whether storage must hold the blob, linked into the repository: all but a foreign
    layer (`Descriptor.foreign`), as distribution checks a manifest's references."""
    return not (role == "layer" and ref.foreign)


def _size_problem(digest: Digest, actual: int, declared: int | None, by: str, what: str) -> Problem:
    detail = f"{what} {short(digest)} has {plural(actual, 'byte')}, {by} says {declared}"
    return Problem(str(digest), "size", detail)


def verify_v2(layout: V2Layout, targets: list[Target], options: Options, out: Verification) -> None:
    repos: dict[str, RepositoryIndex] = {}
    leftovers: list[Entry] = []  # writers' temp files, from the walks --all makes
    if options.everything:
        walk = layout.driver.walk(layout.repositories_dir(), temporaries=True)
        scanned = layout.index_entries(set_aside_temporaries(walk, leftovers))
        out.warnings += scanned.skipped_warnings()
        skipped = tuple(f"{layout.repositories_dir()}/{name}/" for name in scanned.skipped)
        leftovers = [e for e in leftovers if not e.path.startswith(skipped)]
        repos = scanned
    else:
        for name in dict.fromkeys(t.name for t in targets):
            repos.update(layout.scan_repositories(name))
            if name not in repos:
                raise not_found(f"repository {name}", out.location)
    verifier = V2Verifier(layout, options, repos)
    items: list[tuple[str, str | None, Digest | None]] = []
    if options.everything:
        items = [(n, t, None) for n in sorted(repos) for t in sorted(repos[n].tags)]
    for target in targets:
        if target.digest is not None:
            items.append((target.name, None, target.digest))
        elif target.tag is not None:
            if target.tag not in repos[target.name].tags:
                raise not_found(f"tag {target.name}:{target.tag}", out.location)
            items.append((target.name, target.tag, None))
        else:
            items.extend((target.name, t, None) for t in sorted(repos[target.name].tags))
    items = list(dict.fromkeys(items))

    if options.everything or options.blobs:
        # One listing answers every existence.
        walk = layout.driver.walk(layout.blobs_dir(), temporaries=options.everything)
        verifier.known = dict(walk_blobs(layout, set_aside_temporaries(walk, leftovers)))

    plans = raise_failures(
        map_outcomes(lambda item: verifier.plan(repos[item[0]], *item[1:]), items, options.jobs),
        "tag",
    )
    ready = list(plans.values())
    # links first: an alias link tells where its blob's data is
    verifier.check_links(
        [
            (p.repo.name, "layer", ref.digest)
            for p in ready
            for role, ref in p.refs
            if _needs_link(role, ref)
        ]
    )
    sizes: dict[BlobKey, int] = {}
    for plan in ready:
        for role, ref in plan.refs:
            sizes.setdefault(verifier.blob_key(role, ref, plan.repo), ref.size or 0)
    verifier.check_blobs(sizes)
    for plan in ready:
        verifier.judge(plan)
        out.results.append(plan.result)

    if options.everything:
        out.results.extend(_link_findings(verifier, repos, verifier.known or {}))
        out.results.extend(_leftovers(leftovers, datetime.now(UTC) - LEFTOVER_AGE))
    if options.blobs and verifier.known is not None:
        known = verifier.known
        verifier.check_blobs({(d, d): e.size or 0 for d, e in known.items()})
        out.results.extend(_rotten_blobs(verifier, out.results))

    verdicts = verifier.blobs.values()
    out.blobs = len(verdicts)
    out.bytes_hashed = sum(v.hashed for v in verdicts.values())
    out.images = len(verifier.manifests.values())


def _link_findings(
    verifier: V2Verifier, repos: dict[str, RepositoryIndex], known: dict[Digest, Entry]
) -> list[VerifyResult]:
    """Every repository's link files that name a missing blob (what an interrupted or
    buggy GC leaves: the registry believes it has the blob, so pushes skip it and pulls
    fail), or that do not name their blob at all (distribution answers 500 for it, and a
    push of that blob fails)."""
    keys: list[LinkKey] = [
        (name, kind, digest)
        for name, repo in repos.items()
        for kind in _LINK_KINDS
        for digest in repo.links(kind)
    ]
    verifier.check_links(keys)
    results = []
    for name in sorted(repos):
        repo = repos[name]
        result = VerifyResult(name, None)
        for digest in sorted(repo.layers):
            if (verifier.links((name, "layer", digest)).data or digest) not in known:
                detail = f"_layers link to missing blob {short(digest)}"
                result.add([Problem(str(digest), "missing", detail)])
        for digest in sorted(repo.revisions - known.keys()):
            detail = f"revision link to missing manifest {short(digest)}"
            result.add([Problem(str(digest), "missing", detail)])
        for kind in _LINK_KINDS:
            for digest in sorted(repo.links(kind)):
                key: LinkKey = (name, kind, digest)
                result.add(verifier.links(key).link_problems(key))
        if result.problems:
            results.append(result)
    return results


def _leftovers(temporaries: list[Entry], cutoff: datetime) -> list[VerifyResult]:
    """Writers' temp files last written before `cutoff`: a write that crashed (or whose
    cleanup failed) left them, with the bytes it had. Younger ones may be in progress."""
    results = []
    for entry in sorted(temporaries, key=lambda e: e.path):
        if entry.modified is None or entry.modified > cutoff:
            continue
        size = "?" if entry.size is None else f"{entry.size} bytes"
        detail = (
            f"temp file {entry.path} ({size}, last written {entry.modified:%Y-%m-%dT%H:%M:%SZ})"
            " left by a crash or a failed write; gc removes it"
        )
        results.append(VerifyResult(None, None, problems=[Problem(entry.path, "leftover", detail)]))
    return results


def _rotten_blobs(verifier: V2Verifier, reported: list[VerifyResult]) -> list[VerifyResult]:
    """Blobs whose content does not hash to their name, unless a tag's row says so."""
    seen = {p.object for r in reported for p in r.problems}
    results = []
    for (digest, _), verdict in sorted(verifier.blobs.values().items()):
        if str(digest) in seen or verdict.size is None:
            continue
        if verdict.error is not None:
            problem = Problem(str(digest), "unreadable", f"blob {short(digest)}: {verdict.error}")
        elif verdict.actual is not None and verdict.actual != digest:
            problem = Problem(
                str(digest),
                "digest",
                f"blob {short(digest)}: content hashes to {short(verdict.actual)}",
            )
        else:
            continue
        results.append(VerifyResult(None, None, digest=str(digest), problems=[problem]))
    return results

"""Verifying a V2 (distribution) store: see `regtool.inspect.verify`.

Three passes, so that blobs hash in parallel and each only once: (1) per tag, its link and
manifests (indexes followed down), collecting the blobs they reference; (2) every distinct
referenced blob checked, `jobs` at a time, largest first; (3) each reference judged
against its blob's verdict (existence, repository link, size, digest).
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
    not_found,
    short,
)
from regtool.layout.blobs import blob_size, hash_blob, walk_blobs
from regtool.layout.v2 import CorruptLink, RepositoryIndex, V2Layout
from regtool.oci import SCHEMA1_TYPES, Descriptor, Digest, Manifest, parse_manifest, schema1_payload
from regtool.storage.base import Entry, set_aside_temporaries


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


@dataclass
class _Plan:
    """Pass 1's findings for one tag: its result so far and the blobs to judge."""

    result: VerifyResult
    repo: RepositoryIndex
    refs: list[tuple[str, Descriptor]] = field(default_factory=list)  # (role, descriptor)


class V2Verifier:
    def __init__(self, layout: V2Layout, options: Options):
        self.layout = layout
        self.options = options
        self.known: dict[Digest, Entry] | None = None  # from one walk of blobs/, when done
        self.blobs: Once[Digest, BlobVerdict] = Once(self._check_blob)
        self.manifests: Once[Digest, ManifestVerdict] = Once(self._check_manifest)

    # --- blobs and manifests, each once -------------------------------------------------
    def _check_blob(self, digest: Digest) -> BlobVerdict:
        if self.known is not None and digest not in self.known:
            return BlobVerdict()  # the walk says absent: no request needed
        try:
            if self.options.quick:
                entry = self.known.get(digest) if self.known is not None else None
                # a Swift large object lists as 0 bytes: ask for its real size
                size = entry.size if entry is not None and entry.size else None
                return BlobVerdict(size if size is not None else blob_size(self.layout, digest))
            hashed = hash_blob(
                self.layout, digest, self.options.progress.advance, self.options.chunk_size
            )
            return BlobVerdict(hashed.size, hashed.digest, hashed=hashed.size)
        except FileNotFoundError:
            return BlobVerdict()
        except (RegtoolError, OSError) as e:
            return BlobVerdict(size=0, error=str(e))

    def _check_manifest(self, digest: Digest) -> ManifestVerdict:
        d = str(digest)
        try:
            data = self.layout.read_blob(digest)
        except FileNotFoundError:
            self.blobs.seed(digest, BlobVerdict())
            return ManifestVerdict(
                None, None, (Problem(d, "missing", f"manifest {short(d)} is not in blob storage"),)
            )
        except (RegtoolError, OSError) as e:
            return ManifestVerdict(
                None, None, (Problem(d, "unreadable", f"manifest {short(d)}: {e}"),)
            )
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
        self.blobs.seed(digest, BlobVerdict(len(data), actual, hashed=len(data)))
        return ManifestVerdict(manifest, len(data), tuple(problems))

    # --- pass 1: tags and manifests -----------------------------------------------------
    def plan(self, repo: RepositoryIndex, tag: str | None, digest: Digest | None) -> _Plan:
        name = repo.name
        plan = _Plan(VerifyResult(name, tag), repo)
        result = plan.result
        if tag is not None:
            try:
                digest = self.layout.read_link(self.layout.tag_current_link(name, tag))
            except CorruptLink as e:
                result.add([Problem(f"{name}:{tag}", "invalid", str(e))])
                return plan
            except FileNotFoundError:
                result.add([Problem(f"{name}:{tag}", "missing", "the tag's link vanished")])
                return plan
            except (RegtoolError, OSError) as e:
                result.add([Problem(f"{name}:{tag}", "unreadable", f"tag link: {e}")])
                return plan
        assert digest is not None
        result.digest = str(digest)
        if digest not in repo.revisions:
            result.add([_unlinked_revision(digest, name, "manifest")])
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
                if child.digest not in repo.revisions:
                    result.add([_unlinked_revision(child.digest, name, "child manifest")])
                stack.append((child.digest, child))
            if manifest.config is not None:
                plan.refs.append(("config", manifest.config))
            plan.refs.extend(("layer", layer) for layer in manifest.layers)
        return plan

    # --- pass 3: references against verdicts --------------------------------------------
    def judge(self, plan: _Plan) -> None:
        for role, ref in plan.refs:
            plan.result.add(self.reference_problems(role, ref, plan.repo))

    def reference_problems(
        self, role: str, ref: Descriptor, repo: RepositoryIndex
    ) -> list[Problem]:
        verdict = self.blobs(ref.digest)
        d = str(ref.digest)
        if verdict.error is not None:
            return [Problem(d, "unreadable", f"{role} {short(d)}: {verdict.error}")]
        if verdict.size is None:
            if ref.urls:
                return [
                    Problem(d, "foreign", f"foreign {role} {short(d)} not in storage (has urls)")
                ]
            return [Problem(d, "missing", f"{role} {short(d)} is not in blob storage")]
        problems = []
        if not ref.urls and ref.digest not in repo.layers:
            problems.append(
                Problem(d, "unlinked", f"{role} {short(d)} is not linked into {repo.name}")
            )
        if ref.size is not None and verdict.size != ref.size:
            problems.append(_size_problem(ref.digest, verdict.size, ref.size, "manifest", "blob"))
        elif verdict.actual is not None and verdict.actual != ref.digest:
            actual = short(verdict.actual)
            problems.append(Problem(d, "digest", f"{role} {short(d)}: content hashes to {actual}"))
        return problems

    # --- pass 2: hashing ----------------------------------------------------------------
    def check_blobs(self, sizes: dict[Digest, int]) -> None:
        """Check every digest in `sizes` (expected bytes), largest first so that the last
        jobs to finish are short ones."""
        todo = [d for d in sizes if d not in self.blobs]
        if not self.options.quick:
            self.options.progress.expect(sum(sizes[d] for d in todo))
        todo.sort(key=lambda d: sizes[d], reverse=True)
        for digest, outcome in map_outcomes(self.blobs, todo, self.options.jobs).items():
            if isinstance(outcome, Exception):
                raise RuntimeError(f"checking blob {digest} failed") from outcome


def _unlinked_revision(digest: Digest, name: str, role: str) -> Problem:
    return Problem(
        str(digest), "unlinked", f"{role} {short(digest)} has no revision link in {name}"
    )


def _size_problem(digest: Digest, actual: int, declared: int | None, by: str, what: str) -> Problem:
    return Problem(
        str(digest), "size", f"{what} {short(digest)} has {actual} bytes, {by} says {declared}"
    )


def verify_v2(layout: V2Layout, targets: list[Target], options: Options, out: Verification) -> None:
    verifier = V2Verifier(layout, options)
    repos: dict[str, RepositoryIndex] = {}
    leftovers: list[Entry] = []  # writers' temp files, from the walks --all makes
    if options.everything:
        walk = layout.driver.walk(layout.repositories_dir(), temporaries=True)
        repos = layout.index_entries(set_aside_temporaries(walk, leftovers))
    else:
        for name in dict.fromkeys(t.name for t in targets):
            repos.update(layout.scan_repositories(name))
            if name not in repos:
                raise not_found(f"repository {name}", out.location)
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

    plans = map_outcomes(lambda item: verifier.plan(repos[item[0]], *item[1:]), items, options.jobs)
    for item, plan in plans.items():
        if isinstance(plan, Exception):
            raise RuntimeError(f"verifying {item[0]}:{item[1] or item[2]} failed") from plan
    ready = [p for p in plans.values() if isinstance(p, _Plan)]
    sizes: dict[Digest, int] = {}
    for plan in ready:
        for _, ref in plan.refs:
            sizes.setdefault(ref.digest, ref.size or 0)
    verifier.check_blobs(sizes)
    for plan in ready:
        verifier.judge(plan)
        out.results.append(plan.result)

    if options.everything:
        out.results.extend(_dangling_links(repos, verifier.known or {}))
        out.results.extend(_leftovers(leftovers, datetime.now(UTC) - LEFTOVER_AGE))
    if options.blobs and verifier.known is not None:
        known = verifier.known
        verifier.check_blobs({d: e.size or 0 for d, e in known.items()})
        out.results.extend(_rotten_blobs(verifier, out.results))

    verdicts = verifier.blobs.values()
    out.blobs = len(verdicts)
    out.bytes_hashed = sum(v.hashed for v in verdicts.values())
    out.images = len(verifier.manifests.values())


def _dangling_links(
    repos: dict[str, RepositoryIndex], known: dict[Digest, Entry]
) -> list[VerifyResult]:
    """Link files whose blob is gone (what an interrupted or buggy GC leaves): the registry
    believes it has the blob, so pushes skip it and pulls fail."""
    results = []
    for name in sorted(repos):
        repo = repos[name]
        result = VerifyResult(name, None)
        for digest in sorted(repo.layers - known.keys()):
            detail = f"_layers link to missing blob {short(digest)}"
            result.add([Problem(str(digest), "missing", detail)])
        for digest in sorted(repo.revisions - known.keys()):
            detail = f"revision link to missing manifest {short(digest)}"
            result.add([Problem(str(digest), "missing", detail)])
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
    for digest, verdict in sorted(verifier.blobs.values().items()):
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

"""Which manifests of one repository go and which stay, once its tags are decided.

A manifest goes when a deleted tag named it (or `rm` named it, or it is untagged and the
policy deletes untagged manifests), with the children of a deleted index and, unless
referrers are kept, the referrers of whatever goes. A manifest stays, whatever else says
it may go, while a kept tag names it, a kept index lists it or its subject is kept (a
referrer of a kept manifest), and every manifest nothing condemns stays (untagged ones
too, unless the policy deletes untagged manifests).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from regtool.errors import ManifestInvalid
from regtool.layout.manifests import ManifestReader
from regtool.oci import Digest, Manifest


@dataclass
class Outcome:
    deleted: dict[Digest, str] = field(default_factory=dict)  # digest -> why it goes
    # would go with what is condemned (named, a child, a referrer), but kept: why
    spared: dict[Digest, str] = field(default_factory=dict)
    unreadable: dict[Digest, str] = field(default_factory=dict)


def decide_manifests(
    revisions: set[Digest],
    kept_roots: dict[Digest, str],
    condemned: dict[Digest, str],
    reader: ManifestReader,
    keep_referrers: bool,
) -> Outcome:
    """`kept_roots`: digest -> why (named by a kept tag...); `condemned`: digest -> why
    (named by a deleted tag, by `rm`, untagged). Every manifest in `revisions`, the
    roots and the condemned must have been fetched by `reader`. If any of them cannot be
    read, nothing is deleted (an unreadable manifest might be an index or a referrer that
    keeps what would go): `Outcome.unreadable` says which."""
    out = Outcome()
    manifests: dict[Digest, Manifest] = {}
    for digest in revisions | set(kept_roots) | set(condemned):
        try:
            manifests[digest] = reader.get(digest)
        except ManifestInvalid as e:
            if digest in revisions or digest in kept_roots:
                out.unreadable[digest] = str(e)
    referrers: dict[Digest, list[Digest]] = {}
    for digest in sorted(revisions):
        manifest = manifests.get(digest)
        if manifest is not None and manifest.subject is not None:
            referrers.setdefault(manifest.subject.digest, []).append(digest)

    def children(digest: Digest) -> Iterable[Digest]:
        manifest = manifests.get(digest)
        return [c.digest for c in manifest.manifests] if manifest is not None else []

    going = dict(condemned)
    stack = list(condemned)
    while stack:
        digest = stack.pop()
        found = [(c, f"in deleted index {digest.short()}") for c in children(digest)]
        if not keep_referrers:
            found += [
                (r, f"referrer of deleted {digest.short()}") for r in referrers.get(digest, [])
            ]
        for other, why in found:
            if other not in going:
                going[other] = why
                stack.append(other)

    kept = dict(kept_roots)
    for digest in revisions - going.keys():
        kept.setdefault(digest, "nothing condemns it")
    stack = list(kept)
    while stack:
        digest = stack.pop()
        found = [(c, f"in kept index {digest.short()}") for c in children(digest)]
        found += [(r, f"referrer of kept {digest.short()}") for r in referrers.get(digest, [])]
        for other, why in found:
            if other not in kept:
                kept[other] = why
                stack.append(other)

    for digest, why in going.items():
        if digest in kept:
            out.spared[digest] = kept[digest]
        elif digest in revisions and not out.unreadable:
            out.deleted[digest] = why
    return out

"""Which images reference each layer, across the whole store: the image page's "also in"
column. Built from one listing of every repository (`inspect.listing`, whose manifests
come from the facts cache) and kept beside the catalog's walk, so a page looks a layer
up instead of reading the store.

An image is a tag's manifest, or, for a tag naming an index, each image manifest the
index reaches (with its platform). Untagged manifests hold no layer here: nothing pulls
them by a name. Bounded by `MAX_REFERENCES` (layer, image) pairs: past it, the rest of
the store is left out and the index says it is `partial`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from regtool.inspect.listing import Listing
from regtool.oci import Descriptor, Digest, Manifest

#: (layer, image) pairs an index holds at most (about 40 bytes each, plus each image's
#: row): a store of a million images of twenty layers is indexed in part.
MAX_REFERENCES = 2_000_000
#: Images shown per layer; the page counts the rest.
SHOWN = 12


@dataclass(frozen=True)
class Holder:
    """An image that references a layer: `repository:tag`, and the manifest holding the
    layer (`digest`: the tag's, or an index's child, whose `platform` it names)."""

    repository: str
    tag: str
    digest: str
    platform: str = ""


@dataclass
class LayerIndex:
    """Layer digest (V1: image id) -> the images referencing it."""

    images: list[Holder] = field(default_factory=list)
    layers: dict[str, list[int]] = field(default_factory=dict)  # positions in `images`
    partial: bool = False
    references: int = 0

    def add(self, holder: Holder, layers: Iterable[str]) -> None:
        """Record `holder` as referencing each of `layers` (unless the bound is met)."""
        wanted = list(dict.fromkeys(layers))
        if self.references + len(wanted) > MAX_REFERENCES:
            self.partial = True
            return
        self.images.append(holder)
        at = len(self.images) - 1
        for layer in wanted:
            self.layers.setdefault(layer, []).append(at)
        self.references += len(wanted)

    def holders(self, layer: str) -> Iterator[Holder]:
        """The images referencing `layer`, in the order the store was listed (by
        repository name, then tag)."""
        return (self.images[i] for i in self.layers.get(layer, ()))

    def others(
        self, layer: str, name: str, digest: str, visible: Callable[[str], bool]
    ) -> tuple[list[Holder], int]:
        """The first `SHOWN` images holding `layer` other than `digest` of repository
        `name`, of repositories `visible` lets through, and how many more there are."""
        shown: list[Holder] = []
        more = 0
        allowed: dict[str, bool] = {}
        for holder in self.holders(layer):
            if holder.repository == name and holder.digest == digest:
                continue
            ok = allowed.get(holder.repository)
            if ok is None:
                ok = allowed[holder.repository] = visible(holder.repository)
            if not ok:
                continue
            if len(shown) < SHOWN:
                shown.append(holder)
            else:
                more += 1
        return shown, more


def index_v2(listing: Listing, manifests: Callable[[Digest], Manifest | None]) -> LayerIndex:
    """The index of a V2 listing: each tag's image, or each image below the index it
    names; `manifests` gives a manifest read for the listing (None: unreadable, left
    out, as the listing warned)."""
    index = LayerIndex()
    for repo in listing.repositories:
        for tag in repo.tags:
            if tag.digest is None:
                continue
            digest = Digest.parse(tag.digest)
            for child, platform in _images(digest, manifests):
                layers = (str(d.digest) for d in child[1].layers)
                index.add(Holder(repo.name, tag.tag, str(child[0]), platform), layers)
    return index


def index_v1(listing: Listing, shown_name: Callable[[str], str]) -> LayerIndex:
    """The index of a V1 listing: each tag's image and its ancestry (image ids)."""
    index = LayerIndex()
    for repo in listing.repositories:
        for tag in repo.tags:
            if tag.image_id is not None:
                holder = Holder(shown_name(repo.name), tag.tag, tag.image_id)
                index.add(holder, tag.blob_sizes)
    return index


def _images(
    root: Digest, manifests: Callable[[Digest], Manifest | None]
) -> Iterator[tuple[tuple[Digest, Manifest], str]]:
    """((digest, image manifest), platform) of `root` or of every image below it."""
    seen: set[Digest] = set()
    stack: list[tuple[Digest, Descriptor | None]] = [(root, None)]
    while stack:
        digest, descriptor = stack.pop()
        if digest in seen:
            continue
        seen.add(digest)
        manifest = manifests(digest)
        if manifest is None:
            continue
        if manifest.is_index:
            stack.extend((c.digest, c) for c in reversed(manifest.manifests))
        else:
            platform = descriptor.platform if descriptor is not None else None
            yield (digest, manifest), str(platform) if platform else ""

"""What distribution deletes, as paths of its V2 layout (see the tree in `layout/v2.py`).

- Untag (`DELETE /v2/<name>/manifests/<tag>`, distribution's `tagStore.Untag`): the whole
  `_manifests/tags/<tag>/` directory, `current/link` and the tag's history.
- Delete a manifest (`DELETE /v2/<name>/manifests/<digest>`): its revision link, and every
  tag whose `current/link` names it (untagged as above); distribution's gc also removes
  the manifest's entries in other tags' history (`tags/<tag>/index/<digest>/link`), which
  name a manifest no longer there.
- Blob data goes only by gc.
"""

from __future__ import annotations

from collections.abc import Iterable

from regtool.layout.v2 import V2Layout
from regtool.oci import Digest


def tag_of_path(layout: V2Layout, path: str) -> tuple[str, str] | None:
    """(repository, tag) of any file below `_manifests/tags/<tag>/`: the inverse of
    `V2Layout.tag_dir` for the files it holds; None for any other path."""
    split = layout.split_repository_path(path)
    if split is None:
        return None
    name, rest = split
    if len(rest) >= 4 and rest[0] == "_manifests" and rest[1] == "tags":
        return name, rest[2]
    return None


def manifest_paths(
    layout: V2Layout, name: str, digest: Digest, history: Iterable[tuple[str, list[Digest]]]
) -> list[str]:
    """The files that go when manifest `digest` of repository `name` is deleted, but for
    the tags that go with it: its revision link, and its entry in the `history` (tag ->
    digests it named) of every other tag."""
    paths = [layout.revision_link(name, digest)]
    paths += [layout.tag_index_link(name, tag, digest) for tag, named in history if digest in named]
    return paths

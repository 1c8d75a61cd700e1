"""Real images, made with umoci, written out as the V1 registry stored them.

    src = build_source(tmp_path / "oci")       # two tags sharing a base, in an OCI layout
    store = write_v1(driver, src, root="docker-registry")   # the V1 store, via any driver
    tree(rootfs)                               # a file tree to compare: names, modes, ...

`app` is four layers: files, a symlink and a hard link added (gzip); an empty layer as
Docker pushed one for a `#(nop)` step (a gzip'd tar of two zero blocks); a file changed,
one deleted and a directory deleted, so whiteouts (kept as a plain tar); a file added (xz).
`tools` shares the first layer and adds one of its own (bzip2). Each layer becomes a V1
image with an id derived from its content and parent, so shared layers share images.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regtool.storage.base import Driver, join
from tests.services import images as img

EMPTY_TAR_GZ = gzip.compress(b"\0" * 1024, mtime=0)


@dataclass
class Source:
    layout: Path
    #: tag -> the V1 chain, base first: (image id, layer bytes as stored, created_by)
    chains: dict[str, list[tuple[str, bytes, str]]] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # tag -> OCI config


def _umoci(*args: str) -> None:
    img._umoci(*args)


def _blob(layout: Path, digest: str) -> bytes:
    return img.read_blob(layout, digest)


def _edit(layout: Path, base: str, tag: str, scratch: Path, change: Any) -> None:
    bundle = scratch / f"bundle-{tag}"
    _umoci("unpack", "--rootless", "--image", f"{layout}:{base}", str(bundle))
    change(bundle / "rootfs")
    _umoci("repack", "--image", f"{layout}:{tag}", str(bundle))
    shutil.rmtree(bundle)


def _first(root: Path) -> None:
    (root / "etc").mkdir()
    (root / "etc/app.conf").write_text("version=1\n")
    (root / "bin").mkdir()
    (root / "bin/tool").write_bytes(b"#!/bin/sh\necho tool\n")
    (root / "bin/tool").chmod(0o755)
    os.link(root / "bin/tool", root / "bin/tool-again")
    (root / "app.conf").symlink_to("etc/app.conf")
    (root / "data").mkdir()
    (root / "data/keep.txt").write_text("kept\n")
    (root / "data/gone.txt").write_text("deleted later\n")
    (root / "old").mkdir()
    (root / "old/inside").write_text("a directory deleted later\n")
    (root / "secret").write_text("mode 600\n")
    (root / "secret").chmod(0o600)


def _second(root: Path) -> None:
    (root / "etc/app.conf").write_text("version=2\n")
    (root / "data/gone.txt").unlink()
    shutil.rmtree(root / "old")


def _fourth(root: Path) -> None:
    (root / "data/added.txt").write_text("added at the top\n")


def _tools(root: Path) -> None:
    (root / "bin/other").write_bytes(b"other tool\n")
    (root / "etc/app.conf").unlink()


def build_source(layout: Path) -> Source:
    """Build `base` -> `one` -> `two` -> `app` and `one` -> `tools` with umoci."""
    scratch = layout.parent / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    img.init_layout(layout)
    _umoci("new", "--image", f"{layout}:base")
    _edit(layout, "base", "one", scratch, _first)
    _edit(layout, "one", "two", scratch, _second)
    _edit(layout, "two", "app", scratch, _fourth)
    _edit(layout, "one", "tools", scratch, _tools)
    source = Source(layout)
    for tag, compressions in (("app", ["gzip", "tar", "xz"]), ("tools", ["gzip", "bzip2"])):
        image = img.load_image(layout, tag)
        source.configs[tag] = image.config_json()
        chain: list[tuple[str, bytes, str]] = []
        parent = ""
        for n, (layer, how) in enumerate(zip(image.layer_digests, compressions, strict=True)):
            data = _recompress(_blob(layout, layer), how)
            parent = _image_id(layer, parent)
            chain.append((parent, data, f"/bin/sh -c #(nop) layer {n} ({how})"))
            if tag == "app" and n == 0:  # a step that changed no file, as Docker pushed it
                parent = _image_id("empty", parent)
                chain.append((parent, EMPTY_TAR_GZ, "/bin/sh -c #(nop) ENV A=1"))
        source.chains[tag] = chain
    return source


def _image_id(layer: str, parent: str) -> str:
    return hashlib.sha256(f"{layer} {parent}".encode()).hexdigest()


def _recompress(gzipped: bytes, how: str) -> bytes:
    tar = gzip.decompress(gzipped)
    if how == "gzip":
        return gzipped
    if how == "tar":
        return tar
    if how == "xz":
        return lzma.compress(tar)
    return bz2.compress(tar)


def image_json(image_id: str, parent: str | None, created_by: str, n: int) -> bytes:
    doc: dict[str, Any] = {
        "id": image_id,
        "created": f"2015-03-13T16:47:{n:02d}.000000000Z",
        "author": "V1 Author <author@example.com>",
        "container_config": {"Cmd": created_by.split(" ", 2)},
        "config": {"Cmd": ["/bin/true"], "Env": ["PATH=/usr/bin:/bin"], "WorkingDir": "/"},
        "architecture": "amd64",
        "os": "linux",
        "docker_version": "1.5.0",
        "Size": 0,
    }
    if n == 0:
        doc["comment"] = "the base"
    if parent:
        doc["parent"] = parent
    return json.dumps(doc).encode()


def write_v1(
    driver: Driver, source: Source, root: str = "", names: dict[str, str] | None = None
) -> dict[str, list[str]]:
    """Write the V1 store: images/<id>/{json,layer,ancestry,_checksum} and, for each tag,
    repositories/<ns>/<repo>/tag_<tag> etc. `names`: V1 tag -> `repo:tag` (default
    `exampleapp:<tag>`). Returns each repo:tag's ancestry (top first)."""
    names = names or {tag: f"exampleapp:{tag}" for tag in source.chains}
    written: dict[str, list[str]] = {}
    for v1_tag, chain in source.chains.items():
        ancestry: list[str] = []
        parent = None
        for n, (image_id, layer, created_by) in enumerate(chain):
            ancestry.insert(0, image_id)
            json_bytes = image_json(image_id, parent, created_by, n)
            base = join(root, "images", image_id)
            checksum = "sha256:" + hashlib.sha256(json_bytes + b"\n" + layer).hexdigest()
            driver.put(f"{base}/json", json_bytes)
            driver.put(f"{base}/layer", layer)
            driver.put(f"{base}/ancestry", json.dumps(ancestry).encode())
            driver.put(f"{base}/_checksum", json.dumps([checksum]).encode())
            parent = image_id
        name, _, tag = names[v1_tag].partition(":")
        repo = join(root, "repositories", name if "/" in name else f"library/{name}")
        assert parent is not None
        driver.put(f"{repo}/tag_{tag}", parent.encode())
        driver.put(f"{repo}/tag{tag}_json", b'{"last_update": 1426265245}')
        driver.put(f"{repo}/json", b"{}")
        written[names[v1_tag]] = list(ancestry)
    return written


def unpack(layout: Path, tag: str, dest: Path) -> Path:
    """`umoci unpack` of `layout:tag`; returns the rootfs."""
    _umoci("unpack", "--rootless", "--image", f"{layout}:{tag}", str(dest))
    return dest / "rootfs"


def tree(root: Path) -> dict[str, Any]:
    """Every path below `root`: (kind, mode, content or link target) and, for files with
    more than one name, the group of names sharing its inode."""
    out: dict[str, Any] = {}
    inodes: dict[int, list[str]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("symlink", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", mode)
        else:
            out[rel] = ("file", mode, path.read_bytes())
            inodes.setdefault(st.st_ino, []).append(rel)
    for names in inodes.values():
        if len(names) > 1:
            for name in names:
                out[name] = (*out[name], tuple(sorted(names)))
    return out

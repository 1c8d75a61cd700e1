"""Build real OCI images without Docker (umoci) and move them with skopeo.

    img = build_image(tmp_path / "oci", "v1", size=4096)          # one linux/amd64 image
    idx = build_index(tmp_path / "oci", "multi")                  # amd64 + arm64 + index
    digest = push(img, reg.host, "team/app", "v1")                # OCI manifest
    digest = push(img, reg.host, "team/app", "v1-docker", format="v2s2")  # Docker schema 2
    pull(reg.host, "team/app", "v1", tmp_path / "pulled")
    raw = inspect_raw(reg.host, "team/app", "v1")                 # manifest bytes

Every layer holds fresh random bytes (`size` of them, incompressible), so digests never
repeat across tests; `files=` adds one more layer with exact, reproducible content (fixed
mtimes and owners), so two images built with the same `files` share that layer's digest.
`base=` builds on another image of the same layout, sharing all its layers.

umoci writes OCI media types; skopeo converts to Docker schema 2 when asked
(`format="v2s2"`: the config and layer blobs keep their digests, the manifest gets a new
one, which `push` returns). The multi-arch index is written by hand (umoci cannot): an
OCI image index blob in blobs/sha256/ plus its entry in index.json.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tests.services.distribution import service_env

UMOCI_BIN = "/usr/bin/umoci"
SKOPEO_BIN = "/usr/bin/skopeo"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

REF_NAME = "org.opencontainers.image.ref.name"

Format = Literal["oci", "v2s2"]


class ToolError(RuntimeError):
    """umoci or skopeo failed; the message carries the command and its stderr."""


def tools_missing() -> list[str]:
    """Names of the image tools that are not installed (empty when all are)."""
    missing = []
    for name, path in (("umoci", UMOCI_BIN), ("skopeo", SKOPEO_BIN)):
        if not (os.access(path, os.X_OK) or shutil.which(name)):
            missing.append(name)
    return missing


def _bin(name: str, default: str) -> str:
    return default if os.access(default, os.X_OK) else (shutil.which(name) or default)


def _run(cmd: Sequence[str], *, timeout: float = 120) -> str:
    done = subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        env=service_env(),
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise ToolError(
            f"{' '.join(cmd)} exited with {done.returncode}:\n{done.stderr.strip()}"
            + (f"\n{done.stdout.strip()}" if done.stdout.strip() else "")
        )
    return done.stdout


def _umoci(*args: str) -> str:
    return _run([_bin("umoci", UMOCI_BIN), *args])


@functools.cache
def policy_path() -> str:
    """A containers-policy.json of our own that accepts everything (not the machine's)."""
    fd, path = tempfile.mkstemp(prefix="regtool-tests-policy-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump({"default": [{"type": "insecureAcceptAnything"}]}, f)
    return path


def _skopeo(*args: str) -> str:
    return _run([_bin("skopeo", SKOPEO_BIN), "--policy", policy_path(), *args])


# --------------------------------------------------------------------------- results


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _hex(digest: str) -> str:
    alg, _, hexpart = digest.partition(":")
    if alg != "sha256" or len(hexpart) != 64:
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return hexpart


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    media_type: str


@dataclass(frozen=True)
class Image:
    """One image manifest in an OCI layout, tagged `tag` there (as umoci built it)."""

    layout: Path
    tag: str
    digest: str  # the manifest's digest (OCI; a v2s2 push yields another one)
    size: int  # the manifest's size in bytes
    media_type: str
    config: Blob
    layers: tuple[Blob, ...]
    platform: str  # "os/arch[/variant]"

    @property
    def manifest_digest(self) -> str:
        return self.digest

    @property
    def config_digest(self) -> str:
        return self.config.digest

    @property
    def layer_digests(self) -> list[str]:
        return [b.digest for b in self.layers]

    @property
    def oci_ref(self) -> str:
        """The skopeo/umoci reference of this image: `oci:<layout>:<tag>`."""
        return f"oci:{self.layout}:{self.tag}"

    @property
    def blobs(self) -> list[Blob]:
        """Config and layers (what an image manifest references)."""
        return [self.config, *self.layers]

    @property
    def digests(self) -> set[str]:
        """Every digest a registry stores for this image: manifest, config, layers."""
        return {self.digest, self.config.digest, *self.layer_digests}

    @property
    def total_size(self) -> int:
        """Manifest + config + layers, in bytes."""
        return self.size + self.config.size + sum(b.size for b in self.layers)

    def manifest_bytes(self) -> bytes:
        return read_blob(self.layout, self.digest)

    def manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_bytes())

    def config_json(self) -> dict[str, Any]:
        return json.loads(read_blob(self.layout, self.config.digest))


@dataclass(frozen=True)
class ImageIndex:
    """An OCI image index in an OCI layout, tagged `tag`, over per-platform `images`."""

    layout: Path
    tag: str
    digest: str
    size: int
    media_type: str
    images: tuple[Image, ...]

    @property
    def manifest_digest(self) -> str:
        return self.digest

    @property
    def oci_ref(self) -> str:
        return f"oci:{self.layout}:{self.tag}"

    @property
    def platforms(self) -> list[str]:
        return [i.platform for i in self.images]

    @property
    def child_digests(self) -> list[str]:
        return [i.digest for i in self.images]

    @property
    def blobs(self) -> list[Blob]:
        """Configs and layers of all children (no manifests)."""
        return [b for i in self.images for b in i.blobs]

    @property
    def digests(self) -> set[str]:
        """Index, child manifests, their configs and layers."""
        out = {self.digest}
        for i in self.images:
            out |= i.digests
        return out

    @property
    def total_size(self) -> int:
        return self.size + sum(i.total_size for i in self.images)

    def manifest_bytes(self) -> bytes:
        return read_blob(self.layout, self.digest)

    def manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_bytes())


# --------------------------------------------------------------------------- OCI layout


def blob_path(layout: Path, digest: str) -> Path:
    return Path(layout) / "blobs" / "sha256" / _hex(digest)


def read_blob(layout: Path, digest: str) -> bytes:
    data = blob_path(layout, digest).read_bytes()
    if sha256_digest(data) != digest:
        raise ValueError(f"blob {digest} in {layout} does not match its digest")
    return data


def write_blob(layout: Path, data: bytes) -> str:
    digest = sha256_digest(data)
    path = blob_path(layout, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return digest


def _read_index_json(layout: Path) -> dict[str, Any]:
    return json.loads((Path(layout) / "index.json").read_text())


def _write_index_json(layout: Path, index: dict[str, Any]) -> None:
    path = Path(layout) / "index.json"
    tmp = path.with_name("index.json.tmp")
    tmp.write_text(json.dumps(index, separators=(",", ":")))
    tmp.replace(path)


def tag_descriptor(layout: Path, tag: str) -> dict[str, Any]:
    """The index.json descriptor that names `tag` in the layout."""
    for desc in _read_index_json(layout).get("manifests", []):
        if desc.get("annotations", {}).get(REF_NAME) == tag:
            return desc
    raise KeyError(f"no tag {tag!r} in OCI layout {layout}")


def set_tag(layout: Path, tag: str, descriptor: Mapping[str, Any]) -> None:
    """Point `tag` in the layout's index.json at `descriptor` (replacing an old entry)."""
    index = _read_index_json(layout)
    manifests = [
        d for d in index.get("manifests", []) if d.get("annotations", {}).get(REF_NAME) != tag
    ]
    desc = dict(descriptor)
    desc["annotations"] = {**desc.get("annotations", {}), REF_NAME: tag}
    manifests.append(desc)
    index["manifests"] = manifests
    _write_index_json(layout, index)


def init_layout(layout: Path) -> Path:
    """Create an empty OCI layout at `layout` unless one is already there."""
    layout = Path(layout)
    if not (layout / "oci-layout").exists():
        layout.parent.mkdir(parents=True, exist_ok=True)
        _umoci("init", "--layout", str(layout))
    return layout


def load_image(layout: Path, tag: str, platform: str | None = None) -> Image:
    """Describe the image manifest tagged `tag` in an OCI layout."""
    layout = Path(layout)
    desc = tag_descriptor(layout, tag)
    raw = read_blob(layout, desc["digest"])
    manifest = json.loads(raw)
    cfg = manifest["config"]
    config = Blob(cfg["digest"], int(cfg["size"]), cfg.get("mediaType", OCI_CONFIG))
    if platform is None:
        cj = json.loads(read_blob(layout, config.digest))
        platform = f"{cj.get('os', '')}/{cj.get('architecture', '')}"
        if cj.get("variant"):
            platform += f"/{cj['variant']}"
    return Image(
        layout=layout,
        tag=tag,
        digest=desc["digest"],
        size=len(raw),
        media_type=manifest.get("mediaType", desc.get("mediaType", OCI_MANIFEST)),
        config=config,
        layers=tuple(
            Blob(x["digest"], int(x["size"]), x.get("mediaType", OCI_LAYER_GZIP))
            for x in manifest.get("layers", [])
        ),
        platform=platform,
    )


def _platform_dict(platform: str) -> dict[str, str]:
    parts = platform.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"platform must be os/arch[/variant], not {platform!r}")
    out = {"architecture": parts[1], "os": parts[0]}
    if len(parts) == 3:
        out["variant"] = parts[2]
    return out


def _reproducible_tree(root: Path, files: Mapping[str, bytes]) -> None:
    for name, content in files.items():
        rel = name.lstrip("/")
        if not rel or ".." in Path(rel).parts:
            raise ValueError(f"bad file path in image: {name!r}")
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in [*dirnames, *filenames]:
            p = os.path.join(dirpath, n)
            os.chmod(p, 0o755 if os.path.isdir(p) else 0o644)
            os.utime(p, (0, 0))
    os.utime(root, (0, 0))


def build_image(
    layout: str | os.PathLike[str],
    tag: str = "latest",
    *,
    size: int = 4096,
    layers: int = 1,
    platform: str = "linux/amd64",
    files: Mapping[str, bytes] | None = None,
    base: Image | None = None,
    labels: Mapping[str, str] | None = None,
    cmd: Sequence[str] = ("/bin/true",),
) -> Image:
    """Build an image with umoci into the OCI layout `layout` (created if missing).

    `layers` layers of `size` random bytes each (a file /regtool/<token>/layer<N>.bin),
    then, if `files` is given, one reproducible layer with those {path: bytes}; on top of
    `base` (an image in the same layout) when given. The config gets the platform's os and
    architecture (a variant only goes into index descriptors), `cmd`, and `labels`
    plus a unique `regtool.test.token` label, so even `layers=0` images are distinct.
    """
    layout = init_layout(Path(layout))
    if base is not None:
        if Path(base.layout).resolve() != layout.resolve():
            raise ValueError("base must live in the same OCI layout")
        if base.tag != tag:
            _umoci("tag", "--image", f"{layout}:{base.tag}", tag)
    else:
        _umoci("new", "--image", f"{layout}:{tag}")
    image_ref = f"{layout}:{tag}"
    token = os.urandom(8).hex()
    with tempfile.TemporaryDirectory(prefix="regtool-img-") as scratch:
        for n in range(layers):
            src = Path(scratch) / f"layer{n}.bin"
            src.write_bytes(os.urandom(size))
            _umoci(
                "insert",
                "--rootless",
                "--image",
                image_ref,
                "--history.created_by",
                f"regtool-tests layer {n}",
                str(src),
                f"/regtool/{token}/layer{n}.bin",
            )
        if files:
            tree = Path(scratch) / "files"
            tree.mkdir()
            _reproducible_tree(tree, files)
            _umoci(
                "insert",
                "--rootless",
                "--image",
                image_ref,
                "--history.created_by",
                "regtool-tests files",
                "--history.created",
                "1970-01-01T00:00:00Z",
                str(tree),
                "/",
            )
    plat = _platform_dict(platform)
    config_args = [
        "config",
        "--image",
        image_ref,
        "--os",
        plat["os"],
        "--architecture",
        plat["architecture"],
        "--config.label",
        f"regtool.test.token={token}",
    ]
    for c in cmd:
        config_args += ["--config.cmd", c]
    for k, v in (labels or {}).items():
        config_args += ["--config.label", f"{k}={v}"]
    _umoci(*config_args)
    _umoci("gc", "--layout", str(layout))
    return load_image(layout, tag, platform=platform)


def write_index(
    layout: str | os.PathLike[str],
    tag: str,
    images: Iterable[Image],
    *,
    annotations: Mapping[str, str] | None = None,
) -> ImageIndex:
    """Write an OCI image index over `images` (all in `layout`) and tag it `tag`."""
    layout = Path(layout)
    images = tuple(images)
    manifests = []
    for img in images:
        if Path(img.layout).resolve() != layout.resolve():
            raise ValueError(f"image {img.tag} is not in layout {layout}")
        manifests.append(
            {
                "mediaType": img.media_type,
                "digest": img.digest,
                "size": img.size,
                "platform": _platform_dict(img.platform),
            }
        )
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    if annotations:
        doc["annotations"] = dict(annotations)
    raw = json.dumps(doc, indent=2).encode()
    digest = write_blob(layout, raw)
    set_tag(layout, tag, {"mediaType": OCI_INDEX, "digest": digest, "size": len(raw)})
    return ImageIndex(
        layout=layout,
        tag=tag,
        digest=digest,
        size=len(raw),
        media_type=OCI_INDEX,
        images=images,
    )


def build_index(
    layout: str | os.PathLike[str],
    tag: str = "latest",
    *,
    platforms: Sequence[str] = ("linux/amd64", "linux/arm64"),
    size: int = 4096,
    layers: int = 1,
    files: Mapping[str, bytes] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> ImageIndex:
    """A multi-arch image: one image per platform (each with its own random layers),
    tagged `<tag>--<os>-<arch>[-<variant>]` in the layout, and an OCI index tagged `tag`.
    """
    images = [
        build_image(
            layout,
            f"{tag}--{p.replace('/', '-')}",
            size=size,
            layers=layers,
            platform=p,
            files=files,
        )
        for p in platforms
    ]
    return write_index(layout, tag, images, annotations=annotations)


# --------------------------------------------------------------------------- skopeo


def docker_ref(host: str, repo: str, ref: str) -> str:
    """`docker://HOST/REPO:TAG` or `docker://HOST/REPO@sha256:...`."""
    sep = "@" if ":" in ref else ":"
    return f"docker://{host}/{repo}{sep}{ref}"


#: ("push" | "pull", wall-clock seconds) of every skopeo copy made through this module.
timings: list[tuple[str, float]] = []


def push(
    image: Image | ImageIndex,
    registry_host: str,
    repo: str,
    tag: str,
    *,
    format: Format | None = None,
) -> str:
    """`skopeo copy --all` the image or index to `docker://HOST/REPO:TAG`.

    Returns the digest of the manifest the registry stored for the tag (skopeo's
    --digestfile). With `format=None` or "oci" the manifests go up unchanged, so the digest
    is `image.digest`; with "v2s2" skopeo converts them to Docker schema 2 (an index
    becomes a Docker manifest list) and the digests differ.
    """
    with tempfile.TemporaryDirectory(prefix="regtool-push-") as tmp:
        digestfile = Path(tmp) / "digest"
        args = ["copy", "--all", "--quiet", "--retry-times", "0"]
        args += ["--dest-tls-verify=false", "--dest-no-creds"]
        if format is not None:
            args += ["--format", format]
        if format in (None, "oci"):
            args.append("--preserve-digests")
        args += ["--digestfile", str(digestfile), "--tmpdir", tmp]
        args += [image.oci_ref, docker_ref(registry_host, repo, tag)]
        t0 = time.monotonic()
        _skopeo(*args)
        timings.append(("push", time.monotonic() - t0))
        return digestfile.read_text().strip()


def pull(
    host: str,
    repo: str,
    ref: str,
    dest_dir: str | os.PathLike[str],
    *,
    dest_tag: str | None = None,
    preserve_digests: bool | None = None,
) -> str:
    """`skopeo copy --all docker://HOST/REPO:REF` into the OCI layout `dest_dir`.

    `ref` is a tag or a digest. The copy is tagged `dest_tag` (default: the tag, or
    "pulled" for a digest) in the layout. Returns the digest of the manifest written to
    the layout.

    An OCI layout holds Docker schema 2 manifests as they are, but not a Docker manifest
    list: skopeo must convert that one to an OCI index, and then converts the children to
    OCI manifests as well (config and layer blobs keep their digests). With
    `preserve_digests=None` (default) the copy keeps digests when it can and falls back to
    converting only for that case; True makes conversion an error, False lets skopeo
    convert as it likes.
    """
    dest = Path(dest_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest_tag is None:
        dest_tag = "pulled" if ":" in ref else ref

    def copy(preserve: bool) -> str:
        with tempfile.TemporaryDirectory(prefix="regtool-pull-") as tmp:
            digestfile = Path(tmp) / "digest"
            t0 = time.monotonic()
            _skopeo(
                "copy",
                "--all",
                "--quiet",
                "--retry-times",
                "0",
                "--src-tls-verify=false",
                "--src-no-creds",
                *(["--preserve-digests"] if preserve else []),
                "--digestfile",
                str(digestfile),
                "--tmpdir",
                tmp,
                docker_ref(host, repo, ref),
                f"oci:{dest}:{dest_tag}",
            )
            timings.append(("pull", time.monotonic() - t0))
            return digestfile.read_text().strip()

    if preserve_digests is not None:
        return copy(preserve_digests)
    try:
        return copy(True)
    except ToolError as e:
        if "preserve digests" not in str(e):
            raise
        return copy(False)


def inspect_raw(host: str, repo: str, ref: str) -> bytes:
    """The manifest (or index / manifest list) bytes exactly as the registry serves them."""
    done = subprocess.run(
        [
            _bin("skopeo", SKOPEO_BIN),
            "--policy",
            policy_path(),
            "inspect",
            "--raw",
            "--retry-times",
            "0",
            "--tls-verify=false",
            "--no-creds",
            docker_ref(host, repo, ref),
        ],
        capture_output=True,
        env=service_env(),
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise ToolError(f"skopeo inspect --raw {repo}:{ref}: {done.stderr.decode().strip()}")
    return done.stdout


def inspect_manifest(host: str, repo: str, ref: str) -> dict[str, Any]:
    return json.loads(inspect_raw(host, repo, ref))


def delete(host: str, repo: str, ref: str) -> None:
    """`skopeo delete`: deletes the manifest REF resolves to (and so every tag on it)."""
    _skopeo(
        "delete",
        "--retry-times",
        "0",
        "--tls-verify=false",
        "--no-creds",
        docker_ref(host, repo, ref),
    )

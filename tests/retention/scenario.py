"""A registry pushed by skopeo (through distribution or `regtool serve`) for retention
tests, and what `prune --keep-last 2 --keep-tags stable --keep-tags latest` must do to it.

app     b1 b2 b3 b4 b5 (distinct images, pushed in that order), stable = b2's image,
        latest = b5's image (a tag shared by two names)
multi   all = an OCI index over c1 (amd64) and c2 (arm64), then amd64 = c1 (an index whose
        child is also tagged), then edge = image n
signed  1, 2, 3 (images s1 s2 s3 in that order); s1 and s2 each have a referrer (an
        artifact whose subject is the image, pushed by digest)

The policy deletes app:b1 b2 b3, multi:all, signed:1; manifests b1, b3, the index and c2
(c1 stays: amd64 is kept), s1 and its referrer; b2 stays (stable is kept).
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.services.images import Image, ImageIndex, build_image, build_index, push

POLICY = ("--keep-last", "2", "--keep-tags", "stable", "--keep-tags", "latest")


@dataclass
class Referrer:
    digest: str
    blobs: set[str]  # its manifest, config and layer

    @property
    def digests(self) -> set[str]:
        return self.blobs


@dataclass
class Pushed:
    host: str
    tags: dict[str, str] = field(default_factory=dict)  # "repo:tag" -> manifest digest
    images: dict[str, Image | ImageIndex] = field(default_factory=dict)
    referrers: dict[str, Referrer] = field(default_factory=dict)  # subject tag -> referrer
    pruned_tags: set[str] = field(default_factory=set)
    kept_tags: set[str] = field(default_factory=set)
    pruned_manifests: set[str] = field(default_factory=set)  # (their digests)
    freed: set[str] = field(default_factory=set)  # blobs only the pruned images used


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def put_blob(host: str, repo: str, data: bytes) -> dict[str, object]:
    """Upload a blob through the API (POST, then PUT with the digest)."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    post = urllib.request.Request(f"http://{host}/v2/{repo}/blobs/uploads/", method="POST")
    with _opener().open(post) as r:
        location = r.headers["Location"]
    if location.startswith("/"):
        location = f"http://{host}{location}"
    sep = "&" if "?" in location else "?"
    put = urllib.request.Request(
        f"{location}{sep}digest={digest}",
        data=data,
        method="PUT",
        headers={"Content-Type": "application/octet-stream"},
    )
    with _opener().open(put):
        pass
    return {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}


def push_referrer(host: str, repo: str, subject: Image) -> Referrer:
    """An OCI 1.1 artifact whose subject is `subject`, pushed by digest (no tag)."""
    config = put_blob(host, repo, b"{}")
    layer = put_blob(host, repo, os.urandom(200))
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.signature",
        "config": {**config, "mediaType": "application/vnd.oci.empty.v1+json"},
        "layers": [layer],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        },
    }
    raw = json.dumps(doc).encode()
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    put = urllib.request.Request(
        f"http://{host}/v2/{repo}/manifests/{digest}",
        data=raw,
        method="PUT",
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    with _opener().open(put):
        pass
    return Referrer(digest, {digest, str(config["digest"]), str(layer["digest"])})


def manifest_status(host: str, repo: str, ref: str) -> int:
    """The registry's answer to `HEAD /v2/<repo>/manifests/<ref>`."""
    head = urllib.request.Request(
        f"http://{host}/v2/{repo}/manifests/{ref}",
        method="HEAD",
        headers={
            "Accept": ", ".join(
                [
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json",
                ]
            )
        },
    )
    try:
        with _opener().open(head) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


def build(host: str, oci: Path) -> Pushed:
    p = Pushed(host)

    def tag(ref: str, image: Image | ImageIndex) -> None:
        repo, name = ref.split(":")
        p.tags[ref] = push(image, host, repo, name)
        p.images[ref] = image

    b = [build_image(oci, f"b{n}", size=1200) for n in range(1, 6)]
    for n, image in enumerate(b, 1):
        tag(f"app:b{n}", image)
    tag("app:stable", b[1])
    tag("app:latest", b[4])
    index = build_index(oci, "all", size=800)
    c1, c2 = index.images
    edge = build_image(oci, "edge", size=900)
    tag("multi:all", index)
    tag("multi:amd64", c1)
    tag("multi:edge", edge)
    s = [build_image(oci, f"s{n}", size=700) for n in range(1, 4)]
    for n, image in enumerate(s, 1):
        tag(f"signed:{n}", image)
    p.referrers["signed:1"] = push_referrer(host, "signed", s[0])
    p.referrers["signed:2"] = push_referrer(host, "signed", s[1])

    p.pruned_tags = {"app:b1", "app:b2", "app:b3", "multi:all", "signed:1"}
    p.kept_tags = set(p.tags) - p.pruned_tags
    p.pruned_manifests = {
        b[0].digest,
        b[2].digest,
        index.digest,
        c2.digest,
        s[0].digest,
        p.referrers["signed:1"].digest,
    }
    gone = b[0].digests | b[2].digests | {index.digest} | c2.digests | s[0].digests
    gone |= p.referrers["signed:1"].digests
    kept: set[str] = set()
    for ref in p.kept_tags:
        kept |= p.images[ref].digests
    kept |= p.referrers["signed:2"].digests
    p.freed = gone - kept
    return p

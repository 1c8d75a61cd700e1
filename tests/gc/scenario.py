"""A registry with garbage in it, made by distribution itself (pushed with skopeo):

app:v1        image a2; a1 was pushed as app:v1 first (a1 is now untagged)
app:v3        pushed, then its manifest deleted through the API: a3's blobs orphaned
app:docker    a2 as Docker schema 2, then deleted: only that manifest blob orphaned
multi:latest  an OCI index over two images (its children are untagged revisions)
app           one upload left half done (POST + PATCH, no PUT)
"""

from __future__ import annotations

import os
import re
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.services.images import Image, ImageIndex, build_image, build_index, delete, push

ELIGIBLE = re.compile(r"blob eligible for deletion: (sha256:[0-9a-f]{64})")


@dataclass
class Scenario:
    tagged: dict[str, str] = field(default_factory=dict)  # "repo:tag" -> digest
    orphaned: set[str] = field(default_factory=set)  # eligible without --delete-untagged
    untagged: set[str] = field(default_factory=set)  # a1: its manifest, config, layers
    children: set[str] = field(default_factory=set)  # the index's children and blobs
    child_manifests: set[str] = field(default_factory=set)
    upload_id: str = ""
    first_upload: str = ""  # in a repository that has no manifest yet
    deleted_image: str = ""  # a3's manifest, deleted through the API


def digests_of(image: Image) -> set[str]:
    return {image.digest, image.config_digest, *image.layer_digests}


def start_upload(host: str, repo: str, data: bytes) -> str:
    """Begin a blob upload and send some bytes, never finishing it; returns its uuid."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    post = urllib.request.Request(f"http://{host}/v2/{repo}/blobs/uploads/", method="POST")
    with opener.open(post) as r:
        location = r.headers["Location"]
        upload_id = r.headers["Docker-Upload-UUID"]
    if location.startswith("/"):
        location = f"http://{host}{location}"
    patch = urllib.request.Request(
        location, data=data, method="PATCH", headers={"Content-Type": "application/octet-stream"}
    )
    with opener.open(patch):
        pass
    return upload_id


def build(host: str, oci: Path) -> Scenario:
    s = Scenario()
    a1 = build_image(oci, "a1", size=1500)
    a2 = build_image(oci, "a2", size=1500)
    a3 = build_image(oci, "a3", size=1500)
    multi: ImageIndex = build_index(oci, "multi", size=1000)
    push(a1, host, "app", "v1")
    s.tagged["app:v1"] = push(a2, host, "app", "v1")
    push(a3, host, "app", "v3")
    delete(host, "app", a3.digest)
    docker = push(a2, host, "app", "docker", format="v2s2")
    delete(host, "app", docker)
    s.tagged["multi:latest"] = push(multi, host, "multi", "latest")
    s.upload_id = start_upload(host, "app", os.urandom(100))
    s.first_upload = start_upload(host, "fresh", os.urandom(50))
    s.deleted_image = a3.digest
    s.orphaned = digests_of(a3) | {docker}
    s.untagged = digests_of(a1)
    s.children = set().union(*(digests_of(i) for i in multi.images))
    s.child_manifests = {i.digest for i in multi.images}
    return s


def eligible(gc_output: str) -> set[str]:
    """The blobs distribution's `garbage-collect` names."""
    return set(ELIGIBLE.findall(gc_output))

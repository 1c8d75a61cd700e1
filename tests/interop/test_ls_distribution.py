"""`regtool ls` on stores written by distribution itself (pushes with skopeo), read over a
local directory, SFTP and Swift, and checked against what was pushed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from regtool.oci import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from tests.services import images as img

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("image_tools")]


@dataclass
class Pushed:
    repo: str
    tag: str
    digest: str
    media_type: str
    platforms: list[str]
    blobs: dict[str, int]  # config + layers, deduplicated

    @property
    def size(self) -> int:
        return sum(self.blobs.values())


def push_sample(host: str, workdir: Path) -> list[Pushed]:
    """An OCI image, the same image as Docker schema 2, a tag alias, and a multi-arch index
    in a nested repository."""
    layout = workdir / "oci"
    image = img.build_image(layout, "app", size=3000, layers=2)
    index = img.build_index(layout, "multi", platforms=("linux/amd64", "linux/arm64/v8"))
    blobs = {b.digest: b.size for b in image.blobs}
    index_blobs = {b.digest: b.size for b in index.blobs}
    pushed = [
        Pushed(
            "library/exampleapp",
            "1.0",
            img.push(image, host, "library/exampleapp", "1.0"),
            OCI_MANIFEST,
            [],
            blobs,
        ),
        Pushed(
            "library/exampleapp",
            "latest",
            img.push(image, host, "library/exampleapp", "latest"),
            OCI_MANIFEST,
            [],
            blobs,
        ),
        Pushed(
            "library/exampleapp",
            "docker",
            img.push(image, host, "library/exampleapp", "docker", format="v2s2"),
            DOCKER_MANIFEST,
            [],
            blobs,
        ),
        Pushed(
            "team/sub/app",
            "multi",
            img.push(index, host, "team/sub/app", "multi"),
            OCI_INDEX,
            ["linux/amd64", "linux/arm64/v8"],
            index_blobs,
        ),
        Pushed(
            "team/sub/app",
            "multi-docker",
            img.push(index, host, "team/sub/app", "multi-docker", format="v2s2"),
            DOCKER_LIST,
            ["linux/amd64", "linux/arm64/v8"],
            index_blobs,
        ),
    ]
    assert pushed[0].digest == image.digest and pushed[3].digest == index.digest
    assert pushed[2].digest != image.digest  # converted to Docker schema 2
    return pushed


def check_listing(doc: dict[str, Any], pushed: list[Pushed]) -> None:
    assert doc["layout"] == "v2"
    got = {(r["name"], t["tag"]): t for r in doc["repositories"] for t in r["tags"]}
    assert set(got) == {(p.repo, p.tag) for p in pushed}
    for p in pushed:
        tag = got[(p.repo, p.tag)]
        assert tag["digest"] == p.digest, p
        assert tag["image_id"] is None
        assert tag["media_type"] == p.media_type, p
        assert tag["platforms"] == p.platforms, p
        assert tag["size"] == p.size, p
        assert tag["pushed"] is not None
    everything: dict[str, int] = {}
    for p in pushed:
        everything.update(p.blobs)
    assert doc["totals"] == {
        "repositories": 2,
        "tags": len(pushed),
        "size": sum(everything.values()),
    }
    assert doc["warnings"] == []


def test_ls_local_and_sftp(cli, distribution_fs, sshd_service, tmp_path: Path) -> None:
    pushed = push_sample(distribution_fs.host, tmp_path)
    # A tag named as a repository's own directories (which ls does not walk into), and an
    # upload distribution keeps in progress there: the listing is the same.
    image = img.build_image(tmp_path / "oci", "app", size=3000, layers=2)
    digest = img.push(image, distribution_fs.host, "library/exampleapp", "_layers")
    blobs = {b.digest: b.size for b in image.blobs}
    pushed.append(Pushed("library/exampleapp", "_layers", digest, OCI_MANIFEST, [], blobs))
    started = httpx.post(f"http://{distribution_fs.host}/v2/team/sub/app/blobs/uploads/")
    assert started.status_code == 202
    uploads = distribution_fs.v2 / "repositories" / "team" / "sub" / "app" / "_uploads"
    assert any(uploads.iterdir())
    check_listing(cli.json("ls", str(distribution_fs.root)), pushed)
    # distribution's own config file names the same store
    check_listing(cli.json("ls", "--config", str(distribution_fs.registry.config_path)), pushed)

    sftp = (
        f"sftp://{sshd_service.username}@{sshd_service.host}:{sshd_service.port}"
        f"{distribution_fs.root}"
    )
    env = {
        "REGTOOL_SFTP_IDENTITY": str(sshd_service.key_path),
        "REGTOOL_SFTP_KNOWN_HOSTS": str(sshd_service.known_hosts),
    }
    doc = cli.json("ls", sftp, env=env)
    check_listing(doc, pushed)
    assert doc["location"] == sftp

    one = cli.json("ls", str(distribution_fs.root), "team/sub/app")
    assert [r["name"] for r in one["repositories"]] == ["team/sub/app"]
    table = cli("ls", str(distribution_fs.root))
    assert table.exit_code == 0
    row = next(line for line in table.stdout.splitlines() if " multi " in f"{line} ")
    assert row.split()[:4] == ["team/sub/app", "multi", pushed[3].digest[:19], "index"]
    assert "linux/amd64,linux/arm64/v8" in row


def test_ls_swift(cli, distribution_swift, tmp_path: Path) -> None:
    pushed = push_sample(distribution_swift.host, tmp_path)
    service = distribution_swift.service
    env = {"ST_AUTH": service.auth_url, "ST_USER": service.user, "ST_KEY": service.key}
    doc = cli.json("ls", f"swift://{distribution_swift.container}", env=env)
    check_listing(doc, pushed)
    assert doc["location"] == f"swift://{distribution_swift.container}"
    assert service.key not in str(doc)


def test_damaged_data_warns_and_lists_the_rest(cli, distribution_fs, tmp_path: Path) -> None:
    host = distribution_fs.host
    layout = tmp_path / "oci"
    good = img.push(img.build_image(layout, "good"), host, "good", "1")
    img.push(img.build_image(layout, "badlink"), host, "broken", "badlink")
    bad_manifest = img.push(img.build_image(layout, "badjson"), host, "broken", "badjson")
    tags = distribution_fs.v2 / "repositories" / "broken" / "_manifests" / "tags"
    (tags / "badlink" / "current" / "link").write_bytes(b"sha256:garbage\n")
    hexpart = bad_manifest.split(":")[1]
    (distribution_fs.v2 / "blobs" / "sha256" / hexpart[:2] / hexpart / "data").write_bytes(
        b"<html>not a manifest</html>"
    )
    result = cli("ls", str(distribution_fs.root), "--json")
    assert result.exit_code == 0
    assert "broken:badlink: link" in result.stderr and "does not hold a digest" in result.stderr
    assert f"broken:badjson: manifest {bad_manifest}: not JSON" in result.stderr
    assert good in result.stdout
    assert result.stderr.count("warning:") == 2


def test_repointed_tag_shows_its_current_digest(cli, distribution_fs, tmp_path: Path) -> None:
    layout = tmp_path / "oci"
    first = img.push(img.build_image(layout, "a"), distribution_fs.host, "app", "1.0")
    second = img.push(img.build_image(layout, "b"), distribution_fs.host, "app", "1.0")
    assert first != second
    [repo] = cli.json("ls", str(distribution_fs.root))["repositories"]
    assert [(t["tag"], t["digest"]) for t in repo["tags"]] == [("1.0", second)]

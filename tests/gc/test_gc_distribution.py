"""regtool gc against distribution's own garbage collector, on stores distribution wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regtool.layout.v2 import FILESYSTEM_ROOT, V2Layout
from regtool.oci import Digest
from regtool.storage.local import LocalDriver
from tests.gc.scenario import build, eligible
from tests.services.images import pull


def _gc(cli: Any, location: str, *args: str, env: dict[str, str] | None = None) -> Any:
    return cli.json("gc", "-l", location, "--min-age", "0", "--settle", "0", *args, env=env)


def _named(doc: Any, *kinds: str) -> set[str]:
    return {o["name"] for o in doc["objects"] if o["kind"] in kinds}


def test_dry_run_names_what_distribution_names(
    cli: Any, image_tools: None, distribution_fs: Any, tmp_path: Path
) -> None:
    s = build(distribution_fs.host, tmp_path / "oci")
    root = str(distribution_fs.root)

    theirs = eligible(distribution_fs.registry.garbage_collect(dry_run=True))
    ours = _gc(cli, root, "--dry-run")
    assert theirs == s.orphaned
    assert _named(ours, "blob", "manifest") == theirs
    assert ours["dry_run"] and all(not o["deleted"] for o in ours["objects"])
    assert _named(ours, "upload") == set()  # younger than --uploads-older-than

    theirs = eligible(distribution_fs.registry.garbage_collect(dry_run=True, delete_untagged=True))
    ours = _gc(cli, root, "--dry-run", "--delete-untagged")
    # 2.8 keeps the children's manifest blobs (the index references them) but deletes
    # their revisions and their configs and layers: the index can no longer be pulled.
    assert theirs == s.orphaned | s.untagged | (s.children - s.child_manifests)
    assert _named(ours, "blob", "manifest") == s.orphaned | s.untagged
    assert _named(ours, "revision-link") == {min(s.untagged & _named(ours, "manifest"))}

    # The real run does what the dry run said, and the registry still serves every tag.
    plan = _gc(cli, root, "--dry-run", "--delete-untagged", "--uploads-older-than", "0")
    done = _gc(cli, root, "--delete-untagged", "--uploads-older-than", "0")
    strip = [{k: v for k, v in o.items() if k != "deleted"} for o in plan["objects"]]
    assert [{k: v for k, v in o.items() if k != "deleted"} for o in done["objects"]] == strip
    assert all(o["deleted"] for o in done["objects"]) and not done["failed"]
    assert _named(done, "upload") == {s.upload_id, s.first_upload}
    layout = V2Layout(LocalDriver(distribution_fs.root), FILESYSTEM_ROOT)
    for digest in s.orphaned | s.untagged:
        assert not (distribution_fs.root / layout.blob_data(Digest.parse(digest))).exists()
    assert not (distribution_fs.root / layout.upload_dir("app", s.upload_id)).exists()
    for ref in s.tagged:
        repo, tag = ref.split(":")
        pull(distribution_fs.host, repo, tag, tmp_path / "pulled" / repo)
    assert eligible(distribution_fs.registry.garbage_collect(dry_run=True)) == set()
    again = _gc(cli, root, "--dry-run", "--delete-untagged", "--uploads-older-than", "0")
    assert again["objects"] == []


def test_swift_deletes_segments_and_keeps_every_tag(
    cli: Any, image_tools: None, distribution_swift: Any, tmp_path: Path
) -> None:
    dist = distribution_swift
    s = build(dist.host, tmp_path / "oci")
    env = {
        "ST_AUTH": dist.service.auth_url,
        "ST_USER": dist.service.user,
        "ST_KEY": dist.service.key,
    }
    location = f"swift://{dist.container}"
    driver = dist.service.driver(dist.container)
    orphan = "segments/abc/" + "d" * 37 + "/0000000000000001"
    driver.put(orphan, b"left behind by a crashed writer")

    theirs = eligible(dist.registry.garbage_collect(dry_run=True))
    args = ("--delete-untagged", "--uploads-older-than", "0", "--orphan-segments")
    plan = _gc(cli, location, "--dry-run", *args, env=env)
    assert _named(plan, "blob", "manifest") == s.orphaned | s.untagged
    assert theirs == s.orphaned
    blobs = [o for o in plan["objects"] if o["kind"] in ("blob", "manifest")]
    # Blobs written through the registry's writer are DLOs: data object plus segments,
    # sized from the segments listing.
    assert any(len(o["paths"]) > 1 for o in blobs)
    assert all(o["size"] for o in blobs)
    assert {o["name"] for o in plan["objects"] if o["kind"] == "segments"} == {
        orphan.rsplit("/", 1)[0]
    }
    (upload,) = [o for o in plan["objects"] if o["name"] == s.upload_id]
    assert upload["kind"] == "upload" and upload["size"] > 100  # data + hash states
    assert any("/segments/" in f"/{p}" for p in upload["paths"])

    done = _gc(cli, location, *args, env=env)
    assert not done["failed"] and len(done["objects"]) == len(plan["objects"])
    left = {e.path for e in driver.walk("")}
    gone = {p for o in done["objects"] for p in o["paths"]}
    assert gone and not gone & left
    for ref in s.tagged:
        repo, tag = ref.split(":")
        pull(dist.host, repo, tag, tmp_path / "pulled" / repo)
    assert eligible(dist.registry.garbage_collect(dry_run=True)) == set()


def test_sftp_plans_the_same_and_deletes_it(
    cli: Any, image_tools: None, distribution_fs: Any, sshd_service: Any, tmp_path: Path
) -> None:
    s = build(distribution_fs.host, tmp_path / "oci")
    sftp = (
        f"sftp://{sshd_service.username}@{sshd_service.host}:{sshd_service.port}"
        f"{distribution_fs.root}"
    )
    env = {
        "REGTOOL_SFTP_IDENTITY": str(sshd_service.key_path),
        "REGTOOL_SFTP_KNOWN_HOSTS": str(sshd_service.known_hosts),
    }
    local = _gc(cli, str(distribution_fs.root), "--dry-run", "--delete-untagged")
    remote = _gc(cli, sftp, "--dry-run", "--delete-untagged", env=env)
    config = cli.json(
        "gc",
        "--config",
        str(distribution_fs.registry.config_path),
        "--min-age",
        "0",
        "--dry-run",
        "--delete-untagged",
    )
    assert _named(local, "blob", "manifest") == s.orphaned | s.untagged
    assert remote["objects"] == local["objects"] == config["objects"]

    # A real run over SFTP; distribution, serving the same directory, still pulls every tag.
    done = _gc(cli, sftp, "--delete-untagged", "--uploads-older-than", "0", env=env)
    assert not done["failed"] and all(o["deleted"] for o in done["objects"])
    assert _named(done, "blob", "manifest") == s.orphaned | s.untagged
    assert _named(done, "upload") == {s.upload_id, s.first_upload}
    for path in (p for o in done["objects"] for p in o["paths"]):
        assert not (distribution_fs.root / path).exists(), path
    for ref in s.tagged:
        repo, tag = ref.split(":")
        pull(distribution_fs.host, repo, tag, tmp_path / "pulled" / repo)
    assert eligible(distribution_fs.registry.garbage_collect(dry_run=True)) == set()

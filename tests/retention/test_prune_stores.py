"""`regtool prune` on stores skopeo pushed through distribution (directory, SFTP, Swift)
and through `regtool serve`: the plan, the deletion, and what the registry serves after."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from regtool.storage.local import LocalDriver
from tests.gc.scenario import eligible
from tests.retention.scenario import POLICY, Pushed, build, manifest_status
from tests.services.distribution import filesystem_storage
from tests.services.images import build_image, build_index, pull, push


@dataclass
class Target:
    """A store to prune: where regtool finds it, and a distribution serving it."""

    location: str
    env: dict[str, str]
    registry: Any  # DistributionRegistry
    push_host: str  # where the images were pushed (distribution or regtool serve)


def _distribution_fs(request: pytest.FixtureRequest) -> Target:
    dist = request.getfixturevalue("distribution_fs")
    return Target(str(dist.root), {}, dist.registry, dist.host)


def _distribution_sftp(request: pytest.FixtureRequest) -> Target:
    dist = request.getfixturevalue("distribution_fs")
    sshd = request.getfixturevalue("sshd_service")
    location = f"sftp://{sshd.username}@{sshd.host}:{sshd.port}{dist.root}"
    env = {
        "REGTOOL_SFTP_IDENTITY": str(sshd.key_path),
        "REGTOOL_SFTP_KNOWN_HOSTS": str(sshd.known_hosts),
    }
    return Target(location, env, dist.registry, dist.host)


def _distribution_swift(request: pytest.FixtureRequest) -> Target:
    dist = request.getfixturevalue("distribution_swift")
    service = dist.service
    env = {"ST_AUTH": service.auth_url, "ST_USER": service.user, "ST_KEY": service.key}
    return Target(f"swift://{dist.container}", env, dist.registry, dist.host)


def _regtool_serve(request: pytest.FixtureRequest) -> Target:
    root: Path = request.getfixturevalue("tmp_path") / "served"
    root.mkdir()
    serve = request.getfixturevalue("serve_registry")(LocalDriver(root), root)
    make = request.getfixturevalue("make_distribution")
    return Target(str(root), {}, make(filesystem_storage(root)), serve.host)


TARGETS: dict[str, Callable[[pytest.FixtureRequest], Target]] = {
    "distribution-dir": _distribution_fs,
    "distribution-sftp": _distribution_sftp,
    "distribution-swift": _distribution_swift,
    "regtool-serve-dir": _regtool_serve,
}


@pytest.fixture(params=sorted(TARGETS))
def target(request: pytest.FixtureRequest, image_tools: None) -> Target:
    return TARGETS[request.param](request)


def _decisions(doc: Any) -> tuple[set[str], set[str], dict[str, str]]:
    """(deleted tags, deleted manifests, kept tag -> reason) of a prune document."""
    deleted_tags, deleted_manifests, kept = set(), set(), {}
    for repo in doc["repositories"]:
        for t in repo["tags"]:
            ref = f"{repo['name']}:{t['tag']}"
            if t["keep"]:
                kept[ref] = t["reason"]
            else:
                deleted_tags.add(ref)
        deleted_manifests |= {m["digest"] for m in repo["manifests"] if not m["keep"]}
    return deleted_tags, deleted_manifests, kept


def _without_outcomes(doc: Any) -> Any:
    return [
        {
            "name": r["name"],
            "tags": [{k: v for k, v in t.items() if k != "outcome"} for t in r["tags"]],
            "manifests": [{k: v for k, v in m.items() if k != "outcome"} for m in r["manifests"]],
        }
        for r in doc["repositories"]
    ]


def test_prune_keeps_what_the_policy_keeps_and_gc_frees_only_the_rest(
    cli: Any, target: Target, tmp_path: Path
) -> None:
    p: Pushed = build(target.push_host, tmp_path / "oci")
    run = (*POLICY, "-l", target.location)

    plan = cli.json("prune", *run, "--dry-run", env=target.env)
    deleted_tags, deleted_manifests, kept = _decisions(plan)
    assert deleted_tags == p.pruned_tags
    assert deleted_manifests == p.pruned_manifests
    assert kept["app:stable"] == "matches --keep-tags stable"
    assert kept["app:b5"].startswith("among the last 2 pushed")
    spared = {m["digest"]: m["reason"] for r in plan["repositories"] for m in r["manifests"]}
    assert spared[p.tags["app:b2"]] == "tag stable is kept"  # a tag shared by two names
    assert spared[p.tags["multi:amd64"]] == "tag amd64 is kept"  # a tagged child of an index

    done = cli.json("prune", *run, env=target.env)
    assert _without_outcomes(done) == _without_outcomes(plan)  # the plan is what is done
    assert done["totals"]["failed"] == 0
    assert {t["outcome"] for r in done["repositories"] for t in r["tags"] if not t["keep"]} == {
        "deleted"
    }

    host = target.registry.host
    for ref in sorted(p.kept_tags):
        repo, tag = ref.split(":")
        assert pull(host, repo, tag, tmp_path / "pulled" / ref.replace(":", "-")) == p.tags[ref]
    for ref in p.pruned_tags:
        repo, tag = ref.split(":")
        assert manifest_status(host, repo, tag) == 404, ref
    for digest in p.pruned_manifests:
        assert {manifest_status(host, repo, digest) for repo in ("app", "multi", "signed")} == {404}
    signed = p.referrers["signed:2"].digest
    assert manifest_status(host, "signed", signed) == 200  # the kept image's referrer

    verify = cli("verify", "--all", "-l", target.location, env=target.env)
    assert verify.exit_code == 0, verify.stdout + verify.stderr

    assert eligible(target.registry.garbage_collect(dry_run=True)) == p.freed
    gc = cli.json("gc", "-l", target.location, "--min-age", "0", "--dry-run", env=target.env)
    assert {o["name"] for o in gc["objects"] if o["kind"] in ("blob", "manifest")} == p.freed
    assert plan["totals"]["bytes_freed_estimate"] == gc["totals"]["bytes_freed"]

    again = cli.json("prune", *run, env=target.env)
    assert _decisions(again)[:2] == (set(), set())  # nothing left to prune


def test_prune_then_gc_in_one_run(
    cli: Any, image_tools: None, distribution_fs: Any, tmp_path: Path
) -> None:
    p = build(distribution_fs.host, tmp_path / "oci")
    root = str(distribution_fs.root)
    doc = cli.json("prune", *POLICY, "-l", root, "--gc", "--min-age", "0", "--settle", "0")
    gc = doc["gc"]
    assert {o["name"] for o in gc["objects"] if o["kind"] in ("blob", "manifest")} == p.freed
    assert all(o["deleted"] for o in gc["objects"])
    for ref in sorted(p.kept_tags):
        repo, tag = ref.split(":")
        pull(distribution_fs.host, repo, tag, tmp_path / "pulled" / ref.replace(":", "-"))
    assert eligible(distribution_fs.registry.garbage_collect(dry_run=True)) == set()


def test_delete_untagged_keeps_the_children_of_kept_indexes(
    cli: Any, image_tools: None, distribution_fs: Any, tmp_path: Path
) -> None:
    oci = tmp_path / "oci"
    host = distribution_fs.host
    first, second = build_image(oci, "first", size=600), build_image(oci, "second", size=600)
    push(first, host, "app", "v1")
    push(second, host, "app", "v1")  # `first` is now untagged
    index = build_index(oci, "multi", size=500)
    push(index, host, "multi", "latest")  # its children are untagged revisions
    root = str(distribution_fs.root)

    doc = cli.json("prune", "-l", root, "--delete-untagged")
    assert all(t["keep"] for r in doc["repositories"] for t in r["tags"])
    gone = {m["digest"]: m["reason"] for r in doc["repositories"] for m in r["manifests"]}
    assert gone == {first.digest: "untagged"} | {
        child.digest: f"in kept index {index.digest[:19]}" for child in index.images
    }
    assert {m["digest"] for r in doc["repositories"] for m in r["manifests"] if not m["keep"]} == {
        first.digest
    }
    assert eligible(distribution_fs.registry.garbage_collect(dry_run=True)) == first.digests
    pull(host, "multi", "latest", tmp_path / "pulled")

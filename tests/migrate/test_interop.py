"""What `regtool migrate` writes, served by distribution and by `regtool serve`, pulled
by skopeo and unpacked by umoci: the same file tree as the V1 layers applied in order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from regtool.storage.local import LocalDriver
from tests.migrate.source import Source, tree, unpack, write_v1
from tests.server.conftest import RunningRegistry
from tests.services import images as img
from tests.services.distribution import DistributionRegistry, filesystem_storage

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("image_tools")]

NAMES = {"app": "exampleapp:1.0", "tools": "team/tools:2"}


def _pull_as_oci(host: str, repo: str, tag: str, dest: Path) -> None:
    img._skopeo(
        "copy",
        "--quiet",
        "--retry-times",
        "0",
        "--src-tls-verify=false",
        "--src-no-creds",
        "--format",
        "oci",
        img.docker_ref(host, repo, tag),
        f"oci:{dest}:{tag}",
    )


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_distribution_and_serve_give_the_v1_file_trees(
    tmp_path: Path,
    source: Source,
    cli: Any,
    fmt: str,
    serve_registry: Callable[..., RunningRegistry],
    make_distribution: Callable[..., DistributionRegistry],
) -> None:
    v1 = tmp_path / "v1"
    write_v1(LocalDriver(v1), source, names=NAMES)
    v2 = tmp_path / "v2"
    doc = cli.json("migrate", str(v1), "--to", str(v2), "--format", fmt)
    digests = {(r["repository"], r["tag"]): r["digest"] for r in doc["results"]}
    assert all(r["status"] == "migrated" for r in doc["results"])

    expected = {
        tag: tree(unpack(source.layout, tag, tmp_path / f"expected-{tag}")) for tag in NAMES
    }
    # the layers hold what the test built: a whiteout applied, the link kept
    assert "data/gone.txt" not in expected["app"] and "old" not in expected["app"]
    assert expected["app"]["app.conf"] == ("symlink", "etc/app.conf")
    assert expected["app"]["bin/tool"][3] == ("bin/tool", "bin/tool-again")
    assert "etc/app.conf" not in expected["tools"]

    theirs = make_distribution(filesystem_storage(v2))
    ours = serve_registry(LocalDriver(v2), v2)
    for server, host in (("distribution", theirs.host), ("serve", ours.host)):
        for v1_tag, ref in NAMES.items():
            name, _, tag = ref.partition(":")
            repo = name  # as clients pulled it from the V1 registry
            pulled = tmp_path / f"pulled-{server}-{v1_tag}"
            digest = img.pull(host, repo, tag, pulled, preserve_digests=True)
            assert digest == digests[(repo, tag)], (server, ref)
            as_oci = tmp_path / f"oci-{server}-{v1_tag}"
            _pull_as_oci(host, repo, tag, as_oci)  # umoci unpacks OCI manifests only
            rootfs = unpack(as_oci, tag, tmp_path / f"unpacked-{server}-{v1_tag}")
            assert tree(rootfs) == expected[v1_tag], (server, ref)
    # distribution's own garbage collector finds every blob in use
    out = theirs.garbage_collect(dry_run=True)
    assert "0 blobs and 0 manifests eligible for deletion" in out, out

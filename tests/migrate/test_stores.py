"""`regtool migrate` from and to Swift and SFTP: in place in the seed deployment's Swift
container (V1 under `docker-registry/`), and between an SFTP server and a directory."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from regtool.storage.base import Driver
from tests.migrate.source import Source, write_v1
from tests.services import images as img
from tests.services.distribution import (
    DistributionRegistry,
    filesystem_storage,
    swift_storage,
)
from tests.v1store import V1Store

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("image_tools")]

NAMES = {"app": "exampleapp:1.0", "tools": "team/tools:2"}
BIG = 21 << 20  # past Swift's 20 MiB segments: the blob becomes a large object


def _write(driver: Driver, source: Source, root: str) -> None:
    write_v1(driver, source, root, NAMES)
    big = V1Store(driver, root)
    big.tag("big", "1", big.add_image(size=BIG))


def _pulled(host: str, digests: dict[tuple[str, str], str], tmp_path: Path) -> None:
    for n, ((repo, tag), digest) in enumerate(sorted(digests.items())):
        got = img.pull(host, repo, tag, tmp_path / f"pull-{n}", preserve_digests=True)
        assert got == digest, (repo, tag)


def test_swift_in_place(
    swift_service: Any,
    source: Source,
    cli: Any,
    tmp_path: Path,
    make_distribution: Callable[..., DistributionRegistry],
) -> None:
    container = f"docker_registry_{uuid.uuid4().hex[:8]}"
    driver = swift_service.driver(container)
    _write(driver, source, "docker-registry")
    env = {
        "ST_AUTH": swift_service.auth_url,
        "ST_USER": swift_service.user,
        "ST_KEY": swift_service.key,
    }
    src, dst = f"swift://{container}/docker-registry", f"swift://{container}"
    result = cli("migrate", src, "--to", dst, "--json", env=env)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    digests = {(r["repository"], r["tag"]): r["digest"] for r in doc["results"]}
    assert len(digests) == 3 and all(r["status"] == "migrated" for r in doc["results"])
    names = {e.path for e in driver.walk("")}
    assert any(n.startswith("files/docker/registry/v2/blobs/") for n in names)
    assert any(n.startswith("segments/") for n in names)  # distribution's DLO segments
    assert any(n.startswith("docker-registry/images/") for n in names)  # V1 left alone

    registry = make_distribution(swift_storage(swift_service, container, create=False))
    _pulled(registry.host, digests, tmp_path)
    again = json.loads(cli("migrate", src, "--to", dst, "--json", env=env).stdout)
    assert {r["status"] for r in again["results"]} == {"skipped"}
    verify = cli("verify", "--all", "-l", dst, env=env)
    assert verify.exit_code == 0, verify.stdout


def test_sftp_to_a_directory_and_back(
    sshd_service: Any,
    source: Source,
    cli: Any,
    tmp_path: Path,
    make_distribution: Callable[..., DistributionRegistry],
) -> None:
    sshd = sshd_service
    sub = f"v1-{uuid.uuid4().hex[:8]}"
    driver = sshd.driver(sub)
    write_v1(driver, source, "docker-registry", NAMES)
    driver.close()
    env = {
        "REGTOOL_SFTP_IDENTITY": str(sshd.key_path),
        "REGTOOL_SFTP_KNOWN_HOSTS": str(sshd.known_hosts),
    }
    base = f"sftp://{sshd.username}@{sshd.host}:{sshd.port}{sshd.data_root}"
    local = tmp_path / "v2"
    from_sftp = json.loads(
        cli(
            "migrate", f"{base}/{sub}/docker-registry", "--to", str(local), "--json", env=env
        ).stdout
    )
    assert {r["status"] for r in from_sftp["results"]} == {"migrated"}
    # and onto an SFTP server: the same bytes, so the same digests
    v2_sub = f"v2-{uuid.uuid4().hex[:8]}"
    (sshd.data_root / v2_sub).mkdir()
    to_sftp = json.loads(
        cli(
            "migrate",
            f"{base}/{sub}/docker-registry",
            "--to",
            f"{base}/{v2_sub}",
            "--json",
            env=env,
        ).stdout
    )
    digests = {(r["repository"], r["tag"]): r["digest"] for r in from_sftp["results"]}
    assert {(r["repository"], r["tag"]): r["digest"] for r in to_sftp["results"]} == digests
    registry = make_distribution(filesystem_storage(sshd.data_root / v2_sub))
    _pulled(registry.host, digests, tmp_path)

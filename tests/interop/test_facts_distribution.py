"""The manifest-facts cache on stores distribution wrote (pushes with skopeo), over a local
directory, SFTP and Swift: `ls` and `gc --dry-run` give the same with a cold cache, a warm
one and none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from regtool.facts.store import FactsFile, default_path
from tests.interop.test_ls_distribution import check_listing, push_sample

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("image_tools")]


def same_with_and_without_cache(cli: Any, where: list[str], env: dict[str, str]) -> Any:
    """ls and gc --dry-run: without the cache, cold, warm; the three must agree."""
    default_path().unlink(missing_ok=True)
    docs = [cli.json("ls", *where, *extra, env=env) for extra in (["--no-cache"], [], [])]
    assert docs[0] == docs[1] == docs[2]
    kept = FactsFile(default_path())
    assert kept.count() >= 6  # every manifest of the sample, index children included
    kept.close()
    plans = []
    for extra in (["--no-cache"], [], []):
        result = cli("gc", "--dry-run", "--min-age", "0s", "--json", *extra, *_gc(where), env=env)
        assert result.exit_code == 0, result.stderr
        doc = json.loads(result.stdout)
        for timing in ("seconds", "requests"):
            doc["totals"].pop(timing, None)
        plans.append(doc)
    assert plans[0] == plans[1] == plans[2]
    return docs[0]


def _gc(where: list[str]) -> list[str]:
    return ["-l", where[0]]


def test_local_and_sftp(cli: Any, distribution_fs: Any, sshd_service: Any, tmp_path: Path) -> None:
    pushed = push_sample(distribution_fs.host, tmp_path)
    check_listing(same_with_and_without_cache(cli, [str(distribution_fs.root)], {}), pushed)
    sftp = (
        f"sftp://{sshd_service.username}@{sshd_service.host}:{sshd_service.port}"
        f"{distribution_fs.root}"
    )
    env = {
        "REGTOOL_SFTP_IDENTITY": str(sshd_service.key_path),
        "REGTOOL_SFTP_KNOWN_HOSTS": str(sshd_service.known_hosts),
    }
    check_listing(same_with_and_without_cache(cli, [sftp], env), pushed)


def test_swift(cli: Any, distribution_swift: Any, tmp_path: Path) -> None:
    pushed = push_sample(distribution_swift.host, tmp_path)
    service = distribution_swift.service
    env = {"ST_AUTH": service.auth_url, "ST_USER": service.user, "ST_KEY": service.key}
    where = [f"swift://{distribution_swift.container}"]
    check_listing(same_with_and_without_cache(cli, where, env), pushed)

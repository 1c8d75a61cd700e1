"""The OCI distribution-spec conformance suite (v1.1.1, `../shared/conformance/`) against
`regtool serve`, on a local directory and on Swift: all four workflows (pull, push,
content discovery, content management) must pass, every test of them.

The suite is a static binary that writes `junit.xml`; a missing binary fails in CI.
Cost: two runs of about a second each against a server already running.
"""

from __future__ import annotations

import os
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry
from tests.services import unavailable

SUITE = Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance" / "oci-conformance"

#: Tests the suite skips by design: the setups that read tags from the environment, and
#: a cross-mount check that only runs when a mount answers 202 (regtool mounts: 201).
EXPECTED_SKIPS = 4


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> Driver:
    return LocalDriver(tmp_path / "store")


def _swift(request: pytest.FixtureRequest, tmp_path: Path) -> Driver:
    service = request.getfixturevalue("swift_service")
    # small segments: the suite's chunked uploads become large objects
    return service.driver(f"conformance-{uuid.uuid4().hex[:8]}", segment_size=4096)


def run_suite(url: str, report: Path) -> dict[str, list[str]]:
    """Run the suite against `url`; test names by outcome (passed, failed, skipped)."""
    if not os.access(SUITE, os.X_OK):
        unavailable(f"the OCI conformance suite is not at {SUITE}")
    report.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OCI_")},
        "OCI_ROOT_URL": url,
        "OCI_NAMESPACE": "conformance/main",
        "OCI_CROSSMOUNT_NAMESPACE": "conformance/other",
        "OCI_TEST_PULL": "1",
        "OCI_TEST_PUSH": "1",
        "OCI_TEST_CONTENT_DISCOVERY": "1",
        "OCI_TEST_CONTENT_MANAGEMENT": "1",
        "OCI_AUTOMATIC_CROSSMOUNT": "0",  # a mount without `from` starts an upload
        "OCI_HIDE_SKIPPED_WORKFLOWS": "0",
        "OCI_DEBUG": "0",
        "OCI_REPORT_DIR": str(report),
    }
    done = subprocess.run(
        [str(SUITE), "-test.timeout", "5m", "-ginkgo.no-color"],
        cwd=report,
        env=env,
        capture_output=True,
        text=True,
        timeout=360,
        check=False,
    )
    junit = report / "junit.xml"
    assert junit.is_file(), f"the suite wrote no junit.xml:\n{done.stdout[-3000:]}"
    outcomes: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": []}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "").removeprefix("OCI Distribution Conformance Tests ")
        if name.startswith("[Report"):
            continue
        status = case.get("status", "")
        failed = status in ("failed", "panicked", "interrupted", "aborted", "timedout")
        if failed or case.find("failure") is not None or case.find("error") is not None:
            outcomes["failed"].append(name)
        elif case.find("skipped") is not None or status in ("skipped", "pending"):
            outcomes["skipped"].append(name)
        else:
            outcomes["passed"].append(name)
    return outcomes


@pytest.mark.parametrize("make", [_local, _swift], ids=["local", "swift"])
def test_oci_conformance(
    make: Callable[[pytest.FixtureRequest, Path], Driver],
    request: pytest.FixtureRequest,
    tmp_path: Path,
    serve_registry: Callable[..., RunningRegistry],
) -> None:
    registry = serve_registry(make(request, tmp_path))
    outcomes: dict[str, Any] = run_suite(registry.url, tmp_path / "report")
    failed = outcomes["failed"]
    assert not failed, f"{len(failed)} conformance tests failed:\n" + "\n".join(failed)
    assert len(outcomes["skipped"]) <= EXPECTED_SKIPS, outcomes["skipped"]
    assert len(outcomes["passed"]) >= 75
    registry.driver.close()

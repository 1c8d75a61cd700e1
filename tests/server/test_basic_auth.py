"""htpasswd logins on a running `regtool serve`: challenges, refusals logged and slowed,
bcrypt paid once per password, the file re-read while serving."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import bcrypt
import httpx
import pytest
from pytest_mock import MockerFixture

from regtool.server.auth import throttle as t
from regtool.server.auth.guard import Guard
from regtool.server.auth.htpasswd import hash_password, write_entry
from regtool.server.auth.throttle import LoginThrottle
from regtool.server.settings import ServerSettings
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry

CHALLENGE = 'Basic realm="regtool"'


def users(path: Path, **passwords: str) -> Path:
    for user, password in passwords.items():
        write_entry(path, user, hash_password(password, cost=4))
    return path


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    return users(tmp_path / "htpasswd", alice="secret")


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def registry(
    serve_registry: Callable[..., RunningRegistry],
    tmp_path: Path,
    htpasswd: Path,
    slept: list[float],
) -> RunningRegistry:
    passed = [0.0]  # the throttle's clock runs on by what it slept, without the wait

    def clock() -> float:
        return time.monotonic() + passed[0]

    async def sleep(seconds: float) -> None:  # recorded, not waited: no timing in tests
        slept.append(seconds)
        passed[0] += seconds

    root = tmp_path / "store"
    root.mkdir()
    throttle = LoginThrottle(clock=clock, sleep=sleep)
    guard = Guard(ServerSettings(htpasswd=htpasswd), throttle)
    return serve_registry(LocalDriver(root), root, guard=guard)


def _push_blob(url: str, auth: tuple[str, str], data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = httpx.post(
        f"{url}/v2/app/blobs/uploads/", params={"digest": digest}, content=data, auth=auth
    )
    assert r.status_code == 201, r.text
    return digest


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/"),
        ("HEAD", "/v2/"),
        ("GET", "/v2/_catalog"),
        ("GET", "/v2/app/tags/list"),
        ("GET", "/v2/app/manifests/v1"),
        ("POST", "/v2/app/blobs/uploads/"),
        ("HEAD", "/v2/app/blobs/sha256:" + "0" * 64),
    ],
)
def test_anonymous_requests_get_the_challenge(
    registry: RunningRegistry, method: str, path: str
) -> None:
    r = httpx.request(method, f"{registry.url}{path}")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == CHALLENGE
    if method != "HEAD":
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_a_wrong_password_is_refused_logged_and_slowed(
    registry: RunningRegistry, slept: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="regtool.server.auth.guard"):
        for _ in range(t.FREE_FAILURES + 2):
            r = httpx.get(f"{registry.url}/v2/", auth=("alice", "hunter2"))
            assert r.status_code == 401
            assert r.headers["WWW-Authenticate"] == CHALLENGE
        r = httpx.get(f"{registry.url}/v2/", auth=("mallory", "x"))
        assert r.status_code == 401
        r = httpx.get(f"{registry.url}/v2/", headers={"Authorization": "Basic !!!"})
        assert r.status_code == 401
    lines = [r.getMessage() for r in caplog.records]
    assert lines.count("failed login for user 'alice' from 127.0.0.1") == t.FREE_FAILURES + 2
    assert "failed login for user 'mallory' from 127.0.0.1" in lines
    assert "failed login from 127.0.0.1: malformed Basic credentials" in lines
    assert "hunter2" not in caplog.text
    assert slept == [t.BASE_DELAY, 2 * t.BASE_DELAY, 4 * t.BASE_DELAY, 8 * t.BASE_DELAY]
    # The right password still gets in (after its wait) and clears the address.
    assert httpx.get(f"{registry.url}/v2/", auth=("alice", "secret")).status_code == 200
    assert httpx.get(f"{registry.url}/v2/", auth=("alice", "secret")).status_code == 200
    assert len(slept) == 5


def test_bcrypt_is_paid_once_per_password_not_per_request(
    registry: RunningRegistry, mocker: MockerFixture
) -> None:
    auth = ("alice", "secret")
    digests = [_push_blob(registry.url, auth, bytes([i]) * 100) for i in range(5)]
    checks = mocker.spy(bcrypt, "checkpw")
    with httpx.Client(auth=auth) as client:
        for digest in digests * 4:
            assert client.get(f"{registry.url}/v2/app/blobs/{digest}").status_code == 200
    assert checks.call_count == 0  # verified by the pushes before
    with httpx.Client(auth=("alice", "wrong")) as client:
        for _ in range(2):
            assert client.get(f"{registry.url}/v2/app/blobs/{digests[0]}").status_code == 401
    assert checks.call_count == 2  # a wrong password is never remembered


def test_a_user_added_while_serving_logs_in_without_a_restart(
    registry: RunningRegistry, htpasswd: Path
) -> None:
    assert httpx.get(f"{registry.url}/v2/", auth=("bob", "pw")).status_code == 401
    users(htpasswd, bob="pw")
    assert httpx.get(f"{registry.url}/v2/", auth=("bob", "pw")).status_code == 200
    write_entry(htpasswd, "alice", None)
    assert httpx.get(f"{registry.url}/v2/", auth=("alice", "secret")).status_code == 401

"""The Basic backend pays bcrypt once for requests that bring the same credentials at
the same time."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import bcrypt
from pytest_mock import MockerFixture

from regtool.server.auth.guard import BasicAuth
from regtool.server.auth.htpasswd import Htpasswd, hash_password, write_entry
from regtool.server.auth.throttle import LoginThrottle


def test_simultaneous_checks_of_one_password_share_one_bcrypt(
    tmp_path: Path, mocker: MockerFixture
) -> None:
    path = tmp_path / "htpasswd"
    write_entry(path, "alice", hash_password("secret", cost=4))
    backend = BasicAuth(Htpasswd(path), LoginThrottle())
    release = threading.Event()
    real = bcrypt.checkpw

    def held(password: bytes, hashed: bytes) -> Any:
        release.wait(10)  # until every request is waiting for an answer
        return real(password, hashed)

    checks = mocker.patch("bcrypt.checkpw", side_effect=held)

    async def main() -> list[bool]:
        tasks = [asyncio.ensure_future(backend._verify("alice", "secret")) for _ in range(5)]
        wrong = asyncio.ensure_future(backend._verify("alice", "wrong"))
        await asyncio.sleep(0)  # each task runs to its first wait
        release.set()
        return [*(await asyncio.gather(*tasks)), await wrong]

    assert asyncio.run(main()) == [True] * 5 + [False]
    assert checks.call_count == 2  # one per distinct password
    assert backend._pending == {}

"""What only the Swift driver does: distribution's DLO layout, paginated listings, bulk
delete, login and error translation, request counting, the cluster's limits from /info,
throttling. The shared behaviour is in test_conformance.py.

Faults a real Swift cannot produce on demand (throttling, a body cut short, another
cluster's /info) come from `SwiftFaultProxy`, in front of the real Swift; a cluster with lower
limits is a second real proxy (`SwiftService.constrained_proxy`)."""

from __future__ import annotations

import http.server
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from swiftclient.client import Connection  # type: ignore[import-untyped]

from regtool.errors import (
    AuthenticationFailed,
    PathNotFound,
    StorageError,
    TransientError,
    Unreachable,
)
from regtool.location import parse_location
from regtool.storage.base import Entry
from regtool.storage.retry import RetryingDriver
from regtool.storage.swift import SwiftCredentials, SwiftDriver, dlo
from regtool.storage.swift.container import Container
from regtool.storage.swift.errors import retry_after
from tests.clirunner import Cli
from tests.services import free_port
from tests.services.swift import KEY, USER, SwiftProxy, SwiftService
from tests.services.swift_faults import Response, SwiftFaultProxy

pytestmark = pytest.mark.swift

SEGMENT = 1024
HEX = "[0-9a-f]"


@pytest.fixture
def container(swift_service: SwiftService) -> str:
    name = f"swift-{uuid.uuid4().hex[:8]}"
    swift_service.create_container(name)
    return name


@pytest.fixture
def driver(swift_service: SwiftService, container: str) -> Iterator[SwiftDriver]:
    d = swift_service.driver(container, "reg", segment_size=SEGMENT)
    yield d
    d.close()


@pytest.fixture
def faults(swift_service: SwiftService) -> Iterator[SwiftFaultProxy]:
    """A fault-injecting proxy in front of the session's Swift."""
    with SwiftFaultProxy(swift_service.auth_url) as proxy:
        yield proxy


@pytest.fixture
def faulty(faults: SwiftFaultProxy, container: str) -> Iterator[SwiftDriver]:
    """A driver that talks to Swift through `faults`."""
    d = SwiftDriver(faults.credentials(), container, "reg", segment_size=SEGMENT)
    yield d
    d.close()


@pytest.fixture
def raw(swift_service: SwiftService) -> Iterator[Connection]:
    """A plain swiftclient connection, to see what is really stored."""
    conn = Connection(swift_service.auth_url, swift_service.user, swift_service.key)
    yield conn
    conn.close()


def _stored(raw: Connection, container: str) -> dict[str, int]:
    _, listing = raw.get_container(container, full_listing=True)
    return {item["name"]: item["bytes"] for item in listing}


def _segment_set(raw: Connection, container: str, name: str) -> str:
    manifest = raw.head_object(container, name)["x-object-manifest"]
    match = re.fullmatch(rf"{container}/(reg/segments/{HEX}{{3}}/{HEX}{{37}})", manifest)
    assert match, manifest
    return match[1]


def test_writer_stores_a_dlo_exactly_as_distribution_does(
    driver: SwiftDriver, raw: Connection, container: str
) -> None:
    data = os.urandom(2 * SEGMENT + SEGMENT // 2)
    w = driver.writer("files/blob/data")
    w.write(data[:1000])
    w.write(data[1000:])
    # Full segments are uploaded as they fill; the manifest waits for commit.
    assert sorted(_stored(raw, container).values()) == [SEGMENT, SEGMENT]
    w.commit()

    segments = _segment_set(raw, container, "reg/files/blob/data")
    assert _stored(raw, container) == {
        "reg/files/blob/data": 0,
        f"{segments}/0000000000000001": SEGMENT,
        f"{segments}/0000000000000002": SEGMENT,
        f"{segments}/0000000000000003": SEGMENT // 2,
    }
    headers = raw.head_object(container, "reg/files/blob/data")
    assert int(headers["content-length"]) == len(data)
    assert headers["content-type"] == "application/octet-stream"
    assert driver.get("files/blob/data") == data
    assert driver.stat("files/blob/data").size == len(data)

    driver.delete("files")  # takes the segments along
    assert _stored(raw, container) == {}


def test_append_turns_a_plain_object_into_a_dlo_and_cancel_keeps_it(
    driver: SwiftDriver, raw: Connection, container: str
) -> None:
    driver.put("f", b"old|")
    w = driver.writer("f", append=True)
    w.write(b"new|")
    assert driver.get("f") == b"old|"
    w.commit()
    segments = _segment_set(raw, container, "reg/f")
    assert raw.get_object(container, f"{segments}/0000000000000001")[1] == b"old|"
    assert raw.get_object(container, f"{segments}/0000000000000002")[1] == b"new|"

    # Appends to a DLO name their segments by offset and a token of their own.
    w = driver.writer("f", append=True)
    assert w.size == 8
    w.write(b"x" * (SEGMENT + 10))  # a full segment is uploaded before the cancel
    (appended,) = set(_stored(raw, container)) - {"reg/f", *_numbered(segments, 2)}
    assert re.fullmatch(rf"{re.escape(segments)}/0000000000000008\.[0-9a-f]{{8}}", appended)
    w.cancel()
    assert set(_stored(raw, container)) == {"reg/f", *_numbered(segments, 2)}
    assert driver.get("f") == b"old|new|"

    w = driver.writer("f", append=True)
    w.write(b"end")
    w.commit()
    (appended,) = set(_stored(raw, container)) - {"reg/f", *_numbered(segments, 2)}
    assert appended.startswith(f"{segments}/0000000000000008.")
    assert driver.get("f") == b"old|new|end"
    driver.delete("f")
    assert _stored(raw, container) == {}


def _numbered(segments: str, count: int) -> list[str]:
    return [f"{segments}/{i:016d}" for i in range(1, count + 1)]


def test_appends_racing_on_one_dlo_never_overwrite_each_other(
    driver: SwiftDriver, raw: Connection, container: str
) -> None:
    with driver.writer("up/data") as w:
        w.write(b"start|")
        w.commit()
    # Two writers that both found 6 bytes (two requests past one upload's lease at once):
    # segments of the same size at the same offset, each under a name of its own.
    first, second = driver.writer("up/data", append=True), driver.writer("up/data", append=True)
    first.write(b"AAAA")
    second.write(b"BBBB")
    first.commit()
    second.commit()
    assert driver.stat("up/data").size == 6 + 4 + 4  # the sum tells a race took place
    assert sorted(driver.get("up/data")[6:]) == sorted(b"AAAABBBB")
    driver.delete("up")


def test_replacing_a_dlo_deletes_its_old_segments(
    driver: SwiftDriver, raw: Connection, container: str
) -> None:
    for content in (b"a" * 3000, b"b" * 1500):  # a writer over a DLO
        with driver.writer("x/blob") as w:
            w.write(content)
            w.commit()
    segments = _segment_set(raw, container, "reg/x/blob")
    assert {n for n in _stored(raw, container) if "/segments/" in n} == {
        f"{segments}/0000000000000001",
        f"{segments}/0000000000000002",
    }

    driver.put("x/plain", b"plain")  # a move over a DLO
    driver.move("x/plain", "x/blob")
    assert _stored(raw, container) == {"reg/x/blob": 5}

    with driver.writer("x/upload") as w:  # a DLO moves by its manifest alone
        w.write(b"c" * 2000)
        w.commit()
    driver.move("x/upload", "x/blob")
    assert driver.get("x/blob") == b"c" * 2000
    assert sum(1 for n in _stored(raw, container) if "/segments/" in n) == 2
    driver.delete("x")
    assert _stored(raw, container) == {}


def test_listings_over_10000_names_paginate(swift_service: SwiftService, container: str) -> None:
    names = [f"many/{i:05d}" for i in range(10_050)]
    swift_service.add_listing_entries(container, [*names, "manyx/sibling", "aaa"])
    d = SwiftDriver(swift_service.credentials(), container)

    walked = [e.path for e in d.walk("many")]
    assert sorted(walked) == names
    assert d.requests == 4  # login, /info, two pages of 10,000
    listed = d.list("many")
    assert len(listed) == len(names) and not any(e.is_dir for e in listed)
    assert {e.size for e in listed} == {1}
    assert d.requests == 6
    assert {e.path for e in d.list("")} == {"many", "manyx", "aaa"}


def _bulk_posts(faults: SwiftFaultProxy) -> int:
    return sum(1 for r in faults.seen if r.startswith("POST ") and "bulk-delete" in r)


def test_delete_many_uses_bulk_delete(driver: SwiftDriver, raw: Connection, container: str) -> None:
    paths = [f"bulk/{i}" for i in range(30)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: driver.put(p, b"x"), paths))
    before = driver.requests
    report = driver.delete_many([*paths, "bulk/missing"])
    assert not report.failed and len(report.deleted) == 31
    assert driver.requests - before == 2  # GET /info once, then one POST ?bulk-delete
    assert _stored(raw, container) == {}


def test_bulk_delete_keeps_to_the_clusters_limit(
    faults: SwiftFaultProxy, faulty: SwiftDriver, raw: Connection, container: str
) -> None:
    faults.edit_info(lambda info: {**info, "bulk_delete": {"max_deletes_per_request": 4}})
    paths = [f"bulk/{i}" for i in range(10)]
    for p in paths:
        faulty.put(p, b"x")
    report = faulty.delete_many(paths)
    assert not report.failed and len(report.deleted) == 10
    assert _bulk_posts(faults) == 3  # 4 + 4 + 2 names
    assert _stored(raw, container) == {}


def test_delete_many_without_bulk_delete_deletes_one_by_one(
    faults: SwiftFaultProxy, faulty: SwiftDriver
) -> None:
    faults.edit_info(lambda info: {k: v for k, v in info.items() if k != "bulk_delete"})
    paths = [f"single/{i}" for i in range(5)]
    for p in paths:
        faulty.put(p, b"x")
    report = faulty.delete_many([*paths, "single/missing", "bad//path"])
    assert sorted(report.deleted) == sorted([*paths, "single/missing"])
    assert list(report.failed) == ["bad//path"]
    assert _bulk_posts(faults) == 0
    assert sum(1 for r in faults.seen if r.startswith("DELETE ")) == 6
    assert list(faulty.walk("")) == []


def test_bad_credentials_raise_authentication_failed_without_the_key(
    swift_service: SwiftService,
) -> None:
    secret = "not-the-key-" + uuid.uuid4().hex
    creds = SwiftCredentials(swift_service.auth_url, swift_service.user, secret)
    assert secret not in repr(creds)
    d = SwiftDriver(creds, "anything")
    with pytest.raises(AuthenticationFailed) as info:
        d.list("")
    message = str(info.value)
    assert secret not in message
    assert swift_service.user in message and swift_service.auth_url in message
    assert d.requests == 1


SECRET = "s3cret-in-the-url"


def _with_userinfo(url: str) -> str:
    return url.replace("://", f"://admin:{SECRET}@", 1)


def _leaks(text: str) -> bool:
    return SECRET in text or "admin:" in text


def test_urls_with_credentials_never_reach_a_message_or_log(
    swift_service: SwiftService,
    faults: SwiftFaultProxy,
    container: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    dead = f"http://127.0.0.1:{free_port()}"
    attempts: dict[str, SwiftCredentials] = {
        "v1 refused": SwiftCredentials(
            _with_userinfo(swift_service.auth_url), swift_service.user, "wrong"
        ),
        "v1 unreachable": SwiftCredentials(_with_userinfo(f"{dead}/auth/v1.0"), "u", "k"),
        "keystone unreachable": SwiftCredentials(
            _with_userinfo(f"{dead}/v3"), "u", "k", auth_version="3", project_name="p"
        ),
        "storage unreachable": SwiftCredentials(
            storage_url=_with_userinfo(f"{dead}/v1/AUTH_test"), token="AUTH_tk-x"
        ),
        "bad storage url": SwiftCredentials(
            storage_url=_with_userinfo("http://[::1/v1/AUTH_test"), token="AUTH_tk-x"
        ),
        "bad v1 auth url": SwiftCredentials(_with_userinfo("http://[::1/auth/v1.0"), "u", "k"),
        "v1 auth url port": SwiftCredentials(
            _with_userinfo("http://127.0.0.1:99999999/auth/v1.0"), "u", "k"
        ),
        "keystone url port": SwiftCredentials(
            _with_userinfo("http://127.0.0.1:99999999/v3"),
            "u",
            "k",
            auth_version="3",
            project_name="p",
        ),
    }
    for what, credentials in attempts.items():
        assert not _leaks(repr(credentials)), what
        driver = SwiftDriver(credentials, container, timeout=5)
        try:
            with pytest.raises(StorageError) as info:
                driver.list("")
        finally:
            driver.close()
        assert not _leaks(str(info.value)), (what, str(info.value))
    # Answers through a storage URL with userinfo: throttled, /info not JSON (logged).
    url, token = Connection(swift_service.auth_url, USER, KEY).get_auth()
    through = url.replace(
        swift_service.storage_url.split("/v1")[0], f"http://127.0.0.1:{faults.port}"
    )
    credentials = SwiftCredentials(storage_url=_with_userinfo(through), token=token)
    faults.edit("GET", r"^/info$", lambda r: (r[0], r[1], b"not json"))
    faults.answer("GET", rf"/{container}\?", 503, body=b"busy")
    driver = SwiftDriver(credentials, container)
    try:
        with pytest.raises(TransientError) as busy:
            driver.list("")
        assert not _leaks(str(busy.value)) and "503" in str(busy.value)
        assert driver.list("") == []
    finally:
        driver.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "is not JSON" in logged and "curl" in logged  # the logs that quote URLs
    assert not _leaks(logged)


def test_the_cli_says_an_auth_urls_failure_without_its_credentials(
    cli: Cli, caplog: pytest.LogCaptureFixture
) -> None:
    env = {
        "ST_AUTH": _with_userinfo(f"http://127.0.0.1:{free_port()}/auth/v1.0"),
        "ST_USER": "u",
        "ST_KEY": "k",
    }
    result = cli("ls", "swift://registry", env=env)
    assert result.exit_code == 2, result.stderr
    assert "cannot connect to 127.0.0.1" in result.stderr
    assert not _leaks(result.stdout + result.stderr)
    assert not _leaks("\n".join(r.getMessage() for r in caplog.records))


def test_a_refused_token_means_one_new_login(swift_service: SwiftService, container: str) -> None:
    stale = SwiftCredentials(
        swift_service.auth_url,
        swift_service.user,
        swift_service.key,
        storage_url=swift_service.storage_url,
        token="AUTH_tk-expired",
    )
    d = SwiftDriver(stale, container)
    d.put("x", b"1")
    assert d.requests == 3  # refused PUT, login, PUT
    d.delete("x")

    token_only = SwiftCredentials(storage_url=swift_service.storage_url, token="AUTH_tk-bad")
    with pytest.raises(AuthenticationFailed) as info:
        SwiftDriver(token_only, container).list("")
    assert "AUTH_tk-bad" not in str(info.value)


def test_unreachable_and_unresponsive_servers() -> None:
    creds = SwiftCredentials(f"http://127.0.0.1:{free_port()}/auth/v1.0", "u", "k")
    with pytest.raises(Unreachable, match="Connection refused"):
        SwiftDriver(creds, "c").stat("x")
    creds = SwiftCredentials("http://no-such-host.invalid/auth/v1.0", "u", "k")
    with pytest.raises(Unreachable):
        SwiftDriver(creds, "c").stat("x")

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1/AUTH_x"
        d = SwiftDriver(SwiftCredentials(storage_url=url, token="t"), "c", timeout=0.5)
        with pytest.raises(TransientError):
            d.get("x")


def test_requests_are_counted_and_one_login_serves_all_threads(
    swift_service: SwiftService, container: str
) -> None:
    d = SwiftDriver(swift_service.credentials(), container)
    assert d.requests == 0
    d.put("c/file", b"1")
    assert d.requests == 2  # login + PUT
    d.get("c/file")
    d.stat("c/file")
    assert d.requests == 4
    assert d.stat("c").is_dir
    assert d.requests == 6  # HEAD (404), then a one-name listing
    with pytest.raises(PathNotFound):
        d.stat("nothing")
    assert d.requests == 8

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: d.put(f"c/{i}", b"x"), range(32)))
    assert d.requests == 8 + 32  # no thread logged in again
    d.delete("c")
    assert list(d.walk("")) == []
    assert d.describe() == f"swift://{container}"
    d.close()


class _FakeKeystone(http.server.BaseHTTPRequestHandler):
    """Just enough Keystone v3 for a password login: the token it hands out is a real
    tempauth token and the catalog points at the real Swift."""

    swift: SwiftService

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        identity = body["auth"]["identity"]["password"]["user"]
        project = body["auth"]["scope"]["project"]
        if identity["name"] == "busy":  # a throttled Keystone
            self.send_response(429)
            self.send_header("Retry-After", "9")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if (
            identity["name"],
            identity["password"],
            identity["domain"]["name"],
            project["name"],
        ) != ("tester", "testing", "Default", "test"):
            self.send_response(401)
            self.end_headers()
            return
        endpoint = {
            "id": "e1",
            "interface": "public",
            "region": "R1",
            "region_id": "R1",
            "url": self.swift.storage_url,
        }
        token = {
            "token": {
                "methods": ["password"],
                "expires_at": "2999-01-01T00:00:00.000000Z",
                "user": {
                    "id": "u1",
                    "name": "tester",
                    "domain": {"id": "default", "name": "Default"},
                },
                "project": {
                    "id": "p1",
                    "name": "test",
                    "domain": {"id": "default", "name": "Default"},
                },
                "catalog": [
                    {"id": "s1", "type": "object-store", "name": "swift", "endpoints": [endpoint]}
                ],
            }
        }
        data = json.dumps(token).encode()
        self.send_response(201)
        self.send_header("X-Subject-Token", self.swift.token())
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_keystone_v3_login(swift_service: SwiftService, container: str) -> None:
    handler = type("Keystone", (_FakeKeystone,), {"swift": swift_service})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/identity"
        creds = SwiftCredentials(
            url,
            "tester",
            "testing",
            auth_version="3",
            project_name="test",
            user_domain_name="Default",
            project_domain_name="Default",
            region_name="R1",
        )
        d = SwiftDriver(creds, container)
        d.put("k", b"via keystone")
        assert d.get("k") == b"via keystone"
        d.delete("k")

        wrong = SwiftCredentials(
            url,
            "tester",
            "s3cret-wrong",
            auth_version="3",
            project_name="test",
            user_domain_name="Default",
        )
        with pytest.raises(AuthenticationFailed) as info:
            SwiftDriver(wrong, container).list("")
        assert "s3cret-wrong" not in str(info.value)
        elsewhere = SwiftCredentials(
            url,
            "tester",
            "testing",
            auth_version="3",
            project_name="test",
            user_domain_name="Default",
            region_name="R2",
        )
        with pytest.raises(StorageError, match=r"object-store.*R2"):
            SwiftDriver(elsewhere, container).list("")
        busy = SwiftCredentials(
            url, "busy", "testing", auth_version="3", project_name="test", user_domain_name="D"
        )
        with pytest.raises(TransientError) as throttled:
            SwiftDriver(busy, container).list("")
        assert throttled.value.retry_after == 9
    finally:
        server.shutdown()
        server.server_close()


def test_commit_waits_for_lagging_segments(
    driver: SwiftDriver, raw: Connection, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A segment missing from the DLO's size at commit is what a lagging container
    # listing looks like; here segment 2 comes back 0.5 s after the commit started.
    w = driver.writer("lag/data")
    w.write(b"1" * SEGMENT + b"2" * SEGMENT)
    stored = [n for n in _stored(raw, container) if "/segments/" in n]
    second = max(stored)
    raw.delete_object(container, second)
    timer = threading.Timer(0.5, lambda: raw.put_object(container, second, b"2" * SEGMENT))
    started = time.monotonic()
    timer.start()
    w.commit()
    timer.join()
    assert time.monotonic() - started >= 0.5
    assert driver.get("lag/data") == b"1" * SEGMENT + b"2" * SEGMENT

    monkeypatch.setattr(dlo, "SETTLE_TOTAL", 0.5)
    w = driver.writer("lag/never")
    w.write(b"x" * SEGMENT)
    raw.delete_object(
        container, max(n for n in _stored(raw, container) if "/segments/" in n and n not in stored)
    )
    with pytest.raises(StorageError, match="Timeout expired while waiting for segments"):
        w.commit()
    driver.delete("lag")
    assert _stored(raw, container) == {}


def test_create_root_creates_a_missing_container(swift_service: SwiftService) -> None:
    name = f"new-{uuid.uuid4().hex[:8]}"
    driver = SwiftDriver(swift_service.credentials(), name)
    try:
        with pytest.raises(StorageError, match="does not exist"):
            driver.put("a", b"1")
        driver.create_root()
        driver.put("a", b"1")
        assert driver.get("a") == b"1"
        driver.delete("a")
    finally:
        driver.close()


# --- network faults and throttling ------------------------------------------------------


def test_a_connection_cut_in_the_middle_of_a_body_is_a_transient_error(
    faults: SwiftFaultProxy, faulty: SwiftDriver, container: str
) -> None:
    data = os.urandom(300_000)
    faulty.put("big", data)
    faults.cut("GET", rf"/{container}/reg/big(\?|$)", after=100_000, times=2)
    with faulty.open("big") as f, pytest.raises(TransientError, match="connection"):
        f.read()
    with pytest.raises(TransientError):
        faulty.get("big")
    assert faulty.get("big") == data  # the fault passed; the driver still works
    faulty.delete("big")


def _http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now), usegmt=True)


@pytest.mark.parametrize("status", [429, 498, 503])
def test_throttling_is_a_transient_error_with_the_servers_wait(
    faults: SwiftFaultProxy, faulty: SwiftDriver, container: str, status: int
) -> None:
    faulty.put("f", b"content")
    faults.answer("GET", rf"/{container}/reg/f(\?|$)", status, headers={"Retry-After": "7"})
    with pytest.raises(TransientError) as info:
        faulty.get("f")
    assert info.value.retry_after == 7
    assert str(status) in str(info.value) and "retry after 7 s" in str(info.value)

    faults.answer(
        "GET", rf"/{container}/reg/f(\?|$)", status, headers={"Retry-After": _http_date(30)}
    )
    with pytest.raises(TransientError) as info:
        faulty.get("f")
    assert info.value.retry_after is not None and 25 <= info.value.retry_after <= 30

    faults.answer("GET", rf"/{container}/reg/f(\?|$)", status)  # no Retry-After
    with pytest.raises(TransientError) as info:
        faulty.get("f")
    assert info.value.retry_after is None
    faulty.delete("f")


def _write(driver: SwiftDriver, path: str) -> None:
    with driver.writer(path) as w:
        w.write(b"x" * (SEGMENT + 1))
        w.commit()


def _read(driver: SwiftDriver, path: str, offset: int) -> bytes:
    with driver.open(path, offset) as f:
        return f.read()


def _throttle(faults: SwiftFaultProxy, method: str, pattern: str) -> None:
    faults.answer(method, pattern, 429, headers={"Retry-After": "5"}, body=b"Slow down")


@pytest.mark.parametrize(
    "operation",
    [
        "login",
        "info",
        "list",
        "walk",
        "stat",
        "get",
        "open",
        "segment",
        "put",
        "move",
        "delete",
        "writer",
    ],
)
def test_every_request_path_reports_throttling(
    faults: SwiftFaultProxy, faulty: SwiftDriver, container: str, operation: str
) -> None:
    faulty.put("dir/f", b"content")
    if operation == "segment":
        _write(faulty, "dir/large")
    obj = rf"/{container}/reg/dir/f$"
    obj_get = rf"/{container}/reg/dir/f(\?|$)"
    listing = rf"/{container}\?"
    fresh = SwiftDriver(faults.credentials(), container, "reg", segment_size=SEGMENT)
    calls: dict[str, tuple[tuple[str, str], Callable[[], object]]] = {
        "login": (("GET", r"^/auth/"), lambda: fresh.stat("dir/f")),
        "info": (("GET", r"^/info$"), lambda: fresh.list("dir")),
        "list": (("GET", listing), lambda: faulty.list("dir")),
        "walk": (("GET", listing), lambda: list(faulty.walk("dir"))),
        "stat": (("HEAD", obj), lambda: faulty.stat("dir/f")),
        "get": (("GET", obj_get), lambda: faulty.get("dir/f")),
        "open": (("GET", obj_get), lambda: _read(faulty, "dir/f", 2)),
        # a large object's segments, read directly
        "segment": (("GET", rf"/{container}/reg/segments/"), lambda: _read(faulty, "dir/large", 0)),
        "put": (("PUT", obj), lambda: faulty.put("dir/f", b"new")),
        "move": (("HEAD", obj_get), lambda: faulty.move("dir/f", "dir/g")),
        "delete": (("POST", r"bulk-delete"), lambda: faulty.delete("dir")),
        "writer": (("PUT", rf"/{container}/reg/segments/"), lambda: _write(faulty, "dir/w")),
    }
    (method, pattern), call = calls[operation]
    _throttle(faults, method, pattern)
    try:
        # Never "not found", never an empty answer: the wait the server asked for.
        with pytest.raises(TransientError) as info:
            call()
        assert info.value.retry_after == 5
        call()  # the throttle has passed
    finally:
        fresh.close()
    assert not faulty.delete_many([e.path for e in faulty.walk("")]).failed


def test_bulk_delete_throttled_is_reported_per_path_not_raised(
    faults: SwiftFaultProxy, faulty: SwiftDriver
) -> None:
    faulty.put("a", b"1")
    _throttle(faults, "POST", r"bulk-delete")
    report = faulty.delete_many(["a"])
    assert report.deleted == [] and "retry after 5 s" in report.failed["a"]
    assert faulty.delete_many(["a"]).deleted == ["a"]


def _waited_as_asked(waits: list[float], asked: list[float]) -> bool:
    """Whether each wait is the one the server asked for, within Backoff's jitter (up to a
    quarter more)."""
    return len(waits) == len(asked) and all(
        after <= wait <= after * 1.25 for wait, after in zip(waits, asked, strict=True)
    )


def test_through_the_retry_wrapper_a_throttled_read_waits_as_asked_and_succeeds(
    faults: SwiftFaultProxy, container: str, raw: Connection
) -> None:
    # As production opens a driver: Location.open() wraps it in RetryingDriver, whose
    # backoff here records its waits instead of sleeping them.
    env = {"ST_AUTH": faults.auth_url, "ST_USER": faults.user, "ST_KEY": faults.key}
    driver = parse_location(f"swift://{container}", env=env).open()
    assert isinstance(driver, RetryingDriver)
    waits: list[float] = []
    driver.backoff = replace(driver.backoff, sleep=waits.append)
    raw.put_object(container, "dir/f", b"content")
    try:
        faults.answer(
            "GET", rf"/{container}/dir/f(\?|$)", 429, headers={"Retry-After": "7"}, times=2
        )
        assert driver.get("dir/f") == b"content"
        assert faults.seen.count(f"GET /v1/AUTH_test/{container}/dir/f?multipart-manifest=get") == 3
        assert _waited_as_asked(waits, [7, 7]), waits

        waits.clear()
        faults.answer("GET", rf"/{container}\?", 503, headers={"Retry-After": "3"})
        assert [e.path for e in driver.list("dir")] == ["dir/f"]
        assert _waited_as_asked(waits, [3]), waits
        waits.clear()
        faults.answer("GET", rf"/{container}\?", 498, headers={"Retry-After": "13"})
        assert [e.path for e in driver.walk("")] == ["dir/f"]
        assert _waited_as_asked(waits, [13]), waits

        # A wait past the backoff's budget is not taken: the fault comes back at once.
        waits.clear()
        faults.answer("GET", rf"/{container}/dir/f(\?|$)", 429, headers={"Retry-After": "600"})
        with pytest.raises(TransientError) as info:
            driver.get("dir/f")
        assert info.value.retry_after == 600 and waits == []
    finally:
        driver.delete("dir")
        driver.close()


def _opened(faults: SwiftFaultProxy, container: str) -> tuple[RetryingDriver, list[float]]:
    """A driver through `faults`, opened as production opens one (`Location.open()`),
    with small segments, its backoff recording the waits instead of sleeping them."""
    env = {"ST_AUTH": faults.auth_url, "ST_USER": faults.user, "ST_KEY": faults.key}
    location = replace(parse_location(f"swift://{container}", env=env), segment_size=SEGMENT)
    driver = location.open()
    assert isinstance(driver, RetryingDriver)
    waits: list[float] = []
    driver.backoff = replace(driver.backoff, sleep=waits.append, random=lambda: 0.0)
    return driver, waits


SEGMENT_PUT = r"/segments/[0-9a-f]{3}/[0-9a-f]{37}/"


def test_a_writers_requests_are_retried_inside_it(faults: SwiftFaultProxy, container: str) -> None:
    # A writer is not retried as a whole, but each of its requests can be sent again as
    # it was: segment PUTs, the manifest PUT, the HEADs of the commit.
    driver, waits = _opened(faults, container)
    data = os.urandom(3 * SEGMENT + 10)
    try:
        faults.answer("PUT", rf"/{container}{SEGMENT_PUT}0000000000000002$", 503)
        faults.answer(
            "PUT", rf"/{container}{SEGMENT_PUT}0000000000000003$", 429, headers={"Retry-After": "1"}
        )
        faults.answer("HEAD", rf"/{container}/up/data$", 503, times=2)
        faults.answer("PUT", rf"/{container}/up/data$", 500)
        with driver.writer("up/data") as w:
            w.write(data)
            w.commit()
        assert driver.get("up/data") == data
        segment_puts = [r for r in faults.seen if r.startswith("PUT") and "/segments/" in r]
        assert len(segment_puts) == 4 + 2  # four segments, two of them twice
        assert waits[1] == 1.0  # the wait the server asked for (jitter fixed at 0)
        assert len(waits) == 5  # two segments, two HEADs, the manifest
        # An append to the DLO: the HEAD and the listing that find its segments, and
        # its own segment, too.
        waits.clear()
        faults.answer("HEAD", rf"/{container}/up/data$", 503)
        faults.answer("GET", rf"/{container}\?.*prefix=segments", 503)
        faults.answer("PUT", rf"/{container}{SEGMENT_PUT}[0-9]{{16}}\.[0-9a-f]{{8}}$", 503)
        with driver.writer("up/data", append=True) as w:
            w.write(b"tail")
            w.commit()
        assert driver.get("up/data") == data + b"tail" and len(waits) == 3
        assert any(r.startswith("GET") and "prefix=segments" in r for r in faults.seen)
    finally:
        faults.clear()
        driver.delete("up")
        driver.close()
    assert [e.path for e in driver.walk("")] == []


def test_a_writer_gives_up_as_the_backoff_says(faults: SwiftFaultProxy, container: str) -> None:
    driver, waits = _opened(faults, container)
    try:
        faults.answer("PUT", rf"/{container}{SEGMENT_PUT}", 503, times=None)
        w = driver.writer("up/data")
        with pytest.raises(TransientError):
            w.write(os.urandom(SEGMENT + 1))
        assert len(waits) == driver.backoff.attempts - 1
        with pytest.raises(TransientError):
            w.commit()  # never a DLO with a hole
        faults.clear()
        w.cancel()  # the segment that may have landed goes
        assert not driver.exists("up/data")
    finally:
        faults.clear()
        driver.close()
    assert [e.path for e in driver.walk("")] == []


def test_delete_many_tries_a_throttled_bulk_delete_again(
    faults: SwiftFaultProxy, container: str, raw: Connection
) -> None:
    # One 429 on the bulk-delete POST made `regtool gc` report 70 blobs NOT deleted.
    driver, waits = _opened(faults, container)
    paths = [f"blobs/{i:03d}" for i in range(70)]
    for path in paths:
        raw.put_object(container, path, b"x")
    try:
        faults.answer("POST", r"bulk-delete", 429, headers={"Retry-After": "1"})
        report = driver.delete_many([*paths, "bad//path"])
        assert sorted(report.deleted) == paths
        assert list(report.failed) == ["bad//path"] and not report.transient
        assert waits == [1.0]
        assert sum(1 for r in faults.seen if "bulk-delete" in r) == 2
        # A fault that lasts: tried as often as the backoff allows, then reported.
        waits.clear()
        raw.put_object(container, "blobs/stays", b"x")
        faults.answer("POST", r"bulk-delete", 503, times=None)
        report = driver.delete_many(["blobs/stays"])
        assert report.deleted == [] and "503" in report.failed["blobs/stays"]
        assert list(report.transient) == ["blobs/stays"]
        assert len(waits) == driver.backoff.attempts - 1
    finally:
        faults.clear()
        driver.delete("blobs")
        driver.close()


# --- the cluster's limits ---------------------------------------------------------------

#: The constrained cluster's limits: listing pages of 100 names, objects of 4 KiB at most.
LISTING_LIMIT = 100
MAX_FILE_SIZE = 4096


@pytest.fixture
def small_swift(swift_service: SwiftService) -> SwiftProxy:
    """A proxy of the session's Swift with lower limits in its swift.conf."""
    return swift_service.constrained_proxy(
        container_listing_limit=LISTING_LIMIT, max_file_size=MAX_FILE_SIZE
    )


def test_listing_pages_keep_to_the_clusters_listing_limit(
    swift_service: SwiftService, small_swift: SwiftProxy, container: str
) -> None:
    names = [f"many/{i:03d}" for i in range(250)]
    swift_service.add_listing_entries(container, [*names, "manyx/sibling", "aaa"])
    d = SwiftDriver(small_swift.credentials(), container)
    try:
        assert sorted(e.path for e in d.walk("many")) == names
        assert d.requests == 5  # login, /info, pages of 100 + 100 + 50
        listed = d.list("many")
        assert sorted(e.path for e in listed) == names
        assert d.requests == 8
        assert {e.path for e in d.list("")} == {"many", "manyx", "aaa"}
    finally:
        d.close()


def test_ls_reads_a_store_whose_cluster_allows_fewer_names_a_page(
    cli: Any, small_swift: SwiftProxy, container: str, raw: Connection
) -> None:
    raw.put_object(
        container, "files/docker/registry/v2/repositories/r/_layers/sha256/00/link", b"x"
    )
    env = {"ST_AUTH": small_swift.auth_url, "ST_USER": USER, "ST_KEY": KEY}
    result = cli("ls", f"swift://{container}", env=env)
    assert result.exit_code == 0, result.stderr


def test_a_cluster_hiding_info_is_read_with_the_limit_its_answer_names(
    swift_service: SwiftService, small_swift: SwiftProxy, container: str
) -> None:
    names = [f"n/{i:03d}" for i in range(150)]
    swift_service.add_listing_entries(container, names)
    with SwiftFaultProxy(small_swift.auth_url) as faults:
        faults.answer("GET", r"^/info$", 403, times=None)  # expose_info = false
        d = SwiftDriver(faults.credentials(), container)
        try:
            assert sorted(e.path for e in d.walk("n")) == names
            assert sorted(e.path for e in d.walk("n")) == names
        finally:
            d.close()
    pages = [r for r in faults.seen if r.startswith(f"GET /v1/AUTH_test/{container}?")]
    # Swift's default first, refused with "412 Maximum limit is 100"; then pages of 100.
    assert [("limit=10000" in r, "limit=100&" in r or r.endswith("limit=100")) for r in pages] == [
        (True, False),
        *[(False, True)] * 4,
    ]


def test_segments_are_cut_to_the_clusters_max_file_size(
    small_swift: SwiftProxy, container: str, raw: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    d = SwiftDriver(small_swift.credentials(), container, "reg", segment_size=64 * 1024)
    data = os.urandom(2 * MAX_FILE_SIZE + 100)
    try:
        with caplog.at_level("WARNING"), d.writer("blob") as w:
            w.write(data)
            w.commit()
        assert "max_file_size of 4096 bytes" in caplog.text
        segments = sorted(v for n, v in _stored(raw, container).items() if "/segments/" in n)
        assert segments == [100, MAX_FILE_SIZE, MAX_FILE_SIZE]
        assert d.get("blob") == data
        with pytest.raises(StorageError, match="413"):  # a plain object over the limit
            d.put("plain", data)
    finally:
        d.delete("blob")
        d.close()
    assert _stored(raw, container) == {}


def test_a_large_object_of_more_segments_than_a_listing_page(
    small_swift: SwiftProxy, container: str, raw: Connection
) -> None:
    d = SwiftDriver(small_swift.credentials(), container, "reg", segment_size=16)
    data = os.urandom(16 * (LISTING_LIMIT + 20))
    try:
        with d.writer("dir/blob") as w:
            w.write(data)
            w.commit()
        assert d.get("dir/blob") == data
        # Swift's HEAD says 0 bytes for a DLO of more segments than a listing page.
        small = Connection(small_swift.auth_url, USER, KEY)
        assert small.head_object(container, "reg/dir/blob")["content-length"] == "0"
        small.close()
        assert d.stat("dir/blob").size == len(data)
        large = d.large_object("dir/blob")
        assert large is not None and large.size == len(data)
        w = d.writer("dir/blob", append=True)  # numbering continues after the last page
        w.write(b"tail")
        w.commit()
        assert d.get("dir/blob") == data + b"tail"
        d.delete("dir")  # the segments, over two listing pages, go too
        assert _stored(raw, container) == {}
    finally:
        d.close()


@pytest.mark.parametrize(
    "info",
    [
        pytest.param((403, b"Forbidden"), id="hidden"),
        pytest.param((404, b"Not Found"), id="missing"),
        pytest.param((200, b"<html>not JSON</html>"), id="not-json"),
        pytest.param((200, b'{"swift": {"container_listing_limit": "lots"}}'), id="odd-values"),
    ],
)
def test_without_a_usable_info_swifts_defaults_apply(
    faults: SwiftFaultProxy, faulty: SwiftDriver, info: tuple[int, bytes]
) -> None:
    status, body = info
    faults.answer("GET", r"^/info$", status, body=body, times=None)
    faulty.put("a/1", b"1")
    faulty.put("a/2", b"2")
    assert sorted(e.path for e in faulty.walk("")) == ["a/1", "a/2"]
    faulty.delete("a")  # one DELETE per object: bulk delete may not be there
    assert list(faulty.walk("")) == []
    assert faults.seen.count("GET /info") == 1  # read once, the answer kept
    assert any("limit=10000" in r for r in faults.seen)
    assert _bulk_posts(faults) == 0
    assert sum(1 for r in faults.seen if r.startswith("DELETE ")) == 2


# --- a cluster that does not join large objects -----------------------------------------


def _without_manifest(response: Response) -> Response:
    status, headers, body = response
    return status, {k: v for k, v in headers.items() if k.lower() != "x-object-manifest"}, body


def _unjoined(response: Response) -> Response:
    status, headers, body = response
    return status, {**headers, "Content-Length": "0"}, body


def test_a_cluster_without_dlo_is_named_as_such(
    faults: SwiftFaultProxy,
    faulty: SwiftDriver,
    container: str,
    raw: Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    faults.edit("HEAD", rf"/{container}/reg/dropped$", _without_manifest)
    with pytest.raises(StorageError, match="does not keep the X-Object-Manifest header"):
        _write(faulty, "dropped")

    monkeypatch.setattr(dlo, "SETTLE_TOTAL", 0.5)
    faults.edit("HEAD", rf"/{container}/reg/unjoined$", _unjoined)
    with pytest.raises(StorageError, match="lists the segments but does not join them"):
        _write(faulty, "unjoined")
    for name in _stored(raw, container):
        raw.delete_object(container, name)


# --- what no native error may escape ----------------------------------------------------


def test_odd_answers_are_storage_errors_or_unknown_values(
    faults: SwiftFaultProxy, faulty: SwiftDriver, container: str
) -> None:
    listing = rf"/{container}\?"
    as_json = {"Content-Type": "application/json; charset=utf-8"}
    faults.answer("GET", listing, 200, headers=as_json, body=b"<html>busy</html>")
    with pytest.raises(StorageError, match="unexpected answer"):
        faulty.list("")
    odd = [{"name": "reg/a", "bytes": "x", "last_modified": "yesterday", "hash": 5}]
    faults.answer("GET", listing, 200, headers=as_json, body=json.dumps(odd).encode())
    assert list(faulty.walk("")) == [Entry("a")]
    faults.answer("GET", listing, 200, headers=as_json, body=b'[{"bytes": 1}]')
    with pytest.raises(StorageError, match="unexpected item in a listing"):
        list(faulty.walk(""))
    faults.answer("POST", r"bulk-delete", 200, headers=as_json, body=b'{"Errors": "many"}')
    assert "unexpected errors" in faulty.delete_many(["a"]).failed["a"]

    faulty.put("a", b"1")
    faults.edit("HEAD", r"/reg/a$", lambda r: (r[0], {**r[1], "X-Timestamp": "soon"}, r[2]))
    assert faulty.stat("a").modified is None
    faulty.delete("a")


def test_a_login_that_names_no_storage_url(faults: SwiftFaultProxy, container: str) -> None:
    def drop(response: Response) -> Response:
        status, headers, _ = response
        return status, {k: v for k, v in headers.items() if k != "X-Storage-Url"}, b""

    faults.edit("GET", r"^/auth/", drop)
    with pytest.raises(StorageError, match="gave no storage URL"):
        SwiftDriver(faults.credentials(), container).list("")


def test_an_unusable_storage_url_is_not_retried(container: str) -> None:
    creds = SwiftCredentials(storage_url="ftp://127.0.0.1/v1/AUTH_x", token="t")
    with pytest.raises(StorageError) as info:
        SwiftDriver(creds, container).list("")
    assert not isinstance(info.value, TransientError)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after("7", now) == 7.0
    assert retry_after(" 1.5 ", now) == 1.5
    assert retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now) == 30.0
    assert retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0.0  # already past
    assert retry_after("soon", now) is None
    assert retry_after("", now) is None and retry_after(None, now) is None


# --- what a request costs Swift ------------------------------------------------------


def test_a_large_objects_segment_set_move_and_delete_head_its_manifest_alone(
    faults: SwiftFaultProxy, faulty: SwiftDriver, raw: Connection, container: str
) -> None:
    """A HEAD through the DLO middleware makes Swift list the segments (for the size and
    ETag); where only `X-Object-Manifest` matters, the manifest object itself is asked."""
    data = os.urandom(3 * SEGMENT)
    with faulty.writer("blob") as w:
        w.write(data)
        w.commit()
    own = _segment_set(raw, container, "reg/blob").removeprefix("reg/")
    faults.seen.clear()
    assert faulty.segment_set("blob") == own
    faulty.move("blob", "moved")
    heads = [r for r in faults.seen if r.startswith("HEAD ")]
    assert faulty.get("moved") == data  # a read HEADs the DLO whole: its size and ETag
    faults.seen.clear()
    faulty.delete("moved")
    heads += [r for r in faults.seen if r.startswith("HEAD ")]
    assert heads and all(r.endswith("?multipart-manifest=get") for r in heads), heads
    assert _stored(raw, container) == {}


def test_the_next_listing_page_is_asked_for_while_one_is_read(
    swift_service: SwiftService,
    small_swift: SwiftProxy,
    container: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = [f"many/{i:03d}" for i in range(250)]
    swift_service.add_listing_entries(container, names)
    d = SwiftDriver(small_swift.credentials(), container)
    asked: list[str | None] = []
    second = threading.Event()
    page = Container._page

    def recorded(self: Container, *args: Any) -> list[object]:
        asked.append(args[3])  # the marker
        got = page(self, *args)
        if len(asked) == 2:
            second.set()
        return got

    monkeypatch.setattr(Container, "_page", recorded)
    try:
        walk = d.walk("many")
        assert next(walk).path == names[0]
        # the first page's first entry is out: the second page is under way already
        assert second.wait(30), asked
        assert [e.path for e in walk] == names[1:]
        assert asked == [None, names[99], names[199]]
        assert d.requests == 5  # login, /info, pages of 100 + 100 + 50, as before
        # a walk stopped early leaves nothing behind: the driver lists on as before
        early = d.walk("many")
        assert next(early).path == names[0]
        early.close()
        assert [e.path for e in d.walk("many")] == names
    finally:
        d.close()

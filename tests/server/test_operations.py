"""`regtool serve` operated: Prometheus metrics scraped from the debug listener, webhook
notifications received by a real HTTP receiver, storage health turning the registry
away and back."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from regtool.errors import StorageError
from regtool.server.debug_server import DebugServer
from regtool.server.health import HealthCheck
from regtool.server.notifications.endpoint import Endpoint
from regtool.server.notifications.events import EVENTS_MEDIA_TYPE, Event, Target, record
from regtool.server.operations import Operations
from regtool.server.ops_settings import (
    DebugSettings,
    EndpointSettings,
    HealthSettings,
    NotificationSettings,
    UploadPurgeSettings,
)
from regtool.server.request_life import RequestLife
from regtool.server.settings import ServerSettings
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry
from tests.server.test_api import OCI_MANIFEST, image_manifest, put_manifest, sha

Serve = Callable[..., RunningRegistry]


def operations(
    *,
    prometheus: bool = True,
    endpoints: tuple[EndpointSettings, ...] = (),
    health: HealthSettings | None = None,
    queue_size: int = 10000,
) -> Operations:
    return Operations.from_settings(
        DebugSettings("127.0.0.1:0", prometheus),
        health or HealthSettings(),
        NotificationSettings(endpoints, queue_size),
        UploadPurgeSettings(enabled=False),
    )


@pytest.fixture
def debug_listener() -> Iterator[Callable[[Operations], str]]:
    """Starts the debug listener over an `Operations`; returns its base URL."""
    servers: list[DebugServer] = []

    def start(ops: Operations) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        server = DebugServer(ops, sock)
        server.start()
        servers.append(server)
        deadline = time.monotonic() + 10
        while not server.server.started:
            assert time.monotonic() < deadline, "the debug listener did not start"
            time.sleep(0.01)
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the metrics at `url`: (name, sorted labels) -> value."""
    r = httpx.get(f"{url}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def push_and_pull(client: httpx.Client, name: str) -> tuple[str, list[bytes], bytes]:
    """An image pushed (two blobs, a manifest tagged v1) and pulled back whole."""
    manifest = image_manifest(client, name)
    put_manifest(client, name, "v1", manifest)
    doc = json.loads(manifest)
    r = client.get(f"/v2/{name}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200
    blobs = []
    for desc in [doc["config"], *doc["layers"]]:
        r = client.get(f"/v2/{name}/blobs/{desc['digest']}")
        assert r.status_code == 200
        blobs.append(r.content)
    return sha(manifest), blobs, manifest


# --- metrics -----------------------------------------------------------------------------
def test_metrics_count_a_push_and_a_pull(
    serve_registry: Serve, tmp_path: Path, debug_listener: Callable[[Operations], str]
) -> None:
    ops = operations()
    reg = serve_registry(LocalDriver(tmp_path), ops=ops)
    debug = debug_listener(ops)
    before = scrape(debug)
    with httpx.Client(base_url=reg.url) as client:
        _, blobs, manifest = push_and_pull(client, "team/app")
    after = scrape(debug)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "regtool_http_requests_total"
    assert moved(requests, method="POST", route="uploads", status="201") == 2
    assert moved(requests, method="PUT", route="manifests", status="201") == 1
    assert moved(requests, method="GET", route="manifests", status="200") == 1
    assert moved(requests, method="GET", route="blobs", status="200") == 2
    latency = "regtool_http_request_duration_seconds_count"
    assert moved(latency, method="GET", route="blobs") == 2
    blob_bytes = sum(map(len, blobs))
    assert moved("regtool_http_received_bytes_total", route="uploads") == blob_bytes
    assert moved("regtool_http_received_bytes_total", route="manifests") == len(manifest)
    assert moved("regtool_http_sent_bytes_total", route="blobs") == blob_bytes
    assert moved("regtool_http_sent_bytes_total", route="manifests") == len(manifest)
    assert value(after, "regtool_uploads_in_progress") == 0
    # storage calls counted by driver: blobs, links and the manifest were written
    assert moved("regtool_storage_operations_total", driver="local", operation="put") >= 3
    assert value(after, "regtool_storage_errors_total", driver="local", operation="put") == 0
    # an unknown route and a missing blob are counted with their status
    with httpx.Client(base_url=reg.url) as client:
        assert client.get("/v2/team/app/blobs/sha256:" + "0" * 64).status_code == 404
    assert value(scrape(debug), requests, method="GET", route="blobs", status="404") == 1


def test_in_progress_gauges_count_a_request_writing_an_upload(
    serve_registry: Serve, tmp_path: Path, debug_listener: Callable[[Operations], str]
) -> None:
    """While a PATCH's body is still coming, the scrape counts it as a request in
    progress and an upload being written; once it is answered, neither."""
    ops = operations()
    reg = serve_registry(LocalDriver(tmp_path), ops=ops)
    debug = debug_listener(ops)
    location = httpx.post(f"{reg.url}/v2/team/app/blobs/uploads/").headers["Location"]
    path = location.removeprefix(reg.url)
    host, port = reg.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as conn:
        conn.sendall(f"PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab".encode())
        deadline = time.monotonic() + 10
        while value(scrape(debug), "regtool_uploads_in_progress") != 1:
            assert time.monotonic() < deadline, "the PATCH never counted as writing an upload"
            time.sleep(0.01)
        assert value(scrape(debug), "regtool_http_requests_in_progress") == 1
        conn.sendall(b"cd")
        assert conn.recv(100).startswith(b"HTTP/1.1 202 ")
    after = scrape(debug)
    assert value(after, "regtool_uploads_in_progress") == 0
    assert value(after, "regtool_http_requests_in_progress") == 0


def test_the_debug_listener_leaves_the_servers_log_format(
    debug_listener: Callable[[Operations], str],
) -> None:
    """uvicorn's loggers are shared by both listeners: the registry's warnings (a TLS
    handshake on its plain port...) stay in `log.formatter`'s format, through regtool's
    handlers, once the debug listener has started."""
    uvicorn_logger = logging.getLogger("uvicorn")
    before = (list(uvicorn_logger.handlers), uvicorn_logger.propagate)
    debug_listener(operations())
    assert (list(uvicorn_logger.handlers), uvicorn_logger.propagate) == before


def test_debug_listener_root_and_metrics_off(
    serve_registry: Serve, tmp_path: Path, debug_listener: Callable[[Operations], str]
) -> None:
    ops = operations(prometheus=False)
    serve_registry(LocalDriver(tmp_path), ops=ops)
    debug = debug_listener(ops)
    assert httpx.get(f"{debug}/").status_code == 200
    assert httpx.get(f"{debug}/metrics").status_code == 404
    r = httpx.get(f"{debug}/debug/health")
    assert (r.status_code, r.json()) == (200, {})


# --- notifications -------------------------------------------------------------------------
class Receiver:
    """A webhook receiver on loopback collecting what is POSTed to it."""

    def __init__(self, status: int = 200):
        self.posts: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.status = status
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.arrived:
                    receiver.posts.append((dict(self.headers), json.loads(body)))
                    receiver.arrived.notify_all()
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for _, body in self.posts for e in body["events"]]

    def wait_for(self, n: int) -> list[dict[str, Any]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.events) >= n, timeout=10), self.events
        return self.events

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_events_for_push_pull_mount_and_delete(
    serve_registry: Serve, tmp_path: Path, receiver: Receiver
) -> None:
    endpoint = EndpointSettings(
        "hook", receiver.url, (("Authorization", "Bearer s3cret"),), threshold=3
    )
    ops = operations(endpoints=(endpoint,))
    reg = serve_registry(LocalDriver(tmp_path), ops=ops)
    with httpx.Client(base_url=reg.url, headers={"User-Agent": "test-agent"}) as client:
        digest, blobs, manifest = push_and_pull(client, "team/app")
        events = receiver.wait_for(6)
        layer = sha(blobs[1])
        r = client.post(f"/v2/other/blobs/uploads/?mount={layer}&from=team/app")
        assert r.status_code == 201
        mount_request = r.headers["X-Request-Id"]
        assert client.delete(f"/v2/team/app/manifests/{digest}").status_code == 202
        events = receiver.wait_for(8)
    headers, body = receiver.posts[0]
    assert headers["Content-Type"] == EVENTS_MEDIA_TYPE
    assert headers["Authorization"] == "Bearer s3cret"
    assert set(body) == {"events"}
    seen = [(e["action"], e["target"].get("mediaType"), e["target"].get("tag")) for e in events]
    blob = "application/octet-stream"
    assert seen == [
        ("push", blob, None),
        ("push", blob, None),
        ("push", OCI_MANIFEST, "v1"),
        ("pull", OCI_MANIFEST, "v1"),
        ("pull", blob, None),
        ("pull", blob, None),
        ("mount", blob, None),
        ("delete", None, None),
    ]
    pushed = events[2]
    assert pushed["target"] == {
        "mediaType": OCI_MANIFEST,
        "size": len(manifest),
        "digest": digest,
        "length": len(manifest),
        "repository": "team/app",
        "url": f"http://{reg.host}/v2/team/app/manifests/{digest}",
        "tag": "v1",
    }
    assert pushed["request"]["method"] == "PUT"
    assert pushed["request"]["useragent"] == "test-agent"
    assert pushed["request"]["host"] == reg.host
    assert pushed["id"] and pushed["timestamp"].endswith("Z")
    assert events[0]["target"]["size"] == len(blobs[0]) or events[0]["target"]["size"] == len(
        blobs[1]
    )
    assert events[6]["target"]["fromRepository"] == "team/app"
    assert events[6]["request"]["id"] == mount_request  # the id its log lines carry
    assert events[6]["target"]["repository"] == "other"
    assert events[7]["target"] == {"digest": digest, "repository": "team/app"}
    assert len({e["id"] for e in events}) == len(events)


def test_ignored_actions_and_media_types(
    serve_registry: Serve, tmp_path: Path, receiver: Receiver
) -> None:
    endpoint = EndpointSettings(
        "hook",
        receiver.url,
        ignored_media_types=frozenset({"application/octet-stream"}),
        ignored_actions=frozenset({"pull"}),
    )
    reg = serve_registry(LocalDriver(tmp_path), ops=operations(endpoints=(endpoint,)))
    with httpx.Client(base_url=reg.url) as client:
        push_and_pull(client, "app")
        client.delete("/v2/app/manifests/v1")  # deletes are off by default? no: on here
    events = receiver.wait_for(2)
    assert [(e["action"], e["target"].get("tag")) for e in events] == [
        ("push", "v1"),
        ("delete", "v1"),
    ]


def test_manifest_events_with_references(
    serve_registry: Serve, tmp_path: Path, receiver: Receiver
) -> None:
    endpoint = EndpointSettings(
        "hook", receiver.url, ignored_media_types=frozenset({"application/octet-stream"})
    )
    ops = Operations.from_settings(
        DebugSettings(),
        HealthSettings(),
        NotificationSettings((endpoint,), include_references=True),
        UploadPurgeSettings(enabled=False),
    )
    reg = serve_registry(LocalDriver(tmp_path), ops=ops)
    with httpx.Client(base_url=reg.url) as client:
        manifest = image_manifest(client, "app")
        put_manifest(client, "app", "v1", manifest)
    doc = json.loads(manifest)
    (event,) = receiver.wait_for(1)
    assert event["target"]["references"] == [
        {k: d[k] for k in ("mediaType", "size", "digest")} for d in [doc["config"], *doc["layers"]]
    ]


def test_a_failing_request_makes_no_event(
    serve_registry: Serve, tmp_path: Path, receiver: Receiver
) -> None:
    endpoint = EndpointSettings("hook", receiver.url)
    reg = serve_registry(LocalDriver(tmp_path), ops=operations(endpoints=(endpoint,)))
    with httpx.Client(base_url=reg.url) as client:
        assert client.get("/v2/app/manifests/nope").status_code == 404
        put_manifest(client, "app", "v1", image_manifest(client, "app"))
    events = receiver.wait_for(3)
    assert [e["action"] for e in events] == ["push"] * 3


@pytest.mark.parametrize("given", [None, "Bearer t0ken"], ids=["from-url", "header-wins"])
def test_an_endpoint_url_with_a_user_and_password_gets_basic_auth(
    serve_registry: Serve, tmp_path: Path, receiver: Receiver, given: str | None
) -> None:
    """As distribution's (Go's) client does: `http://user:pass@host/` is POSTed to
    `host` with `Authorization: Basic`, unless the endpoint's headers give one."""
    url = receiver.url.replace("http://", "http://hook%20user:p%40ss:w@")
    item: dict[str, Any] = {"name": "hook", "url": url}
    if given:
        item["headers"] = {"Authorization": [given]}
    settings = NotificationSettings.from_config({"notifications": {"endpoints": [item]}})
    assert settings.endpoints[0].url == receiver.url
    reg = serve_registry(LocalDriver(tmp_path), ops=operations(endpoints=settings.endpoints))
    with httpx.Client(base_url=reg.url) as client:
        push_and_pull(client, "team/app")
    receiver.wait_for(1)
    headers, _ = receiver.posts[0]
    expected = given or "Basic " + base64.b64encode(b"hook user:p@ss:w").decode()
    assert headers["Authorization"] == expected


def test_events_are_queued_before_the_answer_ends(tmp_path: Path) -> None:
    """A client that has its whole answer may send its next request at once: the
    events of the first must already be queued, or the two could arrive out of order.
    The endpoint is never started, so its queue shows what was written when."""
    ops = operations(endpoints=(EndpointSettings("hook", dead_url()),))
    assert ops.notifier is not None
    (endpoint,) = ops.notifier.endpoints
    queued_when: dict[str, int] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        record(Request(scope), "pull", Target("blobs", "app", "sha256:" + "0" * 64))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        queued_when["mid-body"] = len(endpoint)
        await send({"type": "http.response.body", "body": b"b"})
        queued_when["answered"] = len(endpoint)

    async def get() -> bytes:
        transport = httpx.ASGITransport(app=RequestLife(app, ServerSettings(), ops))
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
            return (await client.get("/v2/app/blobs/x")).content

    assert asyncio.run(get()) == b"ab"
    assert queued_when == {"mid-body": 0, "answered": 1}


def test_a_request_is_counted_before_its_answer_ends() -> None:
    """A client that has its whole answer may scrape the metrics at once: the request
    must no longer be in progress there, and its status and bytes must be counted."""
    ops = operations()
    metrics = ops.metrics
    assert metrics is not None
    requests = metrics.registry.get_sample_value
    labels = {"method": "GET", "route": "other", "status": "200"}
    counted_when: dict[str, tuple[int, float | None]] = {}

    def now() -> tuple[int, float | None]:
        assert metrics is not None
        return metrics.requests_in_progress, requests("regtool_http_requests_total", labels)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        counted_when["mid-body"] = now()
        await send({"type": "http.response.body", "body": b"b"})
        counted_when["answered"] = now()

    async def get() -> bytes:
        transport = httpx.ASGITransport(app=RequestLife(app, ServerSettings(), ops))
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
            return (await client.get("/somewhere")).content

    assert asyncio.run(get()) == b"ab"
    assert counted_when == {"mid-body": (1, None), "answered": (0, 1.0)}
    sent = metrics.registry.get_sample_value("regtool_http_sent_bytes_total", {"route": "other"})
    assert sent == 2.0


@pytest.mark.parametrize(
    ("ending", "events"),
    [("client gone after the body", 1), ("storage failed mid-body", 0)],
)
def test_an_answer_without_its_last_message(ending: str, events: int) -> None:
    """A client that closes as soon as it has the body leaves the app to end without
    sending its last (empty) message, as Starlette's streaming answers do: its events
    still go out. An app that fails mid-body made no event."""
    ops = operations(endpoints=(EndpointSettings("hook", dead_url()),))
    assert ops.notifier is not None
    (endpoint,) = ops.notifier.endpoints

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        record(Request(scope), "pull", Target("blobs", "app", "sha256:" + "0" * 64))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ab", "more_body": True})
        if ending == "storage failed mid-body":
            raise StorageError("the read came up short")

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v2/app/blobs/x",
        "raw_path": b"/v2/app/blobs/x",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 5000),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    asyncio.run(RequestLife(app, ServerSettings(), ops)(scope, receive, send))
    assert len(endpoint) == events


def dead_url() -> str:
    """A loopback URL nothing listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/events"


def test_a_dead_endpoint_neither_slows_pushes_nor_grows(
    serve_registry: Serve, tmp_path: Path, debug_listener: Callable[[Operations], str]
) -> None:
    # a receiver that accepts connections and never answers: every POST waits its timeout
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    hung = EndpointSettings(
        "hung", f"http://127.0.0.1:{silent.getsockname()[1]}/", timeout=60.0, threshold=1
    )
    dead = EndpointSettings("dead", dead_url(), threshold=1, backoff=60.0)
    ops = operations(endpoints=(hung, dead), queue_size=20)
    reg = serve_registry(LocalDriver(tmp_path / "slow"), ops=ops)
    debug = debug_listener(ops)

    try:
        started = time.monotonic()
        with httpx.Client(base_url=reg.url) as client:
            for i in range(15):
                put_manifest(client, "app", f"t{i}", image_manifest(client, "app"))
        pushed = time.monotonic() - started
        # 45 events each: the queues hold 20, the rest is dropped and counted
        assert all(len(e) <= 20 for e in ops.notifier.endpoints)  # type: ignore[union-attr]
        samples = scrape(debug)
        dropped = "regtool_notification_events_total"
        assert value(samples, dropped, endpoint="dead", outcome="dropped") >= 25
        assert value(samples, dropped, endpoint="hung", outcome="dropped") >= 25
        # a hung endpoint's timeout is paid by its thread, never by a request: had one
        # push waited for it, the pushes would have taken a minute
        assert pushed < hung.timeout / 2, pushed
    finally:
        silent.close()


def test_endpoint_retries_after_backoff_until_delivered() -> None:
    attempts: list[int] = []
    answers = iter([500, 500, 500, 200])
    done = threading.Event()

    def post(body: bytes) -> int:
        attempts.append(len(json.loads(body)["events"]))
        status = next(answers)
        if status == 200:
            done.set()
        return status

    counted: list[tuple[str, int]] = []
    settings = EndpointSettings("e", "http://unused/", threshold=2, backoff=0.05)
    endpoint = Endpoint(settings, 10, lambda n, outcome, k: counted.append((outcome, k)), post)
    endpoint.write([event("push"), event("pull")])
    endpoint.start()
    assert done.wait(10)
    endpoint.close(wait=10)  # the delivery counted ("sent") after the answer came
    assert attempts == [2, 2, 2, 2]  # the same two events until they went
    assert counted == [("failed", 2)] * 3 + [("sent", 2)]
    assert len(endpoint) == 0


def event(action: str) -> Event:
    target = Target("blobs", "app", "sha256:" + "1" * 64, "application/octet-stream", 3)
    return Event(action, target, time.time(), "rid", "1.2.3.4:5", "h", "GET", "ua", None)


# --- health --------------------------------------------------------------------------------
def test_health_threshold_and_recovery(
    serve_registry: Serve, tmp_path: Path, debug_listener: Callable[[Operations], str]
) -> None:
    """The store made unreachable (its root replaced by a symlink loop) fails the check; after
    `threshold` failures in a row /debug/health and the registry answer 503; once the
    store is back, 200."""
    root = tmp_path / "store"
    root.mkdir()
    ops = operations(health=HealthSettings(True, interval=3600, threshold=2))
    reg = serve_registry(LocalDriver(root), ops=ops)
    debug = debug_listener(ops)
    check: HealthCheck = ops.health.checks[0]
    assert check.name == "storagedriver_local"
    with httpx.Client(base_url=reg.url) as client:
        put_manifest(client, "app", "v1", image_manifest(client, "app"))
        assert check.check_now() is None
        alive = client.get("/")  # distribution's alive("/"), for load balancers
        assert (alive.status_code, alive.content) == (200, b"")
        root.rename(tmp_path / "away")
        root.symlink_to(root)
        assert check.check_now() is None  # one failure: below the threshold
        assert httpx.get(f"{debug}/debug/health").status_code == 200
        reason = check.check_now()
        assert reason
        r = httpx.get(f"{debug}/debug/health")
        assert r.status_code == 503
        assert r.json() == {"storagedriver_local": reason}
        r = client.get("/v2/app/manifests/v1")
        assert r.status_code == 503
        assert r.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert "debug/health" in r.json()["errors"][0]["detail"]
        assert client.get("/").status_code == 503
        samples = scrape(debug)
        assert value(samples, "regtool_health_status", check="storagedriver_local") == 0
        root.unlink()
        (tmp_path / "away").rename(root)
        assert check.check_now() is None
        assert httpx.get(f"{debug}/debug/health").status_code == 200
        assert client.get("/v2/app/manifests/v1").status_code == 200


def test_health_checks_run_on_their_interval(
    serve_registry: Serve, tmp_path: Path, debug_listener: Callable[[Operations], str]
) -> None:
    root = tmp_path / "store"
    root.mkdir()
    ops = operations(health=HealthSettings(True, interval=0.05, threshold=1))
    serve_registry(LocalDriver(root), ops=ops)
    debug = debug_listener(ops)
    root.rename(tmp_path / "away")
    root.symlink_to(root)

    def status_becomes(code: int) -> None:
        deadline = time.monotonic() + 10
        while httpx.get(f"{debug}/debug/health").status_code != code:
            assert time.monotonic() < deadline, f"/debug/health never answered {code}"
            time.sleep(0.02)

    status_becomes(503)
    root.unlink()
    (tmp_path / "away").rename(root)
    status_becomes(200)


@pytest.mark.swift
def test_health_of_swift_unavailable_and_back(swift_service: Any) -> None:
    """Swift answering 503 to everything (its proxy down behind a load balancer) fails
    the check once `threshold` checks in a row failed; the first good answer clears it."""
    from regtool.server.health import Health, storage_probe
    from regtool.storage.swift import SwiftDriver
    from tests.services.swift_faults import SwiftFaultProxy

    container = f"health-{uuid.uuid4().hex[:8]}"
    swift_service.create_container(container)
    with SwiftFaultProxy(swift_service.auth_url) as faults:
        driver = SwiftDriver(faults.credentials(), container)
        try:
            check = HealthCheck(
                "storagedriver_swift",
                storage_probe(driver),
                HealthSettings(True, 10.0, threshold=2),
            )
            health = Health([check])
            assert check.check_now() is None
            faults.answer(None, "", 503, times=None)
            assert check.check_now() is None
            assert check.check_now() is not None
            status, body = health.body()
            assert status == 503 and "storagedriver_swift" in json.loads(body)
            faults.clear()
            assert check.check_now() is None
            assert health.body() == (200, b"{}")
        finally:
            driver.close()

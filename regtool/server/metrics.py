"""`regtool serve`'s Prometheus metrics (prometheus-client), named by Prometheus's
conventions (`regtool_` prefix, base units, `_total` counters):

- `regtool_http_requests_total{method,route,status}` and
  `regtool_http_request_duration_seconds{method,route}` (a histogram);
- `regtool_http_received_bytes_total{route}`, `regtool_http_sent_bytes_total{route}`:
  request and response bodies;
- `regtool_http_requests_in_progress`, `regtool_uploads_in_progress` (requests writing
  to an upload);
- `regtool_storage_operations_total{driver,operation}`,
  `regtool_storage_errors_total{driver,operation}` (`MeteredDriver`);
- `regtool_upload_purge_runs_total{outcome}`, `regtool_upload_purge_deleted_total`;
- `regtool_notification_events_total{endpoint,outcome}` (sent, failed, dropped) and
  `regtool_notification_queue_length{endpoint}`;
- `regtool_health_status{check}` (1 healthy, 0 failing).

`route` is the API route the request matched (`base`, `catalog`, `tags`, `manifests`,
`uploads`, `blobs`, `referrers`), or `other`. Each `Metrics` has its own registry, so
several apps in one process count apart.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: HTTP methods counted by name; anything else is `other` (labels stay few).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Seconds: from a cached manifest to a large blob streamed.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Every metric of one server, in its own `CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "regtool_http_requests", "HTTP requests answered.", ["method", "route", "status"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "regtool_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.received = Counter(
            "regtool_http_received_bytes", "Request body bytes received.", ["route"], registry=r
        )
        self.sent = Counter(
            "regtool_http_sent_bytes", "Response body bytes sent.", ["route"], registry=r
        )
        self.in_progress = Gauge(
            "regtool_http_requests_in_progress", "Requests being answered.", registry=r
        )
        self.uploads = Gauge(
            "regtool_uploads_in_progress", "Requests writing to a blob upload.", registry=r
        )
        self.storage_ops = Counter(
            "regtool_storage_operations",
            "Storage driver calls.",
            ["driver", "operation"],
            registry=r,
        )
        self.storage_errors = Counter(
            "regtool_storage_errors",
            "Storage driver calls that failed (a missing path is not a failure).",
            ["driver", "operation"],
            registry=r,
        )
        self.purge_runs = Counter(
            "regtool_upload_purge_runs", "Upload purge runs.", ["outcome"], registry=r
        )
        self.purged = Counter(
            "regtool_upload_purge_deleted", "Uploads deleted by purging.", registry=r
        )
        self.events = Counter(
            "regtool_notification_events",
            "Notification events by endpoint and what became of them.",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.queue = Gauge(
            "regtool_notification_queue_length",
            "Events waiting for delivery to an endpoint.",
            ["endpoint"],
            registry=r,
        )
        self.health = Gauge(
            "regtool_health_status", "1 while a health check passes, else 0.", ["check"],
            registry=r,
        )  # fmt: skip
        # labels() takes a lock and builds a key each call: children kept by label values
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def exposition(self) -> tuple[bytes, str]:
        """The text format (version 0.0.4) and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def set_route(scope: Scope, route: str) -> None:
    """Name the route a request matched, for its metrics (`scope["state"]`)."""
    scope.setdefault("state", {})["route"] = route


class MetricsMiddleware:
    """Counts every HTTP request: status, latency, body bytes each way. Reads the route
    `dispatch` matched from `scope["state"]`."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        m = self.metrics
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        status = 500  # a request that ends without an answer failed
        received = sent = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        m.in_progress.inc()
        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            m.in_progress.dec()
            route = state.get("route", "other")
            method = scope["method"] if scope["method"] in METHODS else "other"
            m.child(m.requests, method, route, str(status)).inc()
            m.child(m.latency, method, route).observe(time.perf_counter() - started)
            if received:
                m.child(m.received, route).inc(received)
            if sent:
                m.child(m.sent, route).inc(sent)

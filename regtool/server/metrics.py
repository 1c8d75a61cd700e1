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

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Scope

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
        # count_request's four children by (method, route, status), found in one look-up
        self._by_request: dict[tuple[str, str, int], tuple[Any, Any, Any, Any]] = {}
        #: Requests being answered and requests writing to an upload: counted by the event
        #: loop's thread alone, as plain numbers, which the gauges read when scraped (a
        #: gauge's inc and dec each take a lock and check the metric, twice a request).
        self.requests_in_progress = 0
        self.uploads_in_progress = 0
        self.in_progress.set_function(lambda: self.requests_in_progress)
        self.uploads.set_function(lambda: self.uploads_in_progress)

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def count_request(
        self, method: str, route: str, status: int, seconds: float, received: int, sent: int
    ) -> None:
        """One HTTP request answered: its `method`, the `route` it matched (`set_route`;
        `other`), its `status`, `seconds` from its arrival to the end of its answer, and
        its body bytes each way."""
        key = (method, route, status)
        children = self._by_request.get(key)
        if children is None:
            method = method if method in METHODS else "other"
            children = self._by_request[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
                self.received.labels(route),
                self.sent.labels(route),
            )
        count, latency, received_bytes, sent_bytes = children
        count.inc()
        latency.observe(seconds)
        if received:
            received_bytes.inc(received)
        if sent:
            sent_bytes.inc(sent)

    def exposition(self) -> tuple[bytes, str]:
        """The text format (version 0.0.4) and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def set_route(scope: Scope, route: str) -> None:
    """Name the route a request matched, for its metrics (`scope["state"]`)."""
    scope.setdefault("state", {})["route"] = route

"""Delivering events to webhook endpoints, as distribution's `Endpoint` (`endpoint.go`,
`sinks.go`, `http.go` at release/2.8) does, with one difference: the queue is bounded.

Per endpoint, events its `ignore` rules do not filter out wait in a queue of at most
`queue_size` events; a thread POSTs them, up to `BATCH` in one envelope (gathered for up to `LINGER`
seconds), with the
endpoint's `headers` and `timeout`. A 2xx or 3xx answer delivers them; anything else
fails the attempt, and the same events are sent again: at once while fewer than
`threshold` attempts failed in a row, then once every `backoff` seconds, until one
succeeds (distribution's retrying sink). While an endpoint is slow or dead its queue
fills; events arriving at a full queue are dropped and counted
(`regtool_notification_events_total{outcome="dropped"}`), so memory stays bounded and
no request waits.
"""

from __future__ import annotations

import http.client
import itertools
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

from regtool.server.notifications.events import EVENTS_MEDIA_TYPE, Event, envelope
from regtool.server.ops_settings import EndpointSettings, NotificationSettings

log = logging.getLogger(__name__)

#: Most events sent in one envelope.
BATCH = 100
#: Seconds a first event waits for others to share its POST: a busy registry sends
#: one POST per many events, not one each (the receiver sees them that much later).
LINGER = 0.1

#: `count(endpoint name, outcome, n)`: outcome is sent, failed or dropped.
Counter = Callable[[str, str, int], None]


class Endpoint:
    """One endpoint's queue and delivery thread (started by `start`)."""

    def __init__(
        self,
        settings: EndpointSettings,
        queue_size: int,
        count: Counter | None = None,
        post: Callable[[bytes], int] | None = None,
    ):
        self.settings = settings
        self.queue_size = queue_size
        self.count = count or (lambda name, outcome, n: None)
        # One writer at a time (the event loop), one reader (the delivery thread): deque
        # appends and pops are atomic, so the request's path takes no lock but an
        # Event's, and that only to wake an idle thread.
        self._queue: deque[Event] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: http.client.HTTPConnection | None = None  # kept alive between POSTs
        self._post = post or self._http_post
        self.delivered = 0  # events, for tests and logs

    @property
    def name(self) -> str:
        return self.settings.name

    def __len__(self) -> int:
        return len(self._queue)

    def wants(self, event: Event) -> bool:
        s = self.settings
        if event.action in s.ignored_actions:
            return False
        return event.target.media_type not in s.ignored_media_types

    def write(self, events: list[Event]) -> None:
        """Queue `events` this endpoint wants, dropping those past `queue_size`; never
        blocks."""
        wanted = [e for e in events if self.wants(e)]
        if not wanted:
            return
        room = max(self.queue_size - len(self._queue), 0)
        self._queue.extend(wanted[:room])
        if not self._wake.is_set():
            self._wake.set()
        dropped = len(wanted) - room
        if dropped > 0:
            self.count(self.name, "dropped", dropped)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"notify-{self.name}", daemon=True)
        self._thread.start()

    def close(self, wait: float = 1.0) -> None:
        """Stop delivering (what is queued is given `wait` seconds to go, no more)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=wait)
            if not self._thread.is_alive() and self._conn is not None:
                self._conn.close()

    def _next(self) -> list[Event] | None:
        """The events to send next (they stay queued until sent); None once closed and
        nothing is left."""
        while not self._queue:
            if self._stop.is_set():
                return None
            self._wake.wait()
            self._wake.clear()  # then the queue is looked at again: no wake-up is lost
        if len(self._queue) < BATCH:
            self._stop.wait(LINGER)
        return list(itertools.islice(self._queue, BATCH))

    def _run(self) -> None:
        failures = 0
        while (batch := self._next()) is not None:
            try:
                status = self._post(envelope(batch))
                error = None if 200 <= status < 400 else f"answered {status}"
            except (http.client.HTTPException, OSError) as e:
                error = type(e).__name__
            if error is None:
                failures = 0
                for _ in batch:
                    self._queue.popleft()
                self.delivered += len(batch)
                self.count(self.name, "sent", len(batch))
                continue
            failures += 1
            self.count(self.name, "failed", len(batch))
            if failures == self.settings.threshold:
                log.warning(
                    "notification endpoint %s: %s; retrying every %gs",
                    self.name,
                    error,
                    self.settings.backoff,
                )
            if failures >= self.settings.threshold:
                self._stop.wait(self.settings.backoff)
            if self._stop.is_set():
                return

    def _http_post(self, body: bytes) -> int:
        """POST `body`, on a connection kept alive between POSTs (http.client: a fraction
        of the CPU time a higher-level client spends, time the registry's requests
        share); a kept connection the endpoint closed meanwhile is opened again once.
        Returns the status."""
        headers = {"Content-Type": EVENTS_MEDIA_TYPE}
        for key, value in self.settings.headers:  # repeated names: joined, as HTTP allows
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        reused = self._conn is not None
        try:
            return self._post_once(body, headers)
        except (http.client.HTTPException, OSError):
            if not reused:
                raise
        return self._post_once(body, headers)

    def _post_once(self, body: bytes, headers: dict[str, str]) -> int:
        url = urlsplit(self.settings.url)
        if self._conn is None:
            https = url.scheme == "https"
            kind = http.client.HTTPSConnection if https else http.client.HTTPConnection
            self._conn = kind(url.netloc, timeout=self.settings.timeout)
        conn = self._conn
        try:
            conn.request(
                "POST", (url.path or "/") + (f"?{url.query}" if url.query else ""), body, headers
            )
            response = conn.getresponse()
            response.read()
        except BaseException:
            conn.close()
            self._conn = None
            raise
        if response.will_close:
            conn.close()
            self._conn = None
        return response.status


class Notifier:
    """Every configured endpoint; `write` hands events to each. `source` is this
    registry as events name it (`addr`: host name and port)."""

    def __init__(
        self,
        settings: NotificationSettings,
        source_addr: str = "",
        count: Counter | None = None,
    ):
        self.settings = settings
        self.endpoints = [Endpoint(e, settings.queue_size, count) for e in settings.endpoints]
        host = socket.gethostname()
        self.source = {"addr": f"{host}:{source_addr.rsplit(':', 1)[-1]}" if source_addr else host}

    def write(self, events: list[Event]) -> None:
        for endpoint in self.endpoints:
            endpoint.write(events)

    def start(self) -> None:
        for endpoint in self.endpoints:
            endpoint.start()

    def close(self) -> None:
        for endpoint in self.endpoints:
            endpoint.close()

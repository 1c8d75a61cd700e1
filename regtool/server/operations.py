"""What runs beside the registry's API to operate it: metrics, health checks, webhook
notifications and upload purging, built from the server's settings (`from_settings`).

    ops = Operations.from_settings(settings)
    app = create_app(driver, settings=settings, ops=ops)   # binds storage; each request's
                                                           # life (`request_life`) uses it
    ops.start()       # the threads: health checks, notification delivery, purging
    ...
    ops.close()

Nothing runs until `start`; an `Operations()` has everything off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from regtool.facts import ManifestFacts
from regtool.server.health import Health, HealthCheck, storage_probe
from regtool.server.metrics import Metrics
from regtool.server.notifications import Notifier
from regtool.server.ops_settings import (
    DebugSettings,
    HealthSettings,
    NotificationSettings,
    UploadPurgeSettings,
)
from regtool.server.purge import UploadPurger
from regtool.server.upload_store import UploadStore
from regtool.storage.base import Driver
from regtool.storage.observed import ObservedDriver


@dataclass
class Operations:
    debug: DebugSettings = field(default_factory=DebugSettings)
    health_settings: HealthSettings = field(default_factory=HealthSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    upload_purging: UploadPurgeSettings = field(
        default_factory=lambda: UploadPurgeSettings(enabled=False)
    )
    #: where the registry listens (HOST:PORT), named as the events' source
    addr: str = ""
    metrics: Metrics | None = None
    health: Health = field(default_factory=Health)
    notifier: Notifier | None = None
    purger: UploadPurger | None = None

    @classmethod
    def from_settings(
        cls,
        debug: DebugSettings,
        health: HealthSettings,
        notifications: NotificationSettings,
        upload_purging: UploadPurgeSettings,
        addr: str = "",
    ) -> Operations:
        """Metrics when `debug.prometheus` is on; a notifier when endpoints are set."""
        ops = cls(debug, health, notifications, upload_purging, addr)
        ops.metrics = Metrics() if debug.prometheus else None
        if notifications.endpoints:
            ops.notifier = Notifier(notifications, addr, ops._count_event)
        return ops

    def _count_event(self, endpoint: str, outcome: str, n: int) -> None:
        if self.metrics is not None:
            self.metrics.child(self.metrics.events, endpoint, outcome).inc(n)
            if self.notifier is not None:
                for e in self.notifier.endpoints:
                    self.metrics.child(self.metrics.queue, e.name).set(len(e))

    def observe(self, driver: Driver) -> Driver:
        """`driver`, its calls counted when there are metrics."""
        metrics = self.metrics
        if metrics is None:
            return driver
        name = driver.name

        def observe(operation: str, failed: bool) -> None:
            metrics.child(metrics.storage_ops, name, operation).inc()
            if failed:
                metrics.child(metrics.storage_errors, name, operation).inc()

        return ObservedDriver(driver, observe)

    def bind(
        self, driver: Driver, uploads: UploadStore, facts: ManifestFacts | None = None
    ) -> None:
        """The storage the checks probe and the purger cleans (`facts`: the cache of what
        its large objects name)."""
        if self.health_settings.enabled:
            check = HealthCheck(
                f"storagedriver_{driver.name}",
                storage_probe(driver),
                self.health_settings,
                self._health_changed,
            )
            self.health = Health([check])
        if self.upload_purging.enabled:
            self.purger = UploadPurger(uploads, self.upload_purging, self._purged, facts=facts)

    def _health_changed(self, ok: bool) -> None:
        if self.metrics is not None:
            for check in self.health.checks:
                self.metrics.child(self.metrics.health, check.name).set(check.failure is None)

    def _purged(self, outcome: str, deleted: int) -> None:
        if self.metrics is not None:
            self.metrics.child(self.metrics.purge_runs, outcome).inc()
            self.metrics.purged.inc(deleted)

    def start(self) -> None:
        self.health.start()
        if self.notifier is not None:
            self.notifier.start()
        if self.purger is not None:
            self.purger.start()

    def close(self) -> None:
        if self.purger is not None:
            self.purger.close()
        if self.notifier is not None:
            self.notifier.close()
        self.health.close()

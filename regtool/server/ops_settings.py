"""How `regtool serve` is operated: its debug listener (`http.debug`), storage health
checks (`health.storagedriver`), webhook notifications (`notifications.endpoints`) and
upload purging (`storage.maintenance.uploadpurging`). One frozen dataclass per section,
each read from the top level of distribution 2.8's configuration file by `from_config`,
with distribution's defaults; `UsageError` naming the key for an invalid value."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

from regtool.config.values import BadValue
from regtool.config.values import go_duration as go_timedelta
from regtool.errors import UsageError
from regtool.url_secrets import split_userinfo

#: Every key these sections read, dotted from the top level (an endpoint's keys are
#: those of each item of `notifications.endpoints`), for the config's known-key list.
KNOWN_KEYS = (
    "http.debug.addr",
    "http.debug.prometheus.enabled",
    "http.debug.prometheus.path",
    "health.storagedriver.enabled",
    "health.storagedriver.interval",
    "health.storagedriver.threshold",
    "notifications.events.includereferences",
    "notifications.endpoints",
    "storage.maintenance.uploadpurging.enabled",
    "storage.maintenance.uploadpurging.age",
    "storage.maintenance.uploadpurging.interval",
    "storage.maintenance.uploadpurging.dryrun",
)
ENDPOINT_KEYS = (
    "name",
    "disabled",
    "url",
    "headers",
    "timeout",
    "threshold",
    "backoff",
    "ignoredmediatypes",
    "ignore.mediatypes",
    "ignore.actions",
)

#: The longest duration taken (Go's time.Duration ends at about 292 years).
_MAX_SECONDS = 100 * 365 * 86400.0


def go_duration(value: Any, key: str, *, strings_only: bool = False) -> float:
    """Seconds of a duration as distribution's YAML takes it (`config.values.go_duration`:
    Go's `time.ParseDuration`, a bare integer nanoseconds, unless `strings_only`:
    `uploadpurging` wants strings). Negative durations are refused. `UsageError` naming
    `key` otherwise."""
    if strings_only and not isinstance(value, str):
        raise UsageError(f"{key}: {str(value)[:40]!r} is not a duration such as 10s or 24h")
    try:
        seconds = go_timedelta(value).total_seconds()
    except BadValue as e:
        raise UsageError(f"{key}: {e}") from None
    if not 0 <= seconds <= _MAX_SECONDS:
        raise UsageError(f"{key}: {str(value)[:40]!r} is out of range")
    return seconds


def section(doc: dict[str, Any], path: str) -> dict[str, Any]:
    """The mapping at dotted `path` of `doc` (`{}` where absent or null); `UsageError`
    naming the key when something else is there."""
    here: Any = doc
    walked = []
    for key in path.split("."):
        walked.append(key)
        here = here.get(key) if isinstance(here, dict) else None
        if here is None:
            return {}
        if not isinstance(here, dict):
            raise UsageError(f"{'.'.join(walked)} in the config file must be a mapping")
    found: dict[str, Any] = here
    return found


def _bool(sec: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = sec.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise UsageError(f"{where}.{key}: {str(value)[:40]!r} is not true or false")
    return value


def _int(sec: dict[str, Any], key: str, where: str, default: int) -> int:
    value = sec.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{where}.{key}: {str(value)[:40]!r} is not a whole number >= 0")
    return value


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{key} must be a list of strings")
    return tuple(value)


@dataclass(frozen=True)
class DebugSettings:
    """`http.debug`: `addr` (HOST:PORT of a second listener; None: none) serving `/`,
    `/debug/health` and, when `prometheus` is on, the metrics at `prometheus_path`."""

    addr: str | None = None
    prometheus: bool = False
    prometheus_path: str = "/metrics"

    @classmethod
    def from_config(cls, doc: dict[str, Any]) -> DebugSettings:
        debug = section(doc, "http.debug")
        prom = section(doc, "http.debug.prometheus")
        addr = debug.get("addr")
        if addr is not None and (not isinstance(addr, str) or not addr):
            raise UsageError("http.debug.addr must be HOST:PORT")
        path = prom.get("path") or "/metrics"
        if not isinstance(path, str) or not path.startswith("/"):
            raise UsageError(f"http.debug.prometheus.path: {str(path)[:40]!r} must start with /")
        enabled = _bool(prom, "enabled", "http.debug.prometheus", False)
        return cls(addr or None, enabled, path)


@dataclass(frozen=True)
class HealthSettings:
    """`health.storagedriver`: whether storage is checked (a listing of its root) every
    `interval` seconds, and after how many failed checks in a row the registry reports
    itself unhealthy (`threshold`; 0 as distribution: the first failure)."""

    enabled: bool = False
    interval: float = 10.0
    threshold: int = 0

    @classmethod
    def from_config(cls, doc: dict[str, Any]) -> HealthSettings:
        where = "health.storagedriver"
        sec = section(doc, where)
        raw = sec.get("interval")
        interval = 10.0 if raw in (None, 0) else go_duration(raw, f"{where}.interval")
        if interval <= 0:
            interval = 10.0  # distribution: a zero interval is its default
        return cls(_bool(sec, "enabled", where, False), interval, _int(sec, "threshold", where, 0))


@dataclass(frozen=True)
class EndpointSettings:
    """One of `notifications.endpoints` (distribution's `configuration.Endpoint`, with
    its defaults: timeout 1 s, threshold 10, backoff 1 s). `headers` are sent with every
    POST; events whose target media type is in `ignored_media_types` (both of
    distribution's spellings, merged) or whose action is in `ignored_actions` are not.
    `url` carries no user or password: those of the configured URL are sent as Basic
    `Authorization`, as distribution sends them, unless `headers` give one."""

    name: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 1.0
    threshold: int = 10
    backoff: float = 1.0
    ignored_media_types: frozenset[str] = frozenset()
    ignored_actions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class NotificationSettings:
    """`notifications.endpoints` that are not `disabled`; `queue_size` is regtool's: the
    most events an endpoint holds undelivered before it drops new ones (counted)."""

    endpoints: tuple[EndpointSettings, ...] = ()
    queue_size: int = 10000
    include_references: bool = False

    @classmethod
    def from_config(cls, doc: dict[str, Any]) -> NotificationSettings:
        sec = section(doc, "notifications")
        raw = sec.get("endpoints")
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise UsageError("notifications.endpoints must be a list")
        endpoints = []
        for i, item in enumerate(raw):
            where = f"notifications.endpoints[{i}]"
            if not isinstance(item, dict):
                raise UsageError(f"{where} must be a mapping")
            if _bool(item, "disabled", where, False):
                continue
            endpoints.append(_endpoint(item, where))
        names = [e.name for e in endpoints]
        if len(set(names)) != len(names):
            raise UsageError("notifications.endpoints: two endpoints have the same name")
        events = section(doc, "notifications.events")
        refs = _bool(events, "includereferences", "notifications.events", False)
        return cls(tuple(endpoints), include_references=refs)


def _endpoint(item: dict[str, Any], where: str) -> EndpointSettings:
    name, url = item.get("name"), item.get("url")
    if not isinstance(name, str) or not name:
        raise UsageError(f"{where}.name is missing")
    if not isinstance(url, str) or not re.match(r"https?://[^/?#\s]+", url, re.ASCII):
        raise UsageError(f"{where}.url must be an http:// or https:// URL")
    url, userinfo = split_userinfo(url)
    headers = []
    raw = item.get("headers") or {}
    if not isinstance(raw, dict):
        raise UsageError(f"{where}.headers must be a mapping of names to lists of values")
    for key, values in raw.items():
        listed = values if isinstance(values, list) else [values]
        if not isinstance(key, str) or not all(isinstance(v, str) for v in listed):
            raise UsageError(f"{where}.headers.{key}: values must be strings")
        headers += [(key, v) for v in listed]
    if userinfo is not None and not any(k.lower() == "authorization" for k, _ in headers):
        # as distribution's HTTP client (Go's) sends a URL's user and password
        credentials = base64.b64encode(":".join(userinfo).encode()).decode()
        headers.append(("Authorization", f"Basic {credentials}"))
    ignore = item.get("ignore") or {}
    if not isinstance(ignore, dict):
        raise UsageError(f"{where}.ignore must be a mapping")
    media = _strings(item.get("ignoredmediatypes"), f"{where}.ignoredmediatypes")
    media += _strings(ignore.get("mediatypes"), f"{where}.ignore.mediatypes")
    timeout, backoff = item.get("timeout"), item.get("backoff")
    # distribution: zero (or absent) means its default
    return EndpointSettings(
        name,
        url,
        tuple(headers),
        timeout=(go_duration(timeout, f"{where}.timeout") or 1.0) if timeout else 1.0,
        threshold=_int(item, "threshold", where, 10) or 10,
        backoff=(go_duration(backoff, f"{where}.backoff") or 1.0) if backoff else 1.0,
        ignored_media_types=frozenset(media),
        ignored_actions=frozenset(_strings(ignore.get("actions"), f"{where}.ignore.actions")),
    )


@dataclass(frozen=True)
class UploadPurgeSettings:
    """`storage.maintenance.uploadpurging`: uploads untouched for `age` seconds are
    deleted every `interval` seconds (the first run after a random delay of up to an
    hour, as distribution, or of `interval` when that is shorter); `dry_run` only logs
    what would go. distribution's defaults: enabled, 168h, 24h, not a dry run."""

    enabled: bool = True
    age: float = 168 * 3600.0
    interval: float = 24 * 3600.0
    dry_run: bool = False
    first_delay: float | None = field(default=None, compare=False)  # None: random

    @classmethod
    def from_config(cls, doc: dict[str, Any]) -> UploadPurgeSettings:
        where = "storage.maintenance.uploadpurging"
        sec = section(doc, where)
        if not sec:
            return cls()
        if sec.get("enabled") is False:
            return cls(enabled=False)
        # distribution refuses a section that leaves any of these out
        for key in ("age", "interval", "dryrun"):
            if key not in sec:
                raise UsageError(f"{where}.{key} is missing")
        age = go_duration(sec["age"], f"{where}.age", strings_only=True)
        interval = go_duration(sec["interval"], f"{where}.interval", strings_only=True)
        if interval <= 0:
            raise UsageError(f"{where}.interval must be longer than 0")
        return cls(True, age, interval, _bool(sec, "dryrun", where, False))

"""`REGISTRY_*` variables over a config file, as distribution 2.8's parser applies them,
checked against the settings `regtool serve` ends up with."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from regtool.cli.serve import read_settings
from regtool.config import from_document, load_config
from regtool.errors import UsageError
from regtool.location import location_from_document

BASE = {
    "version": "0.1",
    "storage": {"filesystem": {"rootdirectory": "/srv/a"}, "delete": {"enabled": True}},
    "http": {"addr": ":5000", "headers": {"X-Content-Type-Options": ["nosniff"]}},
    "auth": {"htpasswd": {"realm": "r", "path": "/etc/htpasswd"}},
}


def settings_with(env: dict[str, str], doc: dict[str, Any] | None = None) -> Any:
    import copy

    from regtool.server.settings import ServerSettings

    config = from_document(copy.deepcopy(doc or BASE), env, "config.yml")
    return ServerSettings.from_config(config), config


@pytest.mark.parametrize(
    "env, read, expected",
    [
        ({"REGISTRY_HTTP_ADDR": "0.0.0.0:6000"}, lambda s, c: s.http.addr, "0.0.0.0:6000"),
        # a Go field name, not the YAML key, names the variable: RelativeURLs
        ({"REGISTRY_HTTP_RELATIVEURLS": "true"}, lambda s, c: s.http.relative_urls, True),
        (
            {"REGISTRY_HTTP_DRAINTIMEOUT": "90s"},
            lambda s, c: s.http.drain_timeout,
            timedelta(seconds=90),
        ),
        # a bare number is nanoseconds in Go's time.Duration
        (
            {"REGISTRY_HTTP_DRAINTIMEOUT": "1500000000"},
            lambda s, c: s.http.drain_timeout,
            timedelta(seconds=1.5),
        ),
        # an explicit 0 cuts requests at once; absent, regtool waits 5 s
        ({"REGISTRY_HTTP_DRAINTIMEOUT": "0"}, lambda s, c: s.http.drain_timeout, timedelta(0)),
        ({}, lambda s, c: s.http.drain_timeout, timedelta(seconds=5)),
        ({"REGISTRY_HTTP_PREFIX": "/registry/"}, lambda s, c: s.http.prefix, "/registry"),
        (
            {"REGISTRY_HTTP_HOST": "https://r.example.com"},
            lambda s, c: s.http.host,
            "https://r.example.com",
        ),
        ({"REGISTRY_HTTP_SECRET": "s3cr3t"}, lambda s, c: s.http.secret, "s3cr3t"),
        (
            {"REGISTRY_HTTP_NET": "unix", "REGISTRY_HTTP_ADDR": "/run/r.sock"},
            lambda s, c: (s.http.net, s.http.addr),
            ("unix", "/run/r.sock"),
        ),
        # a header given anew: the map key is new and written in lower case
        (
            {"REGISTRY_HTTP_HEADERS_X-FRAME-OPTIONS": "[DENY]"},
            lambda s, c: s.http.headers,
            (("X-Content-Type-Options", "nosniff"), ("x-frame-options", "DENY")),
        ),
        ({"REGISTRY_LOG_LEVEL": "debug"}, lambda s, c: s.log.level, "debug"),
        ({"REGISTRY_LOGLEVEL": "warn"}, lambda s, c: s.log.level, "warn"),
        ({"REGISTRY_LOG_FORMATTER": "json"}, lambda s, c: s.log.formatter, "json"),
        (
            {"REGISTRY_LOG_FIELDS": "{service: registry}"},
            lambda s, c: s.log.fields,
            (("service", "registry"),),
        ),
        ({"REGISTRY_LOG_ACCESSLOG_DISABLED": "true"}, lambda s, c: s.log.access_log, False),
        ({"REGISTRY_STORAGE_DELETE_ENABLED": "false"}, lambda s, c: s.delete_enabled, False),
        (
            {"REGISTRY_STORAGE_MAINTENANCE_READONLY": "{enabled: true}"},
            lambda s, c: s.read_only,
            True,
        ),
        ({"REGISTRY_AUTH_HTPASSWD_REALM": "other"}, lambda s, c: s.realm, "other"),
        (
            {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/srv/b"},
            lambda s, c: location_from_document(c).path,
            "/srv/b",
        ),
        # REGISTRY_STORAGE replaces the section before its keys apply (lexical order)
        (
            {
                "REGISTRY_STORAGE_SWIFT_AUTHURL": "http://127.0.0.1:8080/auth/v1.0",
                "REGISTRY_STORAGE_SWIFT_USERNAME": "test:tester",
                "REGISTRY_STORAGE_SWIFT_PASSWORD": "testing",
                "REGISTRY_STORAGE_SWIFT_CONTAINER": "docker_registry",
                "REGISTRY_STORAGE_SWIFT_CHUNKSIZE": "5242880",
                "REGISTRY_STORAGE": "swift",
            },
            lambda s, c: (
                location_from_document(c).container,
                location_from_document(c).segment_size,
            ),
            ("docker_registry", 5242880),
        ),
        # keys of the other parts of the server get the overrides too
        ({"REGISTRY_HTTP_DEBUG_ADDR": ":5001"}, lambda s, c: c.get("http.debug.addr"), ":5001"),
        (
            {"REGISTRY_HEALTH_STORAGEDRIVER_ENABLED": "true"},
            lambda s, c: c.get("health.storagedriver"),
            {"enabled": True},
        ),
        (
            {"REGISTRY_NOTIFICATIONS_EVENTCONFIG_INCLUDEREFERENCES": "true"},
            lambda s, c: c.get("notifications.events.includereferences"),
            True,
        ),
        (  # a whole section from one variable, read by the purging's settings
            {
                "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING": (
                    "{enabled: true, age: 72h, interval: 1h, dryrun: false}"
                )
            },
            lambda s, c: (s.upload_purging.age, s.upload_purging.interval),
            (72 * 3600.0, 3600.0),
        ),
    ],
)
def test_environment_overrides(env: dict[str, str], read: Any, expected: Any) -> None:
    settings, config = settings_with(env)
    assert read(settings, config) == expected
    assert config.warnings == ()


def test_a_map_key_matches_without_regard_to_case() -> None:
    doc = {**BASE, "storage": {"Filesystem": {"RootDirectory": "/a"}}}
    _, config = settings_with({"REGISTRY_STORAGE_FILESYSTEM_MAXTHREADS": "50"}, doc)
    assert config.get("storage.Filesystem.maxthreads") == 50


def test_flags_win_over_file_and_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        "version: 0.1\nstorage: {filesystem: {rootdirectory: /a}}\nhttp: {addr: ':5000'}\n"
    )
    env = {"REGISTRY_HTTP_ADDR": ":6000", "REGISTRY_HTTP_DRAINTIMEOUT": "9s"}
    settings, _ = read_settings(
        str(cfg), env, addr="127.0.0.1:7000", drain_timeout=timedelta(seconds=2)
    )
    assert settings.http.addr == "127.0.0.1:7000"
    assert settings.http.drain_timeout == timedelta(seconds=2)
    settings, _ = read_settings(str(cfg), env)
    assert settings.http.addr == ":6000" and settings.http.drain_timeout == timedelta(seconds=9)


@pytest.mark.parametrize(
    "env, warning",
    [
        ({"REGISTRY_HTTP_ADR": ":1"}, "REGISTRY_HTTP_ADR: no such configuration key; ignored"),
        ({"REGISTRY_FOO": "1"}, "REGISTRY_FOO: no such configuration key; ignored"),
        (
            {"REGISTRY_HTTP_TLS_CLIENTCAS_0": "/ca"},
            "REGISTRY_HTTP_TLS_CLIENTCAS_0: http.tls.clientcas is not a mapping; ignored",
        ),
        ({"REGISTRY_STORAGE_SWIFT_CONTIANER": "x"}, None),  # a new driver: refused below
        ({"REGISTRY_REDIS_ADDR": "r:6379"}, "redis: regtool does not act on this key; ignored"),
        (
            {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIR": "/x"},
            "storage.filesystem.rootdir: unknown key; ignored",
        ),
    ],
)
def test_environment_that_names_nothing_warns(env: dict[str, str], warning: str | None) -> None:
    if warning is None:
        with pytest.raises(
            UsageError, match=r"storage .*must name one choice, not filesystem, swift"
        ):
            settings_with(env)
        return
    _, config = settings_with(env)
    assert warning in config.warnings


@pytest.mark.parametrize(
    "env, words",
    [
        (
            {"REGISTRY_HTTP_RELATIVEURLS": "maybe"},
            r"http\.relativeurls \(from REGISTRY_HTTP_RELATIVEURLS\): 'maybe' is not true or false",
        ),
        (
            {"REGISTRY_HTTP_DRAINTIMEOUT": "5x"},
            r"http\.draintimeout \(from REGISTRY_HTTP_DRAINTIMEOUT\): '5x' is not a duration",
        ),
        ({"REGISTRY_HTTP_ADDR": "[unclosed"}, r"REGISTRY_HTTP_ADDR is not a YAML value"),
        (
            {"REGISTRY_LOG_LEVEL": "loud"},
            r"log\.level \(from REGISTRY_LOG_LEVEL\): 'loud' is not one of error, warn, info",
        ),
        (
            {"REGISTRY_HTTP_HEADERS": "nosniff"},
            r"http\.headers \(from REGISTRY_HTTP_HEADERS\) must be a mapping",
        ),
        (
            {"REGISTRY_HTTP_TLS_CLIENTCAS": "/ca.pem"},
            r"http\.tls\.clientcas \(from REGISTRY_HTTP_TLS_CLIENTCAS\) must be a list",
        ),
    ],
)
def test_an_invalid_override_names_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(UsageError, match=words):
        settings_with(env)


def test_load_config_reports_file_problems(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text("version: 0.2\nstorage: {filesystem: {}}\n")
    with pytest.raises(UsageError, match=r"version in .*config\.yml: '0\.2' is not 0\.1"):
        load_config(cfg, {})
    cfg.write_text("- a list\n")
    with pytest.raises(UsageError, match="must be a mapping of sections"):
        load_config(cfg, {})

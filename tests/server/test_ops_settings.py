"""The operations sections of distribution's config file: defaults, values, and one
clear error naming the key for each invalid value."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from regtool.errors import UsageError
from regtool.server.ops_settings import (
    DebugSettings,
    EndpointSettings,
    HealthSettings,
    NotificationSettings,
    UploadPurgeSettings,
    go_duration,
)
from regtool.server.settings import ServerSettings

CONFIG = """
version: 0.1
storage:
  filesystem: {rootdirectory: /var/lib/registry}
  maintenance:
    uploadpurging: {enabled: true, age: 72h, interval: 12h, dryrun: true}
http:
  addr: :5000
  debug:
    addr: :5001
    prometheus: {enabled: true, path: /prom}
health:
  storagedriver: {enabled: true, interval: 30s, threshold: 3}
notifications:
  endpoints:
    - name: alistener
      url: https://hooks.example/events
      headers:
        Authorization: [Bearer s3cret]
      timeout: 500ms
      threshold: 5
      backoff: 2s
      ignoredmediatypes: [application/octet-stream]
      ignore:
        mediatypes: [application/vnd.oci.image.config.v1+json]
        actions: [pull]
    - name: off
      url: http://other/
      disabled: true
"""


def test_every_section_read_from_a_distribution_config() -> None:
    settings = ServerSettings.from_config(yaml.safe_load(CONFIG))
    assert settings.debug == DebugSettings(":5001", True, "/prom")
    assert settings.health == HealthSettings(True, 30.0, 3)
    assert settings.upload_purging == UploadPurgeSettings(True, 72 * 3600.0, 12 * 3600.0, True)
    assert settings.notifications.endpoints == (
        EndpointSettings(
            "alistener",
            "https://hooks.example/events",
            (("Authorization", "Bearer s3cret"),),
            timeout=0.5,
            threshold=5,
            backoff=2.0,
            ignored_media_types=frozenset(
                {"application/octet-stream", "application/vnd.oci.image.config.v1+json"}
            ),
            ignored_actions=frozenset({"pull"}),
        ),
    )


def test_distribution_defaults() -> None:
    settings = ServerSettings.from_config({"version": "0.1"})
    assert settings.debug == DebugSettings()
    assert settings.health == HealthSettings(False, 10.0, 0)
    assert settings.notifications == NotificationSettings()
    assert settings.upload_purging == UploadPurgeSettings(True, 168 * 3600.0, 24 * 3600.0, False)
    off = {"storage": {"maintenance": {"uploadpurging": {"enabled": False}}}}
    assert not ServerSettings.from_config(off).upload_purging.enabled
    endpoint = NotificationSettings.from_config(
        {"notifications": {"endpoints": [{"name": "a", "url": "http://h/"}]}}
    ).endpoints[0]
    assert (endpoint.timeout, endpoint.threshold, endpoint.backoff) == (1.0, 10, 1.0)


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"http": {"debug": {"prometheus": {"enabled": "yes"}}}}, "http.debug.prometheus.enabled"),
        ({"http": {"debug": {"prometheus": {"path": "metrics"}}}}, "http.debug.prometheus.path"),
        ({"http": {"debug": "on"}}, "http.debug"),
        ({"health": {"storagedriver": {"interval": "often"}}}, "health.storagedriver.interval"),
        ({"health": {"storagedriver": {"threshold": -1}}}, "health.storagedriver.threshold"),
        ({"notifications": {"endpoints": {"a": 1}}}, "notifications.endpoints"),
        ({"notifications": {"endpoints": [{"url": "http://h/"}]}}, "endpoints[0].name"),
        ({"notifications": {"endpoints": [{"name": "a", "url": "ftp://h"}]}}, "endpoints[0].url"),
        (
            {"notifications": {"endpoints": [{"name": "a", "url": "http://h", "timeout": "x"}]}},
            "endpoints[0].timeout",
        ),
        (
            {"notifications": {"endpoints": [{"name": "a", "url": "http://h", "headers": [1]}]}},
            "endpoints[0].headers",
        ),
        (
            {"storage": {"maintenance": {"uploadpurging": {"enabled": True, "age": "1h"}}}},
            "uploadpurging.interval",
        ),
        (
            {
                "storage": {
                    "maintenance": {
                        "uploadpurging": {"age": 3600, "interval": "1h", "dryrun": False}
                    }
                }
            },
            "uploadpurging.age",
        ),
    ],
)
def test_invalid_values_name_their_key(doc: dict[str, Any], key: str) -> None:
    with pytest.raises(UsageError, match=key.replace("[", r"\[").replace("]", r"\]")):
        ServerSettings.from_config(doc)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("1h30m", 5400.0), ("300ms", 0.3), ("0", 0.0), ("1.5h", 5400.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration(text, "k") == pytest.approx(seconds)
    assert go_duration(10_000_000_000, "k") == 10.0  # yaml.v2: an integer is nanoseconds

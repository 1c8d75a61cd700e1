"""Secrets of a configuration document hidden for showing, its shape kept."""

from __future__ import annotations

from regtool.config.redact import REDACTED, redacted


def test_every_secret_is_hidden_and_the_rest_kept() -> None:
    doc = {
        "storage": {
            "swift": {"username": "u", "password": "p1", "secretkey": "p2", "accesskey": "p3"},
            "sftp": {"host": "h", "password": "p4"},
        },
        "http": {"addr": ":5000", "secret": "p5", "headers": {"X-Frame-Options": ["DENY"]}},
        "notifications": {
            "endpoints": [{"name": "n", "url": "https://h/e", "headers": {"Authorization": ["p6"]}}]
        },
        "redis": {"addr": "r:6379", "password": "p7"},
        "proxy": {"remoteurl": "https://r", "username": "u", "password": "p8"},
        "middleware": {"storage": [{"name": "cloudfront", "options": {"privatekey": "p9"}}]},
    }
    shown = redacted(doc)
    assert not any(f"p{i}" in repr(shown) for i in range(1, 10)), shown
    assert shown["storage"]["swift"]["username"] == "u"
    assert shown["http"]["headers"] == {"X-Frame-Options": ["DENY"]}
    assert shown["notifications"]["endpoints"][0]["headers"] == {"Authorization": [REDACTED]}
    assert shown["notifications"]["endpoints"][0]["url"] == "https://h/e"
    assert shown["redis"] == {"addr": "r:6379", "password": REDACTED}
    assert doc["http"]["secret"] == "p5"  # a copy: the document itself unchanged

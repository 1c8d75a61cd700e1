"""What a V1 image's json must hold to become a V2 config clients can read: the types
Docker's image config has (docker/image/image.go `V1Image`, container `Config`), so a
tag whose json says `"created": "yesterday"` or `"Env": "A=1"` fails its migration with
the reason instead of making an image every client refuses to pull."""

from __future__ import annotations

import re
from typing import Any

# RFC 3339 as Go's time.Time reads it from JSON (fraction and zone optional forms).
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
_TEXT = ("author", "comment", "architecture", "os", "variant", "container", "docker_version")
_CONFIG_TEXT = ("Hostname", "Domainname", "User", "WorkingDir", "Image", "StopSignal")
_CONFIG_LISTS = ("Env", "Cmd", "Entrypoint", "OnBuild", "Shell")
_CONFIG_MAPS = ("ExposedPorts", "Volumes", "Labels")


def json_problem(doc: dict[str, Any]) -> str | None:
    """What in a V1 image json no V2 client could read, or None."""
    created = doc.get("created")
    if created is not None and not (isinstance(created, str) and _RFC3339.fullmatch(created)):
        return "created is not an RFC 3339 time"
    for key in _TEXT:
        if doc.get(key) is not None and not isinstance(doc[key], str):
            return f"{key} is not text"
    for key in ("config", "container_config"):
        problem = _config_problem(doc.get(key))
        if problem is not None:
            return f"{key}: {problem}"
    return None


def _config_problem(config: Any) -> str | None:
    if config is None:
        return None
    if not isinstance(config, dict):
        return "not an object"
    for key in _CONFIG_TEXT:
        if config.get(key) is not None and not isinstance(config[key], str):
            return f"{key} is not text"
    for key in _CONFIG_LISTS:
        value = config.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            return f"{key} is not a list of strings"
    for key in _CONFIG_MAPS:
        value = config.get(key)
        if value is not None and not isinstance(value, dict):
            return f"{key} is not an object"
    labels = config.get("Labels")
    if isinstance(labels, dict) and not all(isinstance(v, str) for v in labels.values()):
        return "Labels holds a value that is not text"
    return None

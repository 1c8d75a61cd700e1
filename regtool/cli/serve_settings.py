"""`regtool serve --check-config`: the effective settings as YAML, secrets hidden.

Shown: the storage (its LOCATION, redacted), every field of the settings object, and
the sections of the file that other parts of the server read themselves (`http.debug`,
`health`, `notifications`, `storage.maintenance.uploadpurging`), with their secrets
hidden too: `http.secret`, passwords, and every notification header's value (they
carry `Authorization`)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from regtool.config import ConfigDocument
    from regtool.location import Location
    from regtool.server.settings import ServerSettings

REDACTED = "<redacted>"
#: Keys whose values are secrets wherever they appear in a section shown as it is.
SECRET_KEYS = frozenset({"password", "secret", "secretkey", "accesskey", "headers", "token"})
#: Sections of the document shown as they are (read by the server's other parts).
PASSED_ON = ("http.debug", "health", "notifications", "storage.maintenance.uploadpurging")


def render_settings(
    settings: ServerSettings, loc: Location, document: ConfigDocument | None
) -> str:
    """The YAML text `--check-config` prints."""
    shown: dict[str, Any] = {"storage": loc.redacted(), **_plain(settings)}
    if document is not None:
        for key in PASSED_ON:
            value = document.get(key)
            if value is not None:
                shown[key] = _redacted(value)
        if document.origins:
            shown["environment"] = dict(sorted(document.origins.items()))
    return yaml.safe_dump(shown, sort_keys=False, default_flow_style=False)


def _plain(value: Any) -> Any:
    """Dataclasses, paths, durations and tuples as YAML's plain types; secret fields
    (`secret`, `password`) redacted."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            out[f.name] = REDACTED if f.name in ("secret", "password") and item else _plain(item)
        return out
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            str(k): (_hidden(v) if str(k).lower() in SECRET_KEYS else _redacted(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _hidden(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _hidden(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hidden(v) for v in value]
    return REDACTED if value not in (None, "") else value

"""`regtool serve --check-config`: the effective settings as YAML, secrets hidden.

Shown: the storage (its LOCATION, redacted), every field of the settings object, and
the sections of the file that other parts of the server read themselves (`http.debug`,
`health`, `notifications`, `storage.maintenance.uploadpurging`), with their secrets
hidden too (`regtool.config.redact`: what the schema marks secret, such as every
notification header's value, which carries `Authorization`)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from regtool.config import ConfigDocument
from regtool.config.redact import REDACTED, redacted
from regtool.url_secrets import redact_url

if TYPE_CHECKING:
    from regtool.location import Location
    from regtool.server.settings import ServerSettings

#: Sections of the document shown as they are (read by the server's other parts).
PASSED_ON = ("http.debug", "health", "notifications", "storage.maintenance.uploadpurging")
#: The settings fields read from those sections (notification headers hold secrets:
#: the document's redaction knows them).
OPERATIONS_FIELDS = ("debug", "health", "notifications", "upload_purging")
#: Fields of the settings object that hold a secret.
SECRET_FIELDS = ("secret", "password")


def render_settings(
    settings: ServerSettings, loc: Location, document: ConfigDocument | None
) -> str:
    """The YAML text `--check-config` prints."""
    plain = _plain(settings)
    for name in OPERATIONS_FIELDS:  # shown from the document below, its secrets hidden
        plain.pop(name, None)
    shown: dict[str, Any] = {"storage": loc.redacted(), **plain}
    if document is not None:
        hidden = ConfigDocument(redacted(document.doc))
        for key in PASSED_ON:
            value = hidden.get(key)
            if value is not None:
                shown[key] = value
        if document.origins:
            shown["environment"] = dict(sorted(document.origins.items()))
    return yaml.safe_dump(shown, sort_keys=False, default_flow_style=False)


def _plain(value: Any) -> Any:
    """Dataclasses, paths, durations and tuples as YAML's plain types; secret fields
    (`secret`, `password`) redacted, and so are the credentials in URLs."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            out[f.name] = REDACTED if f.name in SECRET_FIELDS and item else _plain(item)
        return out
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)

"""A distribution configuration file as `regtool serve`, `gc --config` and the other
commands read it: parsed (PyYAML, a key given twice refused), the `REGISTRY_*`
environment applied (`environment.py`), then checked against the schema of every key
(`schema.py`): a key regtool does not know or does not act on is a warning naming it,
a value of the wrong kind a `UsageError` naming the key (and the variable that set it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any as AnyValue

from regtool.config.environment import apply_environment
from regtool.config.schema import (
    CONFIGURATION,
    Any,
    Field,
    ListOf,
    Map,
    Node,
    Scalar,
    ScalarKind,
    Struct,
)
from regtool.config.values import BadValue, coerce
from regtool.errors import UsageError
from regtool.yamldoc import YAMLError, load_yaml, yaml_problem

#: The one configuration version distribution 2.8 reads.
VERSION = "0.1"


@dataclass(frozen=True)
class ConfigDocument:
    """The document (`doc`, the top-level mapping, environment applied), where it came
    from, the warnings found reading it, and which keys the environment set
    (`origins`: `http.addr` -> `REGISTRY_HTTP_ADDR`)."""

    doc: dict[str, AnyValue]
    source: str = ""
    warnings: tuple[str, ...] = ()
    origins: dict[str, str] = field(default_factory=dict)

    def where(self, key: str) -> str:
        """`key` as an error names it: with the variable that set it, or the file."""
        var = self.origins.get(key)
        if var:
            return f"{key} (from {var})"
        return f"{key} in {self.source}" if self.source else key

    def get(self, key: str) -> AnyValue:
        """The value at the dotted `key` (`http.tls.key`), None where it is absent."""
        value: AnyValue = self.doc
        for part in key.split("."):
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    def section(self, key: str) -> dict[str, AnyValue]:
        """The mapping at `key`, empty where it is absent (`check` saw it is a mapping)."""
        value = self.get(key)
        return value if isinstance(value, dict) else {}

    def text(self, key: str) -> str | None:
        value = self.get(key)
        return None if value is None else self.checked("string", key, value)

    def flag(self, key: str, kind: ScalarKind = "bool") -> bool:
        return bool(self.checked(kind, key, self.get(key)))

    def number(self, key: str, kind: ScalarKind = "int") -> int | None:
        value = self.get(key)
        return None if value is None else self.checked(kind, key, value)

    def duration(self, key: str) -> timedelta | None:
        value = self.get(key)
        return None if value is None else self.checked("duration", key, value)

    def strings(self, key: str) -> list[str]:
        value = self.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise UsageError(f"{self.where(key)} must be a list")
        return [self.checked("string", key, v) for v in value]

    def headers(self, key: str) -> list[tuple[str, str]]:
        """A Go `http.Header` mapping (`name: [values]`; one value alone taken too) as
        (name, value) pairs in the file's order."""
        pairs = []
        for name, values in self.section(key).items():
            for value in values if isinstance(values, list) else [values]:
                pairs.append((str(name), self.checked("string", f"{key}.{name}", value)))
        return pairs

    def checked(self, kind: ScalarKind, key: str, value: AnyValue) -> AnyValue:
        """`value` (of `key`) read as a field of `kind` (`values.coerce`); `UsageError`
        naming the key otherwise."""
        try:
            return coerce(kind, value)
        except BadValue as e:
            raise UsageError(f"{self.where(key)}: {e}") from None


def load_config(path: Path, env: Mapping[str, str]) -> ConfigDocument:
    """The configuration file at `path` with the environment `env` applied and checked.
    `UsageError` (one line naming the file and the key) for a file that cannot be read
    or parsed, a value of the wrong kind or a version other than 0.1."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read config {path}: {e.strerror or e}") from None
    try:
        doc = load_yaml(data)
    except YAMLError as e:
        raise UsageError(f"config {path} is not valid YAML: {yaml_problem(e)}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise UsageError(f"config {path} must be a mapping of sections")
    return from_document(doc, env, str(path))


def from_document(
    doc: dict[str, AnyValue], env: Mapping[str, str], source: str = ""
) -> ConfigDocument:
    """`load_config` for a document parsed already (`doc` is changed in place)."""
    overrides = apply_environment(doc, env)
    config = ConfigDocument(doc, source, (), overrides.origins)
    warnings = list(overrides.warnings)
    _check(config, doc, CONFIGURATION, "", warnings)
    version = config.text("version")
    if version is not None and version != VERSION:
        raise UsageError(
            f"{config.where('version')}: {version[:20]!r} is not {VERSION}, "
            "the version regtool reads"
        )
    return ConfigDocument(doc, source, tuple(warnings), overrides.origins)


def _check(
    config: ConfigDocument, value: AnyValue, node: Node, key: str, warnings: list[str]
) -> None:
    """Checks `value` (at dotted `key`) against `node`, appending a warning per key that
    is unknown or not acted on; `UsageError` for a value of the wrong kind."""
    if isinstance(node, Any) or value is None:
        return
    if isinstance(node, Scalar):
        config.checked(node.kind, key, value)
        return
    if isinstance(node, ListOf):
        if not isinstance(value, list):
            raise UsageError(f"{config.where(key)} must be a list")
        for i, item in enumerate(value):
            _check(config, item, node.item, f"{key}[{i}]", warnings)
        return
    if isinstance(node, Map) and node.one_of and isinstance(value, str):
        value = {value: {}}  # `storage: filesystem`, as distribution reads it
    if not isinstance(value, dict):
        raise UsageError(f"{config.where(key) or 'the document'} must be a mapping")
    prefix = f"{key}." if key else ""
    if isinstance(node, Map) and node.one_of:
        chosen = [str(k) for k in value if k not in node.extra]
        if len(chosen) > 1:
            raise UsageError(f"{config.where(key)} must name one choice, not {', '.join(chosen)}")
    fields: Mapping[str, Field] = node.fields if isinstance(node, Struct) else node.known
    for k, v in value.items():
        name = f"{prefix}{k}"
        f = fields.get(str(k))
        if f is None:
            if isinstance(node, Map) and node.open_known:
                _check(config, v, node.value, name, warnings)
            elif isinstance(node, Map) and node.one_of:
                warnings.append(f"{name}: regtool has no such choice; ignored")
            else:
                warnings.append(f"{name}: unknown key; ignored")
        elif not f.used:
            warnings.append(f"{name}: regtool does not act on this key; ignored")
        else:
            _check(config, v, f.node, name, warnings)

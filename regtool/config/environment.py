"""`REGISTRY_<SECTION>_<KEY>` environment variables over a configuration document, as
distribution 2.8 applies them (`configuration/parser.go`, `overwriteFields`):

- variables are applied in the lexical order of their names, so `REGISTRY_STORAGE`
  (a whole section) comes before `REGISTRY_STORAGE_SWIFT_CONTAINER` (one key of it);
- the name after `REGISTRY_` is split at `_`; each part names, upper-cased, a Go field
  of a struct (`RELATIVEURLS` is `http.relativeurls`, `EVENTCONFIG` is
  `notifications.events`) or a key of a map, matched without regard to case, or new
  and then written in lower case (`REGISTRY_STORAGE_SWIFT_CONTAINER` sets
  `storage.swift.container`);
- the value is parsed as YAML (`true`, `5000`, `[a, b]`, `{enabled: true}`) and
  replaces the key's value whole; its type is checked with the rest of the document;
- a name that matches no field is ignored with a warning, as distribution does; so is
  one that goes below a list or a plain value, which distribution ignores silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any as AnyValue

from regtool.config.schema import CONFIGURATION, Any, ListOf, Map, Node, Scalar, Struct
from regtool.errors import UsageError
from regtool.yamldoc import YAMLError, load_yaml, yaml_problem

PREFIX = "REGISTRY_"


@dataclass
class Overrides:
    """What the environment changed: `origins` maps each key path it set (`http.addr`)
    to the variable that set it; `warnings` one line per variable ignored."""

    origins: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def apply_environment(doc: dict[str, AnyValue], env: Mapping[str, str]) -> Overrides:
    """Applies every `REGISTRY_*` variable of `env` to `doc` (changed in place).
    `UsageError` naming the variable for a value that is not YAML, or a key path through
    a part of the document that is not a mapping."""
    done = Overrides()
    for name in sorted(n for n in env if n.startswith(PREFIX)):
        parts = name.split("_")[1:]
        if not all(parts):
            done.warnings.append(f"{name}: not a configuration key; ignored")
            continue
        try:
            value = load_yaml(env[name])
        except YAMLError as e:
            raise UsageError(f"{name} is not a YAML value: {yaml_problem(e)}") from None
        _overwrite(doc, CONFIGURATION, parts, value, name, [], done)
    return done


def _overwrite(
    container: dict[str, AnyValue],
    node: Node,
    parts: list[str],
    value: AnyValue,
    name: str,
    path: list[str],
    done: Overrides,
) -> None:
    """Sets `parts` below `container` (a mapping whose schema is `node`)."""
    head, rest = parts[0], parts[1:]
    child: Node
    if isinstance(node, Struct):
        by_go = {f.go.upper(): (key, f.node) for key, f in node.fields.items()}
        if head not in by_go:
            done.warnings.append(f"{name}: no such configuration key; ignored")
            return
        key, child = by_go[head]
    elif isinstance(node, Map | Any):
        known = node.known if isinstance(node, Map) else {}
        existing = next(
            (k for k in container if str(k).upper() == head and container[k] is not None), None
        )
        key = existing if existing is not None and rest else head.lower()
        child = known[key].node if key in known else (node.value if isinstance(node, Map) else node)
    else:  # pragma: no cover - only mappings are walked into
        raise AssertionError(node)
    where = ".".join([*path, key])
    if not rest:
        container[key] = _driver_map(child, value)
        done.origins[where] = name
        return
    if isinstance(child, ListOf | Scalar):
        done.warnings.append(f"{name}: {where} is not a mapping; ignored")
        return
    below = container.get(key)
    if below is None:
        below = container[key] = {}
    elif not isinstance(below, dict):
        if isinstance(child, Any):  # distribution leaves a plain value alone
            done.warnings.append(f"{name}: {where} is not a mapping; ignored")
            return
        raise UsageError(f"{where} must be a mapping (to apply {name})")
    _overwrite(below, child, rest, value, name, [*path, key], done)


def _driver_map(node: Node, value: AnyValue) -> AnyValue:
    """`REGISTRY_STORAGE=filesystem` stands for `{filesystem: {}}`, as distribution's
    `Storage.UnmarshalYAML` and `Auth.UnmarshalYAML` read a string."""
    if isinstance(node, Map) and node.one_of and isinstance(value, str):
        return {value: {}}
    return value

"""A configuration document with its secrets hidden, for showing: every value the schema
marks `secret` (`http.secret`, storage passwords and keys, notification headers, which
carry `Authorization`) becomes `<redacted>`, and so does every value of a section
regtool does not read (`redis`, `proxy`) under a key that names a secret. Any other
value that is a URL loses the user and password before its host and the credentials in
its query (`url_secrets.redact_url`): a notification endpoint's
`https://user:password@host/` is how distribution's users give it Basic auth."""

from __future__ import annotations

from typing import Any as AnyValue

from regtool.config.schema import CONFIGURATION, Any, Field, ListOf, Map, Node, Struct
from regtool.url_secrets import redact_url

REDACTED = "<redacted>"
#: Keys whose values are hidden where the schema does not say (free-form sections).
SECRET_WORDS = ("password", "secret", "token", "key")


def redacted(doc: dict[str, AnyValue]) -> dict[str, AnyValue]:
    """A copy of the document `doc` with every secret replaced by `REDACTED`."""
    return _walk(doc, CONFIGURATION)  # type: ignore[no-any-return]


def _walk(value: AnyValue, node: Node) -> AnyValue:
    if isinstance(value, list):
        item = node.item if isinstance(node, ListOf) else Any()
        return [_walk(v, item) for v in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    if not isinstance(value, dict):
        return value
    fields: dict[str, Field] = {}
    if isinstance(node, Struct):
        fields = node.fields
    elif isinstance(node, Map):
        fields = node.known
    out = {}
    for k, v in value.items():
        f = fields.get(str(k))
        if f is not None and f.secret:
            out[k] = _hidden(v)
        elif f is not None:
            out[k] = _walk(v, f.node)
        elif isinstance(node, Map) and node.open_known:
            out[k] = _walk(v, node.value)
        elif any(word in str(k).lower() for word in SECRET_WORDS):
            out[k] = _hidden(v)
        else:
            out[k] = _walk(v, Any())
    return out


def _hidden(value: AnyValue) -> AnyValue:
    """`value` with each leaf hidden and its shape kept (header names stay readable)."""
    if isinstance(value, dict):
        return {k: _hidden(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hidden(v) for v in value]
    return REDACTED if value not in (None, "") else value

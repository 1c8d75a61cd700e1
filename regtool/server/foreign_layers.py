"""Which blobs a pushed manifest must find in its repository, and which layers clients
fetch from elsewhere: distribution's manifest verification (`verifyManifest` in
registry/storage/ocimanifesthandler.go and schema2manifesthandler.go).

- OCI image manifest: a layer of type `...layer.v1.tar` or `...tar+gzip`, or their
  `nondistributable` forms, has its `urls` checked (below). A non-distributable layer
  that lists URLs is fetched from them by clients and need not be stored; every other
  blob must be, config included, `urls` or not. (distribution 2.8 also let a config or
  an ordinary layer with URLs be absent, which its later releases closed.)
- Docker schema 2 manifest: a foreign layer
  (`application/vnd.docker.image.rootfs.foreign.diff.tar.gzip`) must list URLs, which
  are checked, and is never looked for; every other blob must be stored.
- A URL is allowed when it parses, is http or https, has no fragment, and passes the
  registry's `UrlPolicy` (distribution's `validation.manifests.urls`). By default, as in
  distribution, the policy allows none: a manifest listing foreign URLs is refused
  unless the configuration allows them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from regtool.errors import UsageError
from regtool.oci import (
    DOCKER_FOREIGN,
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    OCI_NONDISTRIBUTABLE,
    OCI_NONDISTRIBUTABLE_GZIP,
    Descriptor,
    Digest,
    Manifest,
)

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

#: OCI layer types whose URLs distribution checks, and those that may then be absent.
_OCI_CHECKED = frozenset(
    {OCI_LAYER, OCI_LAYER_GZIP, OCI_NONDISTRIBUTABLE, OCI_NONDISTRIBUTABLE_GZIP}
)
_OCI_FOREIGN = frozenset({OCI_NONDISTRIBUTABLE, OCI_NONDISTRIBUTABLE_GZIP})

#: distribution's pattern when validation is on and no pattern is configured: `^$`,
#: which no URL that passes the other checks matches.
_NOTHING = re.compile(r"^$")


@dataclass(frozen=True)
class UrlPolicy:
    """Which layer URLs a manifest may list: a URL must match `allow` (searched for in
    it, as Go's `MatchString`; None allows every URL) and not match `deny` (None denies
    none). The default is distribution's with validation on and nothing configured:
    no URL is allowed."""

    allow: re.Pattern[str] | None = field(default=_NOTHING)
    deny: re.Pattern[str] | None = None

    @classmethod
    def from_config(cls, validation: Any) -> UrlPolicy:
        """The policy of a distribution configuration's `validation` section (the parsed
        YAML value; None when absent): `disabled: true` (unless `enabled: true`) checks
        only scheme and fragment; else `manifests.urls.allow` and
        `.deny` are lists of regular expressions, each list joined with `|`, and with
        neither set no URL is allowed. `UsageError` for a pattern that does not compile."""
        section = validation if isinstance(validation, dict) else {}
        enabled = section.get("enabled") is True or section.get("disabled") is not True
        if not enabled:
            return cls(allow=None, deny=None)
        manifests = section.get("manifests")
        urls = manifests.get("urls") if isinstance(manifests, dict) else None
        urls = urls if isinstance(urls, dict) else {}
        allow, deny = _patterns(urls.get("allow"), "allow"), _patterns(urls.get("deny"), "deny")
        if allow is None and deny is None:
            return cls()
        return cls(allow=allow, deny=deny)

    def refuses(self, url: str) -> bool:
        """Whether `url` may not be listed by a layer."""
        if any(c < " " or c == "\x7f" for c in url):  # Go's url.Parse refuses controls
            return True
        try:
            parts = urlsplit(url)
        except ValueError:
            return True
        if parts.scheme.lower() not in ("http", "https") or parts.fragment:
            return True
        if self.allow is not None and not self.allow.search(url):
            return True
        return self.deny is not None and self.deny.search(url) is not None


def _patterns(value: Any, which: str) -> re.Pattern[str] | None:
    if not value:
        return None
    items = value if isinstance(value, list) else [value]
    try:
        return re.compile("|".join(f"(?:{item})" for item in map(str, items)))
    except re.error as e:
        raise UsageError(f"validation.manifests.urls.{which}: {e}") from None


@dataclass(frozen=True)
class Requirements:
    """What a manifest needs: `stored`, the blobs that must be linked into the
    repository; `refused`, layers refused whatever is stored, with the reason."""

    stored: tuple[Digest, ...]
    refused: dict[Digest, str]


def requirements(manifest: Manifest, policy: UrlPolicy) -> Requirements:
    """The blobs (config and layers, not an index's children) `manifest` needs."""
    stored: list[Digest] = []
    refused: dict[Digest, str] = {}
    for d in manifest.blobs:
        reason = _refusal(manifest.media_type, d, policy)
        if reason is not None:
            refused[d.digest] = reason
        elif not _foreign(manifest.media_type, d):
            stored.append(d.digest)
    return Requirements(tuple(dict.fromkeys(stored)), refused)


def _foreign(manifest_type: str, d: Descriptor) -> bool:
    """Whether clients fetch this blob from its URLs, so that it need not be stored."""
    if manifest_type == OCI_MANIFEST:
        return d.media_type in _OCI_FOREIGN and bool(d.urls)
    return manifest_type == DOCKER_MANIFEST and d.media_type == DOCKER_FOREIGN


def _refusal(manifest_type: str, d: Descriptor, policy: UrlPolicy) -> str | None:
    checked = (manifest_type == OCI_MANIFEST and d.media_type in _OCI_CHECKED) or (
        manifest_type == DOCKER_MANIFEST and d.media_type == DOCKER_FOREIGN
    )
    if not checked:
        return None
    if manifest_type == DOCKER_MANIFEST and not d.urls:
        return f"foreign layer {d.digest} lists no URLs"
    bad = _first(u for u in d.urls if policy.refuses(u))
    if bad is not None:
        return f"layer {d.digest} lists a URL this registry does not allow: {bad[:100]!r}"
    return None


def _first(items: Iterable[str]) -> str | None:
    return next(iter(items), None)

"""Media types, digests, names and manifest parsing: the registry's objects, not its storage.

Every manifest format a registry may hold is parsed into one `Manifest` shape:
Docker schema 2 and manifest lists, OCI manifests and indexes, and Docker schema 1
(signed or not, read-only) whose layers become descriptors without sizes.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from regtool.errors import DigestInvalid, ManifestInvalid, NameInvalid

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

#: Layers a client downloads from their `urls`: the only blobs distribution lets a
#: manifest reference without having them (`verifyManifest` in registry/storage/
#: ocimanifesthandler.go and schema2manifesthandler.go), and only with urls.
OCI_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
NON_DISTRIBUTABLE_TYPES = frozenset(
    {OCI_NONDISTRIBUTABLE, OCI_NONDISTRIBUTABLE_GZIP, DOCKER_FOREIGN}
)
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})

#: Hash functions for the algorithms distribution accepts, with their hex lengths.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
_ALGORITHM_NAMES = {name: name for name in ALGORITHMS}

# The distribution reference grammar (distribution/reference/regexp.go), matched whole
# with `fullmatch` and spelled in ASCII classes: Go's `\w` is [0-9A-Za-z_] and its `$`
# is the end of the text, where Python's `\w`/`\d` take any Unicode letter or digit and
# its `$` also matches before a final newline.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*", re.ASCII)
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
_HEX_RE = re.compile(r"[0-9a-f]+", re.ASCII)
NAME_MAX = 255


class JsonInvalid(ValueError):
    """Bytes that `load_json` cannot turn into a JSON value; the message says why."""


#: Deepest nesting `load_json` parses. Manifests, indexes and image configs nest under
#: ten levels. The parser recurses once per level, and a parse near Python's recursion
#: limit leaves no stack for what may run inside it (a garbage collection's finalizers,
#: a warning), so deeper documents are refused before they are parsed.
MAX_JSON_DEPTH = 200

# A JSON string (RFC 8259 §7), written as an unrolled loop so `re` never backtracks.
_JSON_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET_RE = re.compile(r"[^\[\]{}]+")


def nested_too_deeply(text: str) -> bool:
    """Whether the arrays and objects of JSON `text` nest deeper than `MAX_JSON_DEPTH`,
    told without parsing: brackets counted outside strings (for malformed text, by an
    upper bound)."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False  # the common case, without a scan
    brackets = _NOT_BRACKET_RE.sub("", _JSON_STRING_RE.sub("", text))
    if brackets.count("[") + brackets.count("{") <= MAX_JSON_DEPTH:
        return False
    return max(accumulate(1 if c in "[{" else -1 for c in brackets)) > MAX_JSON_DEPTH


def load_json(data: bytes | str) -> Any:
    """The JSON value (RFC 8259) of stored or received bytes: every parse of a manifest,
    a V1 image file or a request body goes through here. Bytes may be UTF-8, -16 or -32
    (detected as `json.loads` does). `JsonInvalid` for anything else: malformed JSON,
    bytes that do not decode, or a document nested deeper than `MAX_JSON_DEPTH`. Go's
    encoding/json accepts 10000 levels, so distribution stores such documents: to a
    reader here they are not JSON."""
    try:
        text = (
            data
            if isinstance(data, str)
            else data.decode(json.detect_encoding(data), "surrogatepass")
        )
        if nested_too_deeply(text):
            raise JsonInvalid(f"JSON nested too deeply to parse (over {MAX_JSON_DEPTH} levels)")
        return json.loads(text)
    except RecursionError:  # a caller already deep in its own stack
        raise JsonInvalid("JSON nested too deeply to parse") from None
    except JsonInvalid:
        raise
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise JsonInvalid(str(e)) from None


@dataclass(frozen=True, order=True, slots=True)
class Digest:
    """`algorithm:hex`, validated. `str(d)` gives the canonical text."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        alg, sep, hexpart = text.partition(":")
        if not sep or alg not in ALGORITHMS:
            raise DigestInvalid(f"invalid digest {text[:80]!r}: expected sha256:<64 hex>")
        if len(hexpart) != ALGORITHMS[alg] or not _HEX_RE.fullmatch(hexpart):
            raise DigestInvalid(
                f"invalid digest {text[:80]!r}: {alg} needs {ALGORITHMS[alg]} lowercase hex"
            )
        # The same digest is parsed from links, manifests and listings alike: share one
        # copy of each string (interned strings are freed once unused).
        return cls(_ALGORITHM_NAMES[alg], sys.intern(hexpart))

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def short(self) -> str:
        return f"{self.algorithm}:{self.hex[:12]}"


def check_name(name: str) -> str:
    """`name` if it is a repository name distribution accepts (lowercase ASCII components
    joined by `/`, at most 255 characters); `NameInvalid` otherwise."""
    if len(name) > NAME_MAX or not NAME_RE.fullmatch(name):
        raise NameInvalid(f"invalid repository name {name[:100]!r}")
    return name


def check_tag(tag: str) -> str:
    """`tag` if it is a tag distribution accepts (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`);
    `NameInvalid` otherwise."""
    if not TAG_RE.fullmatch(tag):
        raise NameInvalid(f"invalid tag {tag[:140]!r}")
    return tag


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A reference from a manifest to a blob or another manifest. Schema 1 layers have no
    size (`None`)."""

    digest: Digest
    size: int | None
    media_type: str = ""
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    artifact_type: str | None = None

    @property
    def foreign(self) -> bool:
        """A non-distributable layer with `urls`, which storage need not hold (as a layer:
        a config is always stored)."""
        return bool(self.urls) and self.media_type in NON_DISTRIBUTABLE_TYPES


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()  # children of an index / manifest list
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Config and layers: the blobs (not manifests) this manifest references."""
        return ((self.config,) if self.config else ()) + self.layers

    @property
    def kind(self) -> str:
        """A word for people: image, index, schema1 or artifact."""
        if self.is_index:
            return "index"
        if self.media_type in SCHEMA1_TYPES:
            return "schema1"
        if self.artifact_type or (
            self.config is not None and self.config.media_type not in _IMAGE_CONFIG_TYPES
        ):
            return "artifact"
        return "image"


_IMAGE_CONFIG_TYPES = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)


def _text(value: Any) -> str | None:
    """A JSON string member as text; None for any other value. Only strings are taken:
    `str()` of a nested list or object would recurse as deep as its nesting."""
    return value if isinstance(value, str) else None


def _descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise ManifestInvalid(f"{where} is not an object")
    if "digest" not in raw:
        raise ManifestInvalid(f"{where} has no digest")
    text = _text(raw["digest"])
    if text is None:
        raise ManifestInvalid(f"{where}: digest is not a string")
    try:
        digest = Digest.parse(text)
    except DigestInvalid as e:
        raise ManifestInvalid(f"{where}: {e}") from None
    size = raw.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalid(f"{where} has no valid size")
    platform = None
    if isinstance(raw.get("platform"), dict):
        p = raw["platform"]
        platform = Platform(
            _text(p.get("os")) or "", _text(p.get("architecture")) or "", _text(p.get("variant"))
        )
    urls = raw.get("urls") or ()
    return Descriptor(
        digest=digest,
        size=size,
        media_type=sys.intern(_text(raw.get("mediaType")) or ""),  # a handful of values
        platform=platform,
        urls=tuple(u for u in urls if isinstance(u, str)) if isinstance(urls, list) else (),
        artifact_type=_text(raw.get("artifactType")),
    )


def _descriptors(raw: Any, where: str) -> tuple[Descriptor, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ManifestInvalid(f"{where} is not a list")
    return tuple(_descriptor(d, f"{where}[{i}]") for i, d in enumerate(raw))


def detect_media_type(doc: dict[str, Any]) -> str:
    """The media type of a parsed manifest, as distribution infers it when `mediaType` is
    absent: schemaVersion 1 is schema 1; `manifests` makes an OCI index; else OCI image."""
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if doc.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1_SIGNED if "signatures" in doc else DOCKER_SCHEMA1
    return OCI_INDEX if "manifests" in doc else OCI_MANIFEST


def parse_manifest(data: bytes) -> Manifest:
    """Parse any manifest format; `ManifestInvalid` says what is wrong."""
    try:
        doc = load_json(data)
    except JsonInvalid as e:
        raise ManifestInvalid(f"not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ManifestInvalid("not a JSON object")
    media_type = detect_media_type(doc)
    if media_type in SCHEMA1_TYPES:
        return _parse_schema1(doc, media_type)
    version = doc.get("schemaVersion")
    if version != 2:
        shown = repr(version) if isinstance(version, int | str | None) else type(version).__name__
        raise ManifestInvalid(f"unsupported schemaVersion {shown[:40]}")
    raw_annotations = doc.get("annotations")
    annotations = (
        {k: v for k, v in raw_annotations.items() if isinstance(v, str)}
        if isinstance(raw_annotations, dict)
        else {}
    )
    subject = _descriptor(doc["subject"], "subject") if doc.get("subject") else None
    if media_type in INDEX_TYPES:
        return Manifest(
            media_type,
            manifests=_descriptors(doc.get("manifests"), "manifests"),
            subject=subject,
            artifact_type=_text(doc.get("artifactType")),
            annotations=annotations,
        )
    if "config" not in doc:
        raise ManifestInvalid("image manifest has no config")
    return Manifest(
        media_type,
        config=_descriptor(doc["config"], "config"),
        layers=_descriptors(doc.get("layers"), "layers"),
        subject=subject,
        artifact_type=_text(doc.get("artifactType")),
        annotations=annotations,
    )


def _parse_schema1(doc: dict[str, Any], media_type: str) -> Manifest:
    fs_layers = doc.get("fsLayers")
    if not isinstance(fs_layers, list):
        raise ManifestInvalid("schema 1 manifest has no fsLayers")
    layers = []
    for i, layer in enumerate(fs_layers):
        if not isinstance(layer, dict) or "blobSum" not in layer:
            raise ManifestInvalid(f"fsLayers[{i}] has no blobSum")
        try:
            layers.append(Descriptor(Digest.parse(_text(layer["blobSum"]) or ""), None))
        except DigestInvalid as e:
            raise ManifestInvalid(f"fsLayers[{i}]: {e}") from None
    # Schema 1 lists layers top-first and repeats empty layers; keep each blob once.
    unique = tuple({d.digest: d for d in reversed(layers)}.values())
    return Manifest(media_type, layers=unique)


def schema1_payload(data: bytes) -> bytes:
    """The canonical payload of a signed schema 1 manifest, over which its digest is taken:
    the bytes without the `signatures` member, rebuilt from the protected header's
    `formatLength` and `formatTail` (libtrust's JWS rules)."""
    import base64

    doc = load_json(data)
    signatures = doc.get("signatures") if isinstance(doc, dict) else None
    if not signatures:
        return data
    protected = signatures[0].get("protected", "")
    header = load_json(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
    tail = base64.urlsafe_b64decode(header["formatTail"] + "=" * (-len(header["formatTail"]) % 4))
    length = header["formatLength"]  # a JSON number: not text for int() to read
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise ValueError(f"formatLength {length!r} is not a length")
    return data[:length] + tail

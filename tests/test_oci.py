from __future__ import annotations

import inspect
import json
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regtool.errors import DigestInvalid, ManifestInvalid, NameInvalid
from regtool.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    MAX_JSON_DEPTH,
    OCI_INDEX,
    OCI_MANIFEST,
    Digest,
    JsonInvalid,
    check_name,
    check_tag,
    load_json,
    nested_too_deeply,
    parse_manifest,
)

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha512:" + "c" * 128


def test_digest_round_trip_and_validation() -> None:
    assert str(Digest.parse(A)) == A
    assert Digest.parse(C).algorithm == "sha512"
    assert Digest.of(b"") == Digest.parse(
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    for bad in [
        "",
        "sha256",
        "sha256:abc",
        "md5:" + "a" * 32,
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63 + "/",
        "sha512:" + "a" * 64,
    ]:
        with pytest.raises(DigestInvalid):
            Digest.parse(bad)


@given(st.text(max_size=80))
def test_digest_parse_never_crashes_otherwise(text: str) -> None:
    try:
        d = Digest.parse(text)
    except DigestInvalid:
        return
    assert str(d) == text


def test_names_and_tags() -> None:
    for good in ["a", "library/exampleapp", "team/sub/app", "a-b_c.d", "a__b"]:
        assert check_name(good) == good
    for bad in ["", "A", "../etc", "a/../b", "a//b", "/a", "a/", "_layers", "a/_x", "a" * 256]:
        with pytest.raises(NameInvalid):
            check_name(bad)
    assert check_tag("1.0") == "1.0"
    for bad in ["", ".x", "-x", "a/b", "..", "x" * 129]:
        with pytest.raises(NameInvalid):
            check_tag(bad)


def _doc(**kw: object) -> bytes:
    return json.dumps({"schemaVersion": 2, **kw}).encode()


def test_parse_image_manifests() -> None:
    cfg = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": A, "size": 10}
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": B, "size": 20}
    m = parse_manifest(_doc(mediaType=OCI_MANIFEST, config=cfg, layers=[layer]))
    assert m.kind == "image" and not m.is_index
    assert [str(d.digest) for d in m.blobs] == [A, B]
    assert sum(d.size or 0 for d in m.blobs) == 30
    # mediaType absent: config present means an OCI image manifest
    assert parse_manifest(_doc(config=cfg, layers=[])).media_type == OCI_MANIFEST
    docker = parse_manifest(_doc(mediaType=DOCKER_MANIFEST, config=cfg, layers=[layer]))
    assert docker.media_type == DOCKER_MANIFEST
    artifact = parse_manifest(
        _doc(
            config={"mediaType": "application/vnd.example+json", "digest": A, "size": 2},
            layers=[],
            subject={"mediaType": OCI_MANIFEST, "digest": B, "size": 5},
        )
    )
    assert artifact.kind == "artifact"
    assert artifact.subject is not None and str(artifact.subject.digest) == B


def test_parse_indexes() -> None:
    child = {
        "mediaType": OCI_MANIFEST,
        "digest": A,
        "size": 5,
        "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
    }
    idx = parse_manifest(_doc(manifests=[child]))
    assert idx.media_type == OCI_INDEX and idx.is_index
    assert str(idx.manifests[0].platform) == "linux/arm64/v8"
    assert parse_manifest(_doc(mediaType=DOCKER_LIST, manifests=[child])).kind == "index"


def test_parse_schema1() -> None:
    doc = {
        "schemaVersion": 1,
        "name": "x",
        "tag": "1",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": A}, {"blobSum": B}, {"blobSum": A}],
        "history": [],
    }
    m = parse_manifest(json.dumps(doc).encode())
    assert m.media_type == DOCKER_SCHEMA1 and m.kind == "schema1"
    assert {str(d.digest) for d in m.layers} == {A, B}
    assert all(d.size is None for d in m.layers)


@pytest.mark.parametrize(
    "data, words",
    [
        (b"not json", "not JSON"),
        (b"[1,2]", "not a JSON object"),
        (b'{"schemaVersion": 3}', "schemaVersion"),
        (_doc(mediaType=OCI_MANIFEST), "no config"),
        (_doc(config={"digest": "sha256:nope", "size": 1}), "config"),
        (_doc(config={"digest": A, "size": -1}), "size"),
        (_doc(manifests="x"), "not a list"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_invalid_manifests_say_why(data: bytes, words: str) -> None:
    with pytest.raises(ManifestInvalid, match=words):
        parse_manifest(data)


def test_json_nested_too_deeply_is_invalid_not_a_recursion_error() -> None:
    """Go's encoding/json takes 10000 levels, Python's parser about 1000: what is deeper
    than `MAX_JSON_DEPTH` is invalid data to every reader (one error, never a
    RecursionError)."""
    deep = b'{"schemaVersion": 2, "x": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    with pytest.raises(JsonInvalid, match="nested too deeply"):
        load_json(deep)
    with pytest.raises(ManifestInvalid, match="nested too deeply"):
        parse_manifest(deep)
    with pytest.raises(JsonInvalid):
        load_json(b"\xff{}")  # not UTF-8: the same error
    limit = MAX_JSON_DEPTH
    assert load_json(b"[" * limit + b"]" * limit) is not None  # what it can parse, it parses
    with pytest.raises(JsonInvalid, match="nested too deeply"):
        load_json(b"[" * (limit + 1) + b"]" * (limit + 1))
    # Brackets inside strings are text, not nesting.
    assert load_json(json.dumps(["[{" * 3000, "\\", '"[']).encode("utf-16"))


def test_deep_json_is_refused_before_the_parser_recurses() -> None:
    """The refusal needs no stack: with only a little more room than `MAX_JSON_DEPTH`
    levels left, a 3000-deep document is refused as too deep, not by a RecursionError
    (which, raised inside the parser, leaves no stack for a collection's finalizers)."""
    deep = "[" * 3000 + "]" * 3000
    depth = len(inspect.stack(0))
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + MAX_JSON_DEPTH + 60)
    try:
        with pytest.raises(JsonInvalid, match=f"over {MAX_JSON_DEPTH} levels"):
            load_json(deep)
    finally:
        sys.setrecursionlimit(old)


def json_nesting(value: object) -> int:
    """How deeply a parsed JSON value nests: the oracle for `nested_too_deeply`."""
    if isinstance(value, list):
        return 1 + max(map(json_nesting, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(json_nesting, value.values()), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.integers() | st.text(alphabet='[]{}"\\ab'),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text('[{}]"'), inner, max_size=3)
    ),
    max_leaves=400,
)


@given(json_values, st.integers(min_value=0, max_value=250))
def test_nesting_is_counted_outside_strings(value: object, wrap: int) -> None:
    text = "[" * wrap + json.dumps(value) + "]" * wrap
    assert nested_too_deeply(text) == (wrap + json_nesting(value) > MAX_JSON_DEPTH)


@pytest.mark.parametrize("field", ["digest", "mediaType", "artifactType", "urls"])
def test_nested_values_where_strings_belong_are_not_turned_into_text(field: str) -> None:
    """A nested member where a string belongs is not turned into text (`str()` of it
    recurses as deep as it nests): only strings are taken (a digest that is no string is
    invalid)."""
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": A, "size": 1}
    layer[field] = "NESTED"
    doc = {"schemaVersion": 2, "config": {"digest": B, "size": 1}, "layers": [layer]}
    text = json.dumps(doc).replace('"NESTED"', "[" * 190 + "]" * 190)
    if field == "digest":
        with pytest.raises(ManifestInvalid, match="digest is not a string"):
            parse_manifest(text.encode())
        return
    descriptor = parse_manifest(text.encode()).layers[0]
    taken = {"mediaType": descriptor.media_type, "artifactType": descriptor.artifact_type}
    taken["urls"] = descriptor.urls
    assert taken[field] in ("", None, ())

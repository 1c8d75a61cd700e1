from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regtool.errors import DigestInvalid, ManifestInvalid, NameInvalid
from regtool.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    OCI_INDEX,
    OCI_MANIFEST,
    Digest,
    JsonInvalid,
    check_name,
    check_tag,
    load_json,
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
    is invalid data to every reader (one error, never a RecursionError)."""
    deep = b'{"schemaVersion": 2, "x": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    with pytest.raises(JsonInvalid, match="nested too deeply"):
        load_json(deep)
    with pytest.raises(ManifestInvalid, match="nested too deeply"):
        parse_manifest(deep)
    with pytest.raises(JsonInvalid):
        load_json(b"\xff{}")  # not UTF-8: the same error
    assert load_json(b"[" * 500 + b"]" * 500) is not None  # what it can parse, it parses


@pytest.mark.parametrize("field", ["digest", "mediaType", "artifactType", "urls"])
def test_nested_values_where_strings_belong_are_not_turned_into_text(field: str) -> None:
    """A member nested 900 levels deep parses, but `str()` or `repr()` of it would recurse
    as deep: only strings are taken (a digest that is no string is invalid)."""
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": A, "size": 1}
    layer[field] = "NESTED"
    doc = {"schemaVersion": 2, "config": {"digest": B, "size": 1}, "layers": [layer]}
    text = json.dumps(doc).replace('"NESTED"', "[" * 900 + "]" * 900)
    if field == "digest":
        with pytest.raises(ManifestInvalid, match="digest is not a string"):
            parse_manifest(text.encode())
        return
    descriptor = parse_manifest(text.encode()).layers[0]
    taken = {"mediaType": descriptor.media_type, "artifactType": descriptor.artifact_type}
    taken["urls"] = descriptor.urls
    assert taken[field] in ("", None, ())

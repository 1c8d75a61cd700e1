"""Referrers through the manifest-facts cache, on Swift: the listing confirms the revision
links by their MD5 and a warm cache reads no manifest; a manifest replaced under its
digest's path is read again, never answered from the cache."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from regtool.facts import open_cache
from regtool.layout.manifests import store_identity
from regtool.oci import OCI_MANIFEST, Digest
from regtool.server.registry import Registry
from tests.facts.recording import Recording
from tests.handstore import HandStore

pytestmark = pytest.mark.swift
SIG = "application/vnd.example.sig"


@pytest.fixture
def store(swift_service: Any) -> Iterator[tuple[HandStore, Recording]]:
    recording = Recording(swift_service.driver(f"referrers-{uuid.uuid4().hex[:8]}"))
    try:
        yield HandStore(driver=recording), recording
    finally:
        recording.delete_many([e.path for e in recording.walk("")])
        recording.close()


def referrer(store: HandStore, subject: Digest, n: int) -> tuple[Digest, bytes]:
    config = store.blob("app", b"{}")
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIG,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": str(config),
            "size": 2,
        },
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": str(subject), "size": 1},
        "annotations": {"n": str(n)},
    }
    data = json.dumps(doc).encode()
    return store.manifest("app", f"sig{n}", data), data


def answer(store: HandStore) -> Registry:
    facts = open_cache(store_identity(store.layout))
    return Registry(store.layout, facts=facts)


def test_a_warm_cache_answers_referrers_without_reading(store: tuple[HandStore, Recording]) -> None:
    hand, recording = store
    subject = hand.image("app", "1").digest
    made = dict(referrer(hand, subject, n) for n in range(8))
    cold = answer(hand).referrers("app", subject, None)
    assert {m["digest"] for m in cold["manifests"]} == {str(d) for d in made}
    assert all(m["size"] == len(made[Digest.parse(m["digest"])]) for m in cold["manifests"])
    assert all(m["artifactType"] == SIG for m in cold["manifests"])
    recording.read.clear()
    recording.stats.clear()
    warm = answer(hand).referrers("app", subject, None)
    assert warm == cold
    assert recording.read == [] and recording.stats == []  # listings only
    assert answer(hand).referrers("app", subject, "other/type")["manifests"] == []

    # one referrer's object replaced (same size, no subject): read again, not listed
    gone, data = next(iter(made.items()))
    replaced = json.loads(data)
    del replaced["subject"]
    text = json.dumps(replaced).encode()
    recording.put(hand.layout.blob_data(gone), text + b" " * (len(data) - len(text)))
    recording.read.clear()
    after = answer(hand).referrers("app", subject, None)
    assert recording.read == [hand.layout.blob_data(gone)]
    assert {m["digest"] for m in after["manifests"]} == {str(d) for d in made} - {str(gone)}

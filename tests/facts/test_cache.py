"""The manifest-facts cache on a local store: used when valid, never when the blob
changed, shared between processes, rebuilt when damaged, bounded, and bypassed on demand."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from regtool.facts import open_cache
from regtool.facts.codec import decode, encode
from regtool.facts.store import FactsFile, default_path
from regtool.gc import GcOptions, collect
from regtool.inspect.listing import list_registry
from regtool.layout.manifests import store_identity
from regtool.oci import OCI_INDEX, Descriptor, Digest, Manifest, Platform, parse_manifest
from regtool.storage.base import Entry
from regtool.storage.local import LocalDriver
from tests.facts.recording import Recording
from tests.handstore import HandStore

DRY = GcOptions(dry_run=True, min_age=timedelta(0), settle=timedelta(0), delete_untagged=True)


def make_store(root: Path) -> tuple[HandStore, Recording]:
    recording = Recording(LocalDriver(root))
    store = HandStore(driver=recording)
    return store, recording


def fill(store: HandStore) -> dict[str, Digest]:
    a = store.image("app", "1", layers=2)
    b = store.image("app", "2", layers=1)
    store.image("other", "x", layers=3)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": str(d),
                    "size": 1,
                    "platform": {"os": "linux", "architecture": arch},
                }
                for d, arch in ((a.digest, "amd64"), (b.digest, "arm64"))
            ],
        }
    ).encode()
    return {"index": store.manifest("app", "multi", index), "a": a.digest, "b": b.digest}


def listing(store: HandStore, **kw: Any) -> dict[str, Any]:
    with open_cache(store_identity(store.layout), **kw) as facts:
        return asdict(list_registry(store.layout, "t", facts=facts))


def test_a_warm_cache_reads_no_manifest_and_lists_the_same(tmp_path: Path) -> None:
    store, recording = make_store(tmp_path / "store")
    fill(store)
    cold = listing(store, enabled=False)
    assert len(recording.blob_reads()) == 4
    recording.read.clear()
    assert listing(store) == cold  # fills the cache
    recording.read.clear()
    assert listing(store) == cold  # a new ManifestFacts: what another run finds
    assert recording.blob_reads() == []


def test_a_replaced_manifest_blob_is_read_again(tmp_path: Path) -> None:
    store, recording = make_store(tmp_path / "store")
    digests = fill(store)
    listing(store)
    # damage: other content under the same digest's path (as corruption would leave)
    path = tmp_path / "store" / store.layout.blob_data(digests["a"])
    other = json.loads(path.read_bytes())
    other["layers"] = other["layers"][:1]
    path.write_bytes(json.dumps(other).encode())
    recording.read.clear()
    after = listing(store)
    assert recording.blob_reads() == [store.layout.blob_data(digests["a"])]
    assert after == listing(store, enabled=False)
    # garbage of the same size, written a millisecond after the manifest
    stat = path.stat()
    path.write_bytes(b"x" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    damaged = listing(store)
    assert any("manifest " + str(digests["a"]) in w for w in damaged["warnings"])


def test_gc_with_a_warm_cache_plans_the_same(tmp_path: Path) -> None:
    store, recording = make_store(tmp_path / "store")
    fill(store)
    store.image("gone", "1")
    store.driver.delete(store.layout.tag_dir("gone", "1"))
    with open_cache(store_identity(store.layout), enabled=False) as facts:
        cold = collect(store.layout, "t", DRY, facts=facts)
    assert cold.items
    for _ in range(2):
        recording.read.clear()
        with open_cache(store_identity(store.layout)) as facts:
            warm = collect(store.layout, "t", DRY, facts=facts)
        assert sorted(map(asdict, warm.items), key=str) == sorted(map(asdict, cold.items), key=str)
        assert warm.warnings == cold.warnings
    assert recording.blob_reads() == []


def test_a_cache_written_by_another_process_is_used(tmp_path: Path) -> None:
    store, recording = make_store(tmp_path / "store")
    fill(store)
    regtool = Path(sys.executable).parent / "regtool"
    run = subprocess.run(
        [str(regtool), "ls", str(tmp_path / "store"), "--json"], capture_output=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert default_path().exists()
    recording.read.clear()
    listing(store)
    assert recording.blob_reads() == []


def test_a_corrupt_cache_file_is_rebuilt_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, recording = make_store(tmp_path / "store")
    fill(store)
    expected = listing(store)
    path = default_path()
    path.write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with caplog.at_level(logging.WARNING, logger="regtool.facts"):
        assert listing(store) == expected
    assert [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()] != []
    assert len(caplog.records) == 1
    caplog.clear()
    recording.read.clear()
    assert listing(store) == expected  # rebuilt: the run before filled it again
    assert recording.blob_reads() == []
    assert caplog.records == []


def test_no_cache_gives_the_same_output_and_writes_nothing(cli: Any, tmp_path: Path) -> None:
    store, _ = make_store(tmp_path / "store")
    fill(store)
    where = str(tmp_path / "store")
    bypassed = cli("ls", where, "--no-cache")
    assert bypassed.exit_code == 0 and not default_path().exists()
    off = cli("gc", "-l", where, "--dry-run", "--json", env={"REGTOOL_CACHE": "off"})
    assert off.exit_code == 0 and not default_path().exists()
    cold, warm = cli("ls", where), cli("ls", where)
    assert default_path().exists()
    assert bypassed.stdout == cold.stdout == warm.stdout
    warm_gc = cli("gc", "-l", where, "--dry-run", "--json")
    assert without_timings(warm_gc.stdout) == without_timings(off.stdout)


def without_timings(stdout: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(stdout)
    doc.pop("seconds", None)
    doc.get("totals", {}).pop("seconds", None)
    return doc


def test_the_cache_stays_bounded(tmp_path: Path) -> None:
    file = FactsFile(tmp_path / "facts.sqlite", max_entries=20)
    store = file.store_id("s")
    assert store is not None
    for i in range(50):
        file.put(store, f"sha256:{i:064x}", 1, "v", b"{}")
    file.close()
    again = FactsFile(tmp_path / "facts.sqlite", max_entries=20)
    assert 0 < again.count() <= 20
    store = again.store_id("s")
    assert store is not None
    assert again.get(store, f"sha256:{49:064x}") is not None  # the newest stay
    again.close()


def test_facts_keep_what_the_tools_need() -> None:
    d = Digest.of(b"x")
    manifest = Manifest(
        "application/vnd.oci.image.manifest.v1+json",
        config=Descriptor(d, 2, "application/vnd.example+json"),
        layers=(Descriptor(d, None, "t", urls=("https://e/x",)), Descriptor(d, 0)),
        manifests=(Descriptor(d, 5, "m", Platform("linux", "arm", "v7"), artifact_type="a"),),
        subject=Descriptor(d, 9, "s"),
        artifact_type="application/vnd.example",
        annotations={"k": "v"},
    )
    back = decode(encode(manifest))
    assert back == manifest and back.annotations == {"k": "v"}
    plain = parse_manifest(b'{"schemaVersion":2,"manifests":[]}')
    assert decode(encode(plain)) == plain


def test_two_connections_write_and_read_one_file(tmp_path: Path) -> None:
    """Two processes' connections (WAL): each sees what the other wrote, neither waits
    on the other's open read, and their batches interleave without loss."""
    path = tmp_path / "facts.sqlite"
    one, two = FactsFile(path), FactsFile(path)
    s1, s2 = one.store_id("s"), two.store_id("s")
    assert s1 == s2 and s1 is not None
    for i in range(10):
        (one if i % 2 else two).put(s1, f"d{i}", 1, "v", str(i).encode())
        (one if i % 2 else two).flush()
    assert [two.get(s1, f"d{i}") for i in range(10)] == [
        (1, "v", str(i).encode()) for i in range(10)
    ]
    one.close()
    two.close()
    assert FactsFile(path).count() == 10


def test_many_facts_are_asked_in_one_query_a_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`get_many` answers what `get` answers, digest by digest (a changed entry is a miss,
    a row not yet written is found), with one query per `QUERY_CHUNK` digests."""
    monkeypatch.setattr("regtool.facts.store.QUERY_CHUNK", 4)
    manifests = {Digest.of(str(i).encode()): Manifest(OCI_INDEX) for i in range(10)}
    when = datetime(2026, 1, 1, tzinfo=UTC)
    entries = {d: Entry("", size=100 + i, modified=when) for i, d in enumerate(manifests)}
    path = tmp_path / "facts.sqlite"
    with open_cache("s", path=path) as facts:
        for d, m in manifests.items():
            facts.put(d, entries[d], m)
    now = dict(entries)
    changed, *_ = manifests
    now[changed] = Entry("", size=now[changed].size, modified=when + timedelta(seconds=1))
    with open_cache("s", path=path) as facts:
        assert facts.file is not None and facts.file._db is not None
        statements: list[str] = []
        facts.file._db.set_trace_callback(statements.append)
        found = facts.get_many(now)
        facts.file._db.set_trace_callback(None)
        assert found == {d: m for d, m in manifests.items() if d != changed}
        one_by_one = {d: facts.get(d, e) for d, e in now.items()}
        assert found == {d: m for d, m in one_by_one.items() if m is not None}
        assert len([s for s in statements if s.startswith("SELECT")]) == 3  # 4 + 4 + 2
        unwritten = Digest.of(b"new")
        facts.put(unwritten, entries[changed], manifests[changed])
        assert facts.get_many({unwritten: entries[changed]}) == {unwritten: manifests[changed]}


def test_facts_held_in_memory_obey_the_same_validity(tmp_path: Path) -> None:
    """A process answers again from memory (no query), and only while the entry matches:
    a blob replaced under the same digest is a miss there too."""
    digest, manifest = Digest.of(b"m"), Manifest(OCI_INDEX)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    entry = Entry("", size=10, modified=when)
    changed = Entry("", size=10, modified=when + timedelta(seconds=1))
    with open_cache("s", path=tmp_path / "facts.sqlite") as facts:
        facts.put(digest, entry, manifest)
        facts.flush()
        assert facts.file is not None and facts.file._db is not None
        statements: list[str] = []
        facts.file._db.set_trace_callback(statements.append)
        assert facts.get(digest, entry) == manifest
        assert facts.get_many({digest: entry}) == {digest: manifest}
        assert statements == []  # from memory
        assert facts.get(digest, changed) is None
        assert facts.get_many({digest: changed}) == {}
    with open_cache("s", path=tmp_path / "facts.sqlite") as facts:  # another process
        assert facts.get(digest, entry) == manifest and facts.get(digest, changed) is None

"""Storage faults during a retention run: before the first deletion nothing is deleted
(exit 2); in the re-check after tags went, no manifest is deleted and the report says so.
The faults are injected into the local driver (no real disk fails on demand)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from regtool.errors import TransientError
from regtool.oci import Digest
from regtool.retention import (
    FAILED,
    Hooks,
    Policy,
    PolicySelector,
    RetentionOptions,
    make_rule,
    run_retention,
)
from regtool.storage.local import LocalDriver
from tests.handstore import HandStore


def _store(tmp_path: Path) -> HandStore:
    store = HandStore(tmp_path / "store")
    for n, tag in enumerate(("a", "b", "c")):
        store.image("app", tag)
        path = store.path(store.layout.tag_current_link("app", tag))
        os.utime(path, (1_000_000 + n, 1_000_000 + n))
    return store


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_a_fault_while_planning_deletes_nothing(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)
    root = tmp_path / "store"
    before = _files(root)
    real_get = LocalDriver.get

    def get(self: LocalDriver, path: str) -> bytes:
        if path.endswith("/current/link"):
            raise TransientError("read timed out", path=path, driver="local")
        return real_get(self, path)

    monkeypatch.setattr(LocalDriver, "get", get)
    result = cli("prune", "-l", str(root), "--keep-last", "1")
    assert result.exit_code == 2
    assert "read timed out" in result.stderr and "Traceback" not in result.stderr
    assert _files(root) == before
    monkeypatch.undo()
    assert all(store.layout.tag_digest("app", t) for t in "abc")  # every tag still there


def test_a_fault_in_the_re_check_keeps_every_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)

    def fail_walks() -> None:  # tags went; the re-check's walk fails from now on
        def walk(self: LocalDriver, prefix: str = "", **kw: Any) -> Any:
            raise TransientError("listing timed out", path=prefix, driver="local")

        monkeypatch.setattr(LocalDriver, "walk", walk)

    policy = Policy((make_rule("test", keep_last=1),))
    options = RetentionOptions(hooks=Hooks(before_manifests=fail_walks))
    result = run_retention(store.layout, "here", PolicySelector(policy), options)
    assert {t.tag: t.outcome for t in result.tags(False)} == {"a": "deleted", "b": "deleted"}
    manifests = result.manifests(False)
    assert len(manifests) == 2 and {m.outcome for m in manifests} == {FAILED}
    assert all("re-check" in (m.error or "") for m in manifests)
    for m in manifests:
        path = store.path(store.layout.revision_link("app", Digest.parse(m.digest)))
        assert path.exists()
    assert not result.ok

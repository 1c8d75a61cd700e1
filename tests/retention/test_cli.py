"""`regtool rm` and `regtool prune` from the command line: references, patterns, bad input
(one line, exit 2, nothing deleted), and tag links read rather than inferred."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from regtool.layout.v2_write import write_link
from regtool.oci import Digest
from tests.handstore import HandStore


def _tree(root: Path) -> dict[str, str]:
    """Every file below `root` with a hash of its content (and every directory)."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        found[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return found


def _age(store: HandStore, repo: str, tag: str, days: float) -> None:
    path = store.path(store.layout.tag_current_link(repo, tag))
    when = path.stat().st_mtime - days * 86400
    os.utime(path, (when, when))


@pytest.fixture
def store(tmp_path: Path) -> HandStore:
    s = HandStore(tmp_path / "store")
    for n, tag in enumerate(("1.0", "pr-1", "pr-2", "pr-3")):
        s.image("team/web", tag)
        _age(s, "team/web", tag, 40 - 10 * n)  # 40, 30, 20, 10 days
    s.image("team/api", "pr-1")
    s.image("tool", "1")
    return s


def test_rm_untags_and_deletes_a_manifest_no_other_tag_names(cli: Any, store: HandStore) -> None:
    root = str(store.driver.root)  # type: ignore[attr-defined]
    layout = store.layout
    pr1, one_oh = layout.tag_digest("team/web", "pr-1"), layout.tag_digest("team/web", "1.0")
    write_link(layout, layout.tag_index_link("team/web", "stable", one_oh), one_oh)
    write_link(layout, layout.tag_current_link("team/web", "stable"), one_oh)
    doc = cli.json("rm", "-l", root, "team/web:pr-1", "team/web:1.0")
    (repo,) = doc["repositories"]
    tags = {t["tag"]: (t["keep"], t["outcome"]) for t in repo["tags"]}
    assert tags["pr-1"] == (False, "deleted") and tags["1.0"] == (False, "deleted")
    assert tags["stable"] == (True, None)
    manifests = {m["digest"]: (m["keep"], m["reason"]) for m in repo["manifests"]}
    assert manifests == {
        str(pr1): (False, "tag pr-1 is deleted"),
        str(one_oh): (True, "tag stable is kept"),
    }
    assert not store.path(layout.tag_dir("team/web", "pr-1")).exists()
    assert not store.path(layout.revision_link("team/web", pr1)).exists()
    assert store.path(layout.revision_link("team/web", one_oh)).exists()


def test_rm_by_digest_deletes_every_tag_on_it(cli: Any, store: HandStore) -> None:
    root = str(store.driver.root)  # type: ignore[attr-defined]
    layout = store.layout
    digest = layout.tag_digest("tool", "1")
    write_link(layout, layout.tag_index_link("tool", "also", digest), digest)
    write_link(layout, layout.tag_current_link("tool", "also"), digest)
    doc = cli.json("rm", "-l", root, f"tool@{digest}")
    assert {(t["tag"], t["keep"]) for t in doc["repositories"][0]["tags"]} == {
        ("1", False),
        ("also", False),
    }
    assert not store.path(layout.revision_link("tool", digest)).exists()
    assert not store.path(layout.tags_dir("tool")).exists()


def test_rm_patterns_and_dry_run(cli: Any, store: HandStore) -> None:
    root = Path(store.driver.root)  # type: ignore[attr-defined]
    before = _tree(root)
    doc = cli.json("rm", "-l", str(root), "team/*:pr-*", "--dry-run")
    assert doc["dry_run"]
    deleted = {
        (r["name"], t["tag"]) for r in doc["repositories"] for t in r["tags"] if not t["keep"]
    }
    assert deleted == {
        ("team/web", "pr-1"),
        ("team/web", "pr-2"),
        ("team/web", "pr-3"),
        ("team/api", "pr-1"),
    }
    assert _tree(root) == before
    result = cli("rm", "-l", str(root), "team/*:nothing-*")
    assert result.exit_code == 0
    assert "warning: nothing matches team/*:nothing-*" in result.stderr
    # a tag that only some of the repositories a pattern matches have
    doc = cli.json("rm", "-l", str(root), "team/*:1.0", "--dry-run")
    deleted = {
        (r["name"], t["tag"]) for r in doc["repositories"] for t in r["tags"] if not t["keep"]
    }
    assert deleted == {("team/web", "1.0")}


def test_prune_older_than_in_one_repository(cli: Any, store: HandStore) -> None:
    root = str(store.driver.root)  # type: ignore[attr-defined]
    doc = cli.json(
        "prune",
        "-l",
        root,
        "--repositories",
        "team/*",
        "--older-than",
        "25d",
        "--keep-tags",
        r"\d+\.\d+",
    )
    deleted = {
        (r["name"], t["tag"]) for r in doc["repositories"] for t in r["tags"] if not t["keep"]
    }
    assert deleted == {("team/web", "pr-1")}  # 30 days old; 1.0 is kept by --keep-tags
    assert {r["name"] for r in doc["repositories"]} == {"team/web", "team/api"}
    result = cli("prune", "-l", root, "--older-than", "35d")
    assert result.exit_code == 0
    assert "deleted 1 tag and 1 manifest" in result.stdout  # 1.0: 40 days


BAD = [
    (("prune", "--keep-last", "1", "--keep-tags", "("), "invalid regex '('"),
    (("prune", "--keep-last", "1", "--repositories", "nope"), "no repository nope"),
    (("prune", "--keep-tags", "v.*"), "says nothing to delete"),
    (("prune", "--older-than", "soon"), "'soon' is not a duration"),
    (("prune", "--keep-last", "1", "--policy", "POLICY"), "either --policy or rule options"),
    (("prune", "--policy", "POLICY"), "unknown key 'keep_lst'"),
    (("prune", "--policy", "/no/such/file.yml"), "cannot read the policy"),
    (("prune", "--keep-pulled-within", "30d"), "needs pull records, and this store has none"),
    (("rm", "nope:1"), "no repository nope"),
    (("rm", "tool:2"), "no tag tool:2"),
    (("rm", "tool"), "is not REPOSITORY:TAG or REPOSITORY@DIGEST"),
    (("rm", "tool@sha256:00"), "invalid digest"),
    (("rm", "tool@sha256:" + "0" * 64), "no manifest sha256:000"),
    (("rm", "Tool:1"), "invalid repository name"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_and_nothing_deleted(
    cli: Any, store: HandStore, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    policy = tmp_path / "retention.yml"
    policy.write_text("rules:\n  - keep_lst: 5\n")
    root = Path(store.driver.root)  # type: ignore[attr-defined]
    before = _tree(root)
    argv = [str(policy) if a == "POLICY" else a for a in args]
    result = cli(argv[0], "-l", str(root), *argv[1:])
    assert result.exit_code == 2, result.stdout + result.stderr
    assert message in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 4 and "Traceback" not in result.stderr  # typer frames usage errors
    assert _tree(root) == before


def test_a_tag_link_is_read_not_inferred(cli: Any, store: HandStore) -> None:
    """A current link of the right length that names another manifest than its history
    says: only reading it tells, and the manifest it names must stay."""
    layout = store.layout
    root = str(store.driver.root)  # type: ignore[attr-defined]
    other = layout.tag_digest("tool", "1")
    image = store.image("tool", "2")
    write_link(layout, layout.revision_link("tool", other), other)
    write_link(layout, layout.tag_current_link("tool", "2"), other)  # history says `image`
    doc = cli.json("rm", "-l", root, "tool:1")
    (repo,) = doc["repositories"]
    assert {m["digest"]: m["keep"] for m in repo["manifests"]} == {str(other): True}
    assert store.path(layout.revision_link("tool", other)).exists()
    assert store.path(layout.revision_link("tool", image.digest)).exists()


def _index(store: HandStore, repo: str, tag: str, children: list[Any]) -> Any:
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": str(c.digest),
                "size": len(store.layout.read_blob(c.digest)),
            }
            for c in children
        ],
    }
    return store.manifest(repo, tag, json.dumps(doc).encode())


def _referrer(store: HandStore, repo: str, subject: Any) -> Any:
    """An artifact whose subject is `subject`, stored by digest (no tag)."""
    config = store.blob(repo, b"{}")
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.signature",
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": str(config),
            "size": 2,
        },
        "layers": [],
        "subject": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": str(subject),
            "size": len(store.layout.read_blob(subject)),
        },
    }
    raw = json.dumps(doc).encode()
    digest = Digest.of(raw)
    store.driver.put(store.layout.blob_data(digest), raw)
    write_link(store.layout, store.layout.revision_link(repo, digest), digest)
    return digest


def test_rm_by_digest_of_a_child_of_a_kept_index_is_refused(cli: Any, tmp_path: Path) -> None:
    store = HandStore(tmp_path / "store")
    a, b = store.image("multi", "amd64"), store.image("multi", "arm64")
    _index(store, "multi", "latest", [a, b])
    root = str(tmp_path / "store")
    result = cli("rm", "-l", root, f"multi@{a.digest}", "--json")
    assert result.exit_code == 1
    assert f"error: multi@{a.digest} not deleted: in kept index" in result.stderr
    doc = json.loads(result.stdout)
    (repo,) = doc["repositories"]
    tags = {t["tag"]: (t["keep"], t["reason"]) for t in repo["tags"]}
    assert tags["amd64"][0] and "in kept index" in tags["amd64"][1]
    assert [(m["digest"], m["keep"]) for m in repo["manifests"]] == [(str(a.digest), True)]
    assert store.path(store.layout.revision_link("multi", a.digest)).exists()

    # Untagging the index takes the children no tag keeps; a tagged child stays.
    doc = cli.json("rm", "-l", root, "multi:latest")
    (repo,) = doc["repositories"]
    assert {m["digest"]: m["keep"] for m in repo["manifests"]} == {
        str(_digest(store, "multi", "latest", doc)): False,
        str(a.digest): True,
        str(b.digest): True,
    }


def _digest(store: HandStore, repo: str, tag: str, doc: Any) -> str:
    (t,) = [t for r in doc["repositories"] for t in r["tags"] if t["tag"] == tag]
    return str(t["digest"])


def test_referrers_go_with_their_subject_unless_kept(cli: Any, tmp_path: Path) -> None:
    store = HandStore(tmp_path / "store")
    root = str(tmp_path / "store")
    one, two = store.image("signed", "1"), store.image("signed", "2")
    sig1, sig2 = _referrer(store, "signed", one.digest), _referrer(store, "signed", two.digest)
    sig_of_sig = _referrer(store, "signed", sig1)
    doc = cli.json("rm", "-l", root, "signed:1", "--dry-run")
    gone = {m["digest"]: m["reason"] for m in doc["repositories"][0]["manifests"] if not m["keep"]}
    assert gone == {
        str(one.digest): "tag 1 is deleted",
        str(sig1): f"referrer of deleted {one.digest.short()}",
        str(sig_of_sig): f"referrer of deleted {sig1.short()}",
    }
    doc = cli.json("rm", "-l", root, "signed:1", "--keep-referrers")
    gone = {m["digest"] for m in doc["repositories"][0]["manifests"] if not m["keep"]}
    assert gone == {str(one.digest)}
    for digest in (sig1, sig2, sig_of_sig):
        assert store.path(store.layout.revision_link("signed", digest)).exists()


def test_the_table_says_what_goes_and_why(cli: Any, store: HandStore) -> None:
    root = str(store.driver.root)  # type: ignore[attr-defined]
    result = cli("prune", "-l", root, "--repositories", "team/web", "--keep-last", "2", "-n")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "DIGEST", "PUSHED", "ACTION", "REASON"]
    rows = {line.split()[1]: line for line in lines[1:5]}
    assert "would delete  not among the last 2 pushed" in rows["1.0"]
    assert "keep          among the last 2 pushed (#1)" in rows["pr-3"]
    assert "MANIFEST" in result.stdout
    assert lines[-1].startswith("1 repository: would delete 2 tags and 2 manifests, kept 2 tags")
    assert "gc would then free about" in lines[-1]


def test_a_directory_that_is_no_repository_is_named_and_left_alone(
    cli: Any, store: HandStore
) -> None:
    """As ls, verify and gc: a directory distribution cannot serve is warned of, and
    nothing in it is touched."""
    root = Path(store.driver.root)  # type: ignore[attr-defined]
    upper = root / store.layout.repositories_dir() / "Upper"
    (upper / "_manifests" / "tags" / "old" / "current").mkdir(parents=True)
    (upper / "_manifests" / "tags" / "old" / "current" / "link").write_text("sha256:" + "0" * 64)
    before = _tree(upper)
    result = cli("prune", "-l", str(root), "--keep-last", "0")
    assert result.exit_code == 0, result.stderr
    assert "directory 'Upper' in repositories/: not a valid repository name" in result.stderr
    assert "left alone" in result.stderr
    assert _tree(upper) == before
    doc = cli.json("prune", "-l", str(root), "--keep-last", "0", "--dry-run")
    assert any("'Upper'" in w for w in doc["warnings"])


def test_a_pattern_matching_no_repository_is_a_warning(cli: Any, store: HandStore) -> None:
    """A nightly prune of `ci/*` before the first CI push: said, not an error, and
    nothing is touched."""
    root = Path(store.driver.root)  # type: ignore[attr-defined]
    before = _tree(root)
    result = cli("prune", "-l", str(root), "--keep-last", "1", "--repositories", "nope/*")
    assert result.exit_code == 0, result.stderr
    assert "no repository matches nope/*" in result.stderr
    assert _tree(root) == before

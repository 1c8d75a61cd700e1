"""Verifying a V1 (`docker-registry`) store: see `regtool.inspect.verify`.

A tag names an image id; the image is whole when every image of its ancestry is: `json`
parses and names its own id, `ancestry` is `[id] + parent's ancestry`, `layer` exists, and
`sha256(json + "\\n" + layer)` is among its `_checksum` values. Each image is checked once
per run (ancestors are shared), `jobs` at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from regtool.concurrency import map_outcomes
from regtool.errors import RegtoolError, is_fault
from regtool.inspect.verify import (
    Once,
    Options,
    Problem,
    Target,
    Verification,
    VerifyResult,
    fault_detail,
    not_found,
    raise_failures,
    short,
)
from regtool.layout.blobs import v1_checksum
from regtool.layout.v1 import V1Image, V1Layout
from regtool.oci import JsonInvalid, load_json
from regtool.text import plural


@dataclass(frozen=True)
class ImageVerdict:
    problems: tuple[Problem, ...] = ()
    hashed: int = 0  # layer bytes hashed


@dataclass(frozen=True)
class _Json:
    data: bytes | None = None
    parent: str | None = None
    problems: tuple[Problem, ...] = ()


def _no(image_id: str, name: str) -> Problem:
    return Problem(image_id, "missing", f"image {short(image_id)} has no {name}")


class V1Verifier:
    def __init__(self, layout: V1Layout, images: dict[str, V1Image], options: Options):
        self.layout = layout
        self.images = images  # from one walk of images/
        self.options = options
        self.ancestries: Once[str, list[str] | Problem] = Once(self._read_ancestry)
        self.jsons: Once[str, _Json] = Once(self._read_json)
        self.verdicts: Once[str, ImageVerdict] = Once(self._check_image)

    def _read_ancestry(self, image_id: str) -> list[str] | Problem:
        try:
            return self.layout.ancestry(image_id)
        except FileNotFoundError:
            return Problem(image_id, "missing", f"image {short(image_id)} has no ancestry")
        except (RegtoolError, OSError) as e:
            if is_fault(e):
                detail = f"ancestry of {short(image_id)}: {fault_detail(e)}"
                return Problem(image_id, "unreadable", detail)
            return Problem(image_id, "invalid", str(e))

    def _check_image(self, image_id: str) -> ImageVerdict:
        files = self.images.get(image_id)
        if files is None:
            return ImageVerdict(
                (Problem(image_id, "missing", f"image {short(image_id)} is not in storage"),)
            )
        problems: list[Problem] = []
        if "_inprogress" in files.files:
            problems.append(
                Problem(image_id, "incomplete", f"image {short(image_id)}: upload unfinished")
            )
        found = self.jsons(image_id)
        problems.extend(found.problems)
        json_bytes = found.data
        self._check_ancestry(image_id, found.parent, problems)
        checksums = self._read_checksums(image_id, files, problems)
        if "layer" not in files.files:
            problems.append(_no(image_id, "layer"))
            return ImageVerdict(tuple(problems))
        if self.options.quick or json_bytes is None or checksums is None:
            return ImageVerdict(tuple(problems))
        try:
            hashed = v1_checksum(
                self.layout,
                image_id,
                json_bytes,
                self.options.progress.advance,
                self.options.chunk_size,
            )
        except FileNotFoundError:
            problems.append(_no(image_id, "layer"))
            return ImageVerdict(tuple(problems))
        except (RegtoolError, OSError) as e:
            detail = f"layer of {short(image_id)}: {fault_detail(e)}"
            problems.append(Problem(image_id, "unreadable", detail))
            return ImageVerdict(tuple(problems))
        actual = str(hashed.digest)
        sha256 = [c for c in checksums if c.startswith("sha256:")]
        if not sha256:
            problems.append(
                Problem(
                    image_id,
                    "unverifiable",
                    f"image {short(image_id)} has only tarsum checksums",
                )
            )
        elif actual not in sha256:
            problems.append(
                Problem(
                    image_id,
                    "digest",
                    f"image {short(image_id)}: json + layer hash to {short(actual)}, "
                    f"_checksum says {short(sha256[0])}",
                )
            )
        return ImageVerdict(tuple(problems), hashed.size)

    def _read_json(self, image_id: str) -> _Json:
        """The image's json bytes (None when unusable) and its parent's id."""
        files = self.images.get(image_id)
        missing = _Json(problems=(_no(image_id, "json"),))
        if files is None or "json" not in files.files:
            return missing
        try:
            data = self.layout.driver.get(self.layout.image_file(image_id, "json"))
            doc = load_json(data)
        except FileNotFoundError:
            return missing
        except JsonInvalid:
            return _Json(
                problems=(Problem(image_id, "invalid", f"json of {short(image_id)} is not JSON"),)
            )
        except (RegtoolError, OSError) as e:
            detail = f"json of {short(image_id)}: {fault_detail(e)}"
            return _Json(problems=(Problem(image_id, "unreadable", detail),))
        if not isinstance(doc, dict) or doc.get("id") != image_id:
            found = doc.get("id") if isinstance(doc, dict) else None
            # repr() of a deeply nested value would recurse as deep: strings only
            shown = repr(found[:80]) if isinstance(found, str) else "none"
            detail = f"json of {short(image_id)} names id {shown}"
            return _Json(data, problems=(Problem(image_id, "invalid", detail),))
        parent = doc.get("parent")
        return _Json(data, parent if isinstance(parent, str) and parent else None)

    def _json_chain(self, image_id: str) -> list[str] | None:
        """The ancestry the json files' `parent` fields spell out; None when some json on
        the way cannot tell (that image's own check reports it)."""
        chain = [image_id]
        while True:
            found = self.jsons(chain[-1])
            if found.data is None or found.problems:
                return None
            if found.parent is None:
                return chain
            if found.parent in chain:
                return None  # a loop: the ancestry comparison will show it
            chain.append(found.parent)

    def _check_ancestry(self, image_id: str, parent: str | None, problems: list[Problem]) -> None:
        ancestry = self.ancestries(image_id)
        if isinstance(ancestry, Problem):
            problems.append(ancestry)
            return
        if not ancestry or ancestry[0] != image_id:
            problems.append(
                Problem(image_id, "invalid", f"ancestry of {short(image_id)} starts elsewhere")
            )
            return
        # Judge against the json chain, so that only the image whose own ancestry file is
        # wrong is blamed, not every descendant whose ancestry disagrees with it.
        expected = self._json_chain(image_id)
        if expected is not None and ancestry != expected:
            detail = (
                f"ancestry of {short(image_id)} lists {plural(len(ancestry), 'image')}, "
                f"the json parents {len(expected)}"
                if len(ancestry) != len(expected)
                else f"ancestry of {short(image_id)} differs from its json parents"
            )
            problems.append(Problem(image_id, "invalid", detail))
        elif expected is None and parent is not None and ancestry[1:2] != [parent]:
            detail = f"ancestry of {short(image_id)} does not continue with {short(parent)}"
            problems.append(Problem(image_id, "invalid", detail))

    def _read_checksums(
        self, image_id: str, files: V1Image, problems: list[Problem]
    ) -> list[str] | None:
        if "_checksum" not in files.files:
            problems.append(_no(image_id, "_checksum"))
            return None
        try:
            data = self.layout.driver.get(self.layout.image_file(image_id, "_checksum"))
        except FileNotFoundError:
            problems.append(_no(image_id, "_checksum"))
            return None
        except (RegtoolError, OSError) as e:
            detail = f"_checksum of {short(image_id)}: {fault_detail(e)}"
            problems.append(Problem(image_id, "unreadable", detail))
            return None
        return parse_checksums(data)


def parse_checksums(data: bytes) -> list[str]:
    """`_checksum` holds a JSON list of checksums; older data a bare (maybe quoted) string."""
    text = data.decode("utf-8", "replace").strip()
    try:
        value = load_json(text)
    except JsonInvalid:
        return [text] if text else []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def verify_v1(layout: V1Layout, targets: list[Target], options: Options, out: Verification) -> None:
    if options.everything:
        repos = layout.scan_repositories()
    else:
        repos = {}
        for name in dict.fromkeys(t.name for t in targets):
            repos.update(layout.scan_repositories(name))
            if name not in repos:
                raise not_found(f"repository {name}", out.location)
    items: list[tuple[str, str]] = []
    if options.everything:
        items = [(n, t) for n in sorted(repos) for t in sorted(repos[n].tags)]
    for target in targets:
        if target.tag is None:
            items.extend((target.name, t) for t in sorted(repos[target.name].tags))
        elif target.tag in repos[target.name].tags:
            items.append((target.name, target.tag))
        else:
            raise not_found(f"tag {target.name}:{target.tag}", out.location)
    items = list(dict.fromkeys(items))

    images = layout.scan_images()
    verifier = V1Verifier(layout, images, options)
    image_ids = map_outcomes(lambda item: layout.tag_image_id(*item), items, options.jobs)
    chains: dict[tuple[str, str], list[str]] = {}
    results: dict[tuple[str, str], VerifyResult] = {}
    for item in items:
        result = results[item] = VerifyResult(item[0], item[1])
        image_id = image_ids[item]
        if isinstance(image_id, Exception):
            if is_fault(image_id):
                detail = f"tag file: {fault_detail(image_id)}"
                result.add([Problem(f"{item[0]}:{item[1]}", "unreadable", detail)])
            elif isinstance(image_id, RegtoolError):
                result.add([Problem(f"{item[0]}:{item[1]}", "invalid", str(image_id))])
            else:
                raise RuntimeError(f"reading tag {item[0]}:{item[1]} failed") from image_id
            continue
        result.image_id = image_id
        ancestry = verifier.ancestries(image_id)
        chains[item] = ancestry if isinstance(ancestry, list) else [image_id]

    todo = {i for chain in chains.values() for i in chain}
    if options.blobs:
        todo |= images.keys()
    if not options.quick:
        options.progress.expect(sum(images[i].layer_size or 0 for i in todo if i in images))
    # largest layers first, so the last jobs to finish are short ones
    order = sorted(todo, key=lambda i: images[i].layer_size or 0 if i in images else 0)
    raise_failures(map_outcomes(verifier.verdicts, reversed(order), options.jobs), "image")

    for item in items:
        for image_id in chains.get(item, []):
            results[item].add(verifier.verdicts(image_id).problems)
        out.results.append(results[item])
    if options.blobs:
        reported = {p.object for r in out.results for p in r.problems}
        for image_id in sorted(images.keys() - reported):
            problems = verifier.verdicts(image_id).problems
            if any(p.fails for p in problems):
                out.results.append(
                    VerifyResult(None, None, image_id=image_id, problems=list(problems))
                )

    checked = verifier.verdicts.values()
    out.images = len(checked)
    out.blobs = sum(1 for v in checked.values() if v.hashed or options.quick)
    out.bytes_hashed = sum(v.hashed for v in checked.values())

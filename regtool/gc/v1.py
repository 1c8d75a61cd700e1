"""Garbage collection of a V1 (`docker-registry`) store: images that no tag's ancestry
reaches go, directory and all. One walk of `repositories/` and of `images/`, one GET per
tag and per tagged image's `ancestry`. If any tag or ancestry is damaged, nothing is
deleted: a V1 image cannot say who depends on it. A storage fault stops gc (raised)."""

from __future__ import annotations

from datetime import UTC, datetime

from regtool.concurrency import map_outcomes
from regtool.errors import raise_faults
from regtool.gc.model import Doomed, GcOptions, GcResult
from regtool.gc.snapshot import young
from regtool.gc.sweep import delete_items
from regtool.gc.v2 import phase
from regtool.layout.v1 import V1Layout


def collect_v1(
    layout: V1Layout, location: str, options: GcOptions, now: datetime | None = None
) -> GcResult:
    result = GcResult(location, "v1", options)
    cutoff = (now or datetime.now(UTC)) - options.min_age
    with phase(result, "repositories"):
        repos = layout.scan_repositories()
    with phase(result, "mark"):
        tags = [(name, tag) for name, repo in repos.items() for tag in repo.tags]
        ids = map_outcomes(lambda nt: layout.tag_image_id(*nt), tags, options.jobs)
        raise_faults(ids.values())
        problems = [f"{n}:{t}: {e}" for (n, t), e in ids.items() if isinstance(e, Exception)]
        tagged = {i for i in ids.values() if isinstance(i, str)}
        ancestries = map_outcomes(layout.ancestry, tagged, options.jobs)
        raise_faults(ancestries.values())
        keep: set[str] = set()
        for image_id, ancestry in ancestries.items():
            if isinstance(ancestry, Exception):
                problems.append(f"ancestry of {image_id}: {ancestry}")
            else:
                keep |= {image_id, *ancestry}
    result.marked_blobs = len(keep)
    with phase(result, "images"):
        images = layout.scan_images()
    if problems:
        result.warnings += problems
        result.warnings.append("V1 store: nothing deleted, since a tag or ancestry is unreadable")
        return result
    with phase(result, "plan"):
        for image_id, image in sorted(images.items()):
            if image_id in keep:
                continue
            if any(young(e, cutoff) for e in image.files.values()):
                result.kept_young += 1
                continue
            size, segments = 0, []
            for entry in image.files.values():
                head = None
                if layout.driver.has_large_objects and not entry.size:  # lists as 0 bytes
                    head = layout.driver.large_object(entry.path)
                size += (head.size or 0) if head else (entry.size or 0)
                if head and head.segment_set:
                    segments += [e.path for e in layout.driver.walk(head.segment_set)]
            paths = tuple(sorted(e.path for e in image.files.values())) + tuple(segments)
            result.items.append(Doomed("v1-image", image_id, paths, size, "in no tag's ancestry"))
    if not options.dry_run:
        with phase(result, "delete"):
            delete_items(layout.driver, result)
    return result

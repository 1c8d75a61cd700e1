"""Which uploads are old enough to delete: gc's rule, also what `regtool serve`'s upload
purging deletes by. An upload's age runs from the later of its `startedat` and the last
write to any of its files (data, hash states, a lease being renewed); one whose age cannot
be told (a file without a time, no files and no `startedat`) is kept. An old one a writer
still holds (a client resuming a long-idle upload) is kept by its lease (`purge`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from regtool.concurrency import DEFAULT_JOBS, map_outcomes
from regtool.errors import raise_faults
from regtool.layout.v2 import V2Layout
from regtool.storage.base import Entry


@dataclass(frozen=True)
class OldUpload:
    """An upload untouched since `last` (UTC); `began` is its `startedat`, if readable."""

    repository: str
    upload_id: str
    files: tuple[Entry, ...]
    began: datetime | None
    last: datetime


def old_uploads(
    layout: V2Layout,
    uploads: dict[tuple[str, str], list[Entry]],
    limit: datetime,
    jobs: int = DEFAULT_JOBS,
) -> list[OldUpload]:
    """Of `uploads` ((directory, upload id) -> its files, as a walk found them), those
    untouched since before `limit`, sorted by directory and id. Reads each `startedat`
    (one GET each); a storage fault reading one is raised."""
    started_paths = [
        layout.upload_started_at(n, u)
        for (n, u), files in uploads.items()
        if any(f.path == layout.upload_started_at(n, u) for f in files)
    ]
    started = map_outcomes(layout.driver.get, started_paths, jobs)
    raise_faults(started.values())
    found = []
    for (name, upload_id), files in sorted(uploads.items()):
        raw = started.get(layout.upload_started_at(name, upload_id))
        times = [f.modified for f in files]
        began = parse_started_at(raw) if isinstance(raw, bytes) else None
        if any(t is None for t in times) or (not files and began is None):
            continue  # age unknown: keep
        known = [t for t in times if t is not None]
        last = max([began, *known] if began else known)
        if last > limit:
            continue
        found.append(OldUpload(name, upload_id, tuple(files), began, last))
    return found


def all_uploads(layout: V2Layout) -> dict[tuple[str, str], list[Entry]]:
    """(repository, upload id) -> the upload's files, of every upload below
    `repositories/` (one walk)."""
    walked = layout.driver.walk(layout.repositories_dir(), temporaries=True)
    index = layout.index_entries(walked, include_all=True)
    return {
        (name, upload_id): files
        for name, repo in index.items()
        for upload_id, files in repo.uploads.items()
    }


def parse_started_at(raw: bytes) -> datetime | None:
    """A `startedat` file's time (RFC 3339; UTC when it names no zone); None if unreadable."""
    try:
        when = datetime.fromisoformat(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)

"""Pull records: when `regtool serve` last served each manifest (distribution keeps no
such thing). They live in a tree of regtool's own beside distribution's, which
distribution never reads:

    <base>/regtool/pulls/since                      RFC 3339 UTC: when recording began
    <base>/regtool/pulls/<name>/<alg>/<hex>         RFC 3339 UTC: a pull of that manifest

where `<base>/docker/registry/v2` is distribution's tree (`<base>` is empty with
filesystem naming, `files` with distribution's Swift naming: in both, distribution's own
path `/regtool/pulls`). A store rooted straight at a v2 directory keeps them in
`_regtool/pulls/` inside it. A record is rewritten at most once an hour per manifest per
server, so its time is the last pull to within an hour; its modification time in a listing
is that time too, so reading every record costs one walk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from regtool.layout.v2 import FILESYSTEM_ROOT, V2Layout
from regtool.oci import Digest, check_name
from regtool.storage.base import join

SINCE = "since"


@dataclass
class PullRecords:
    since: datetime  # recording began: no record means "not pulled since then"
    times: dict[str, dict[Digest, datetime]] = field(default_factory=dict)  # repo -> last


def pulls_dir(layout: V2Layout) -> str:
    if layout.root == FILESYSTEM_ROOT or layout.root.endswith("/" + FILESYSTEM_ROOT):
        return join(layout.root[: -len(FILESYSTEM_ROOT)], "regtool/pulls")
    return join(layout.root, "_regtool/pulls")


def since_file(layout: V2Layout) -> str:
    return join(pulls_dir(layout), SINCE)


def pull_record(layout: V2Layout, name: str, digest: Digest) -> str:
    return join(pulls_dir(layout), check_name(name), digest.algorithm, digest.hex)


def parse_pull_record(layout: V2Layout, path: str) -> tuple[str, Digest] | None:
    """The inverse of `pull_record`: (repository, digest), or None for any other path."""
    base = pulls_dir(layout) + "/"
    if not path.startswith(base):
        return None
    parts = path[len(base) :].split("/")
    if len(parts) < 3:
        return None
    try:
        return check_name("/".join(parts[:-2])), Digest.parse(f"{parts[-2]}:{parts[-1]}")
    except ValueError:
        return None


def stamp(when: datetime) -> bytes:
    """A record's content: RFC 3339 UTC, no newline (like an upload's `startedat`)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode("ascii")


def read_pull_records(layout: V2Layout) -> PullRecords | None:
    """Every record from one walk; None if the store has never kept any (no `since`)."""
    since: datetime | None = None
    records = PullRecords(datetime.now(UTC))
    for entry in layout.driver.walk(pulls_dir(layout)):
        if entry.path == since_file(layout):
            since = _parse(layout.driver.get(entry.path)) or entry.modified
            continue
        found = parse_pull_record(layout, entry.path)
        if found is not None and entry.modified is not None:
            name, digest = found
            records.times.setdefault(name, {})[digest] = entry.modified
    if since is None:
        return None
    records.since = since
    return records


def _parse(raw: bytes) -> datetime | None:
    try:
        when = datetime.fromisoformat(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)

"""`regtool gc`: garbage collection of orphaned blobs, links, uploads, Swift segments and
V1 images, safe to run while the registry serves.

Guarantees (V2):
- Kept: every manifest a tag reaches, its config and layers, the children of an index
  (recursively) and the referrers of anything kept; without `delete_untagged`, every
  revision too. A repository with an unreadable tag link or manifest keeps all its
  revisions and every blob in its `_layers`.
- Nothing modified within `min_age` is deleted (blob data, links, uploads, segment sets);
  a young `_layers` or revision link keeps what it names.
- Before deleting, `repositories/` is walked again: in a repository that changed since
  the mark began, every revision, tag and `_layers` link is kept with what it
  references, and a new `_layers` link anywhere keeps its blob.
- Links go before blob data, every `_layers` link to a doomed blob included, so the
  registry refuses a manifest that arrives afterwards. After `settle`, a last walk
  writes back the links deleted in repositories that changed meanwhile (a manifest that
  had passed the registry's checks) and keeps what they name (`sweep.sweep`).
- A blob whose link could not be deleted is not deleted.
- A storage fault (not damage: see `errors.is_fault`) stops gc. Before the first deletion
  it is raised and nothing is deleted; in the last re-check, after links went, no blob
  data, segment or upload is deleted and `GcResult.fault` says why.
- A link file that does not name its blob keeps what its path names, like a right one;
  those a listing shows wrong and that gc keeps are reported as warnings.
Not guaranteed: a manifest that takes longer than `settle` to store, a blob uploaded
again between the last walk and its deletion, or a link a lagging Swift listing does not
show yet.

Cost: one walk of `repositories/`, `blobs/` (and `segments/` on Swift; with the facts
cache on, the walk of `blobs/` comes before the mark and serves it too), one GET per
distinct manifest and per tag link whose digest the listing does not tell for certain
(every tag on local and SFTP storage, none on Swift), no per-blob stat; a real run walks
`repositories/` twice more and waits `settle`. Swift large objects: a listing shows a
DLO as 0 bytes and not which segment set it uses, so gc HEADs only the objects it is
about to delete (size = their segments'); finding segment sets no object names
(`orphan_segments`) needs a HEAD of every large object, so it is opt-in. Memory: bounded,
the large working sets spill to disk past `GcOptions.in_memory` entries (`gc/spill.py`).
"""

from __future__ import annotations

from datetime import datetime

from regtool.facts import ManifestFacts
from regtool.gc.model import Doomed, GcOptions, GcResult
from regtool.gc.v1 import collect_v1
from regtool.gc.v2 import collect_v2
from regtool.layout.detect import Layout
from regtool.layout.v2 import V2Layout

__all__ = ["Doomed", "GcOptions", "GcResult", "collect"]


def collect(
    layout: Layout,
    location: str,
    options: GcOptions,
    now: datetime | None = None,
    facts: ManifestFacts | None = None,
) -> GcResult:
    """Plan (and unless `options.dry_run`, carry out) a garbage collection. V2 manifests
    are read through `facts` where given (`regtool.facts`)."""
    if isinstance(layout, V2Layout):
        result = collect_v2(layout, location, options, now, facts)
    else:
        result = collect_v1(layout, location, options, now)
    result.requests = layout.driver.request_count()
    return result

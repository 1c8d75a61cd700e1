"""The manifest-facts cache: what ls, gc, the server and the UI need of each manifest,
kept by digest across runs in a sqlite file, used only while the blob is unchanged.

Public API:
- `open_cache(identity, enabled=True) -> ManifestFacts` (`identity`: from
  `layout.manifests.store_identity(layout)`); close it when done.
- `ManifestFacts.get(digest, entry) -> Manifest | None`, `.put(digest, entry, manifest)`:
  `entry` is the manifest blob's listing entry (or stat), which decides validity;
  `.get_many({digest: entry}) -> {digest: Manifest}` asks for many in one query.
- `ManifestFacts.segment_sets(entries) -> {path: set}`, `.put_segment_set(entry, set)`:
  which segment set each Swift large object's manifest names (gc), by the object's
  listing entry in the same way (`validity.large_object_validator`).
- `cache_enabled(flag)`: `--no-cache` and `REGTOOL_CACHE=off`.
Most callers read through `layout.manifests.ManifestReader(layout, facts=...)`, which
does the lookups, the reads and the puts.

Modules: `codec` (the facts' JSON), `validity` (entry -> validator), `store` (the sqlite
file), `cache` (`ManifestFacts`).
"""

from regtool.facts.cache import ENV, ManifestFacts, cache_enabled, open_cache

__all__ = ["ENV", "ManifestFacts", "cache_enabled", "open_cache"]

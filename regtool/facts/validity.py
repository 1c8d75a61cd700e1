"""When a cached fact may be used: the manifest blob's listing entry still matches.

A manifest is addressed by its digest, so its facts never change; but the bytes stored
under that digest can (damage, a repair, a foreign tool), and regtool reports what is
stored. A fact is therefore kept with a *validator* taken from the blob's listing entry
(`storage.base.Entry`), and used only while the entry gives the same one:
- Swift: the object's MD5 (`hash`/ETag) and size. Any change of content changes the MD5.
- local, SFTP: modification time and size. A rewrite changes the mtime (a writer renames
  a new file into place); one within the same timestamp tick and of the same size is not
  noticed: `verify` never takes anything from the cache.
A large object (a Swift DLO lists as 0 bytes, its MD5 is its empty manifest's) and an
entry without size or time give no validator: such a manifest is always read. What a
large object's own manifest names (its segment set, for gc) has a validator of its own,
`large_object_validator`.
"""

from __future__ import annotations

from regtool.storage.base import Entry


def validator(entry: Entry) -> str | None:
    """A short text that changes whenever the content behind `entry` does, or None when
    the entry tells too little to rely on (see the module docstring)."""
    if not entry.size:
        return None
    if entry.checksum is not None:
        return f"md5:{entry.checksum}:{entry.size}"
    if entry.modified is not None:
        return f"mtime:{entry.modified.timestamp():.9f}:{entry.size}"
    return None


def large_object_validator(entry: Entry) -> str | None:
    """The validator of a large object's manifest (a Swift DLO, listed as 0 bytes): its
    listed modification time to the microsecond, MD5 and size. Swift gives every PUT, and
    every POST (which can change `X-Object-Manifest`), a timestamp newer than the last, and
    lists it as `last_modified`, so any rewrite of the manifest changes it. None without a
    listed time."""
    if entry.modified is None:
        return None
    when = entry.modified.isoformat(timespec="microseconds")
    return f"dlo:{when}:{entry.checksum}:{entry.size or 0}"

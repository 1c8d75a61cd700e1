"""Deleting one old upload under its lease: what the server's upload purging and `regtool
gc --uploads-older-than` both do with each upload the age rule (`age`) found."""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from datetime import datetime
from functools import partial

from regtool.errors import StorageError
from regtool.layout.v2 import V2Layout
from regtool.uploads.lease import Lease, LeaseBusy, LeaseTerms


def purge_upload(
    layout: V2Layout,
    name: str,
    upload_id: str,
    limit: datetime,
    terms: LeaseTerms,
    alone: Collection[str] = (),
) -> bool:
    """Delete the upload `upload_id` of repository `name` if no writer holds its lease
    and none of its files was written after `limit` (UTC); False if it stays (leased,
    written since it was found old, or gone already). The lease is taken first and held
    until the upload is gone, so two purges (or a purge and a request) never act on one
    upload at once: a request that comes meanwhile is refused (`LeaseBusy`), then finds
    no upload. A storage fault is raised.

    The upload's large objects (Swift DLOs) go with their segments, but for those at the
    paths `alone`, whose segments another object names too (gc/large_objects.py): their
    manifests go first, by themselves."""
    driver = layout.driver
    try:
        lease = Lease.take(driver, partial(layout.upload_lease, name, upload_id), terms, 0)
    except LeaseBusy:
        return False
    try:
        walked = driver.walk(layout.upload_dir(name, upload_id), temporaries=True)
        files = [e for e in walked if e.path != lease.path]
        if any(e.modified is None or e.modified > limit for e in files):
            return False  # written since it was found old
        try:
            lease.check()  # still this purge's (Swift: two creates can both seem to win)
        except LeaseBusy:
            return False
        by_themselves = [e.path for e in files if e.path in alone]
        if by_themselves:
            report = driver.delete_many(by_themselves)
            if report.failed:  # deleting the directory now would take their segments
                path, why = next(iter(report.failed.items()))
                raise StorageError(f"could not delete {path}: {why}", path=path)
        lease.forsake()
        with contextlib.suppress(FileNotFoundError):
            # gone meanwhile (another purge), but for the lease just taken: that goes
            driver.delete(layout.upload_dir(name, upload_id))
        return bool(files)
    finally:
        lease.release()  # nothing once forsaken

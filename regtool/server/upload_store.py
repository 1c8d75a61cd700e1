"""Blob uploads kept in storage (`_uploads/<uuid>/`), so any server process can continue
one that another started. Blocking, no HTTP.

An upload is there while its `startedat` is; its `data` appears with the first bytes.
A request that appends to an upload or completes it first opens an `UploadSession`,
which holds the upload's lease (`uploads.lease`): one request at a time, across every
process sharing the store; another is refused at once with `LeaseBusy`.

Completing checks the digest over the bytes stored, not over what requests said they
sent: the running hash remembered after an append (`hash_states.py`) is used only while a
stat of the data still matches it; otherwise, or when the upload's lease was ever taken
over, the stored bytes are hashed again. Then, as distribution does, `data` moves to
`blobs/` (unless a blob of that size is already there: one of another size is a copy cut
short, and is replaced), the blob is linked into the repository, and the upload is
deleted.
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from regtool.layout import v2_write
from regtool.layout.blobs import CHUNK_SIZE
from regtool.layout.v2 import V2Layout
from regtool.layout.v2_write import stored_blob_size
from regtool.oci import Digest
from regtool.server.errors import BlobUploadUnknown, DigestMismatch, RangeInvalid
from regtool.server.hash_states import Fingerprint, HashStates, new_hasher
from regtool.storage.base import Writer
from regtool.uploads.lease import Lease, LeaseBusy, LeaseTerms, committed_size
from regtool.uploads.purge import purge_upload

# Upload ids are the lowercase UUIDs `start` makes, matched whole and in ASCII.
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)


class UploadStore:
    def __init__(
        self,
        layout: V2Layout,
        hash_states: HashStates | None = None,
        lease_terms: LeaseTerms | None = None,
    ):
        self.layout = layout
        self.driver = layout.driver
        self.hash_states = hash_states or HashStates()
        self.lease_terms = lease_terms or LeaseTerms()

    def start(self, name: str) -> str:
        """A new upload's id (a UUID); its `startedat` is written."""
        upload_id = str(uuid.uuid4())
        v2_write.write_started_at(self.layout, name, upload_id)
        return upload_id

    def size(self, name: str, upload_id: str) -> int:
        """Bytes the upload holds (committed: not those a request is still appending);
        `BlobUploadUnknown` if there is no such upload."""
        self._check_exists(name, upload_id)
        leased = committed_size(
            self.driver, partial(self.layout.upload_lease, name, upload_id), self.lease_terms
        )
        return self._data_size(name, upload_id) if leased is None else leased

    def open(self, name: str, upload_id: str) -> UploadSession:
        """Take the upload's lease for one request: `BlobUploadUnknown` if there is no such
        upload, `LeaseBusy` (with the size the upload holds, without what the holder is
        still appending) while another request holds it."""
        self._check_exists(name, upload_id)
        before = self._data_size(name, upload_id)  # recorded in the lease, checked below
        lease = Lease.take(
            self.driver,
            partial(self.layout.upload_lease, name, upload_id),
            self.lease_terms,
            before,
        )
        try:
            fingerprint = self._fingerprint(name, upload_id)
            size = fingerprint[0] if fingerprint else 0
            if size != before:  # a holder committed or took its bytes away meanwhile
                lease.committed = size
                lease.renew()
        except BaseException:
            lease.release()
            raise
        return UploadSession(self, name, upload_id, lease, fingerprint)

    def cancel(self, name: str, upload_id: str) -> None:
        """Delete the upload; `BlobUploadUnknown` if there is none."""
        self._check_exists(name, upload_id)
        self.hash_states.forget(upload_id)
        try:
            self.driver.delete(self.layout.upload_dir(name, upload_id))
        except FileNotFoundError:
            raise BlobUploadUnknown(f"upload {upload_id} unknown") from None

    def purge(self, name: str, upload_id: str, limit: datetime, alone: Sequence[str] = ()) -> bool:
        """Delete the upload under its lease if none of its files was written after
        `limit` (UTC), the large objects at `alone` without their segments; False if it
        stays (`uploads.purge.purge_upload`)."""
        deleted = purge_upload(self.layout, name, upload_id, limit, self.lease_terms, alone)
        if deleted:
            self.hash_states.forget(upload_id)
        return deleted

    # --- helpers -----------------------------------------------------------------------
    def _check_exists(self, name: str, upload_id: str) -> None:
        if not _UUID_RE.fullmatch(upload_id) or not self.driver.exists(
            self.layout.upload_started_at(name, upload_id)
        ):
            raise BlobUploadUnknown(f"upload {upload_id[:64]} unknown", {"uuid": upload_id[:64]})

    def _data_size(self, name: str, upload_id: str) -> int:
        fingerprint = self._fingerprint(name, upload_id)
        return fingerprint[0] if fingerprint else 0

    def _fingerprint(self, name: str, upload_id: str) -> Fingerprint | None:
        """What a stat tells of the upload's data; None while it has none."""
        try:
            entry = self.driver.stat(self.layout.upload_data(name, upload_id))
        except FileNotFoundError:
            return None
        return entry.size or 0, entry.modified


class UploadSession:
    """One request's hold on an upload, from `UploadStore.open` until `close`: it may
    append (`write`, then `finish` or `abort`) and `complete`. The caller renews the
    lease every `store.lease_terms.renew_every` seconds while it holds it (`renew`).

    Appends are serialised: an `abort` called while a `write` is still under way in
    another thread (its request was cancelled meanwhile) waits for it, so that nothing
    lands after the bytes were taken away."""

    def __init__(
        self,
        store: UploadStore,
        name: str,
        upload_id: str,
        lease: Lease,
        fingerprint: Fingerprint | None,
    ):
        self.store = store
        self.name = name
        self.upload_id = upload_id
        self.lease = lease
        # What a stat told of the data when the lease was taken or after this session's
        # last append: under the lease, nothing else changes it.
        self.fingerprint = fingerprint
        self._appender: Appender | None = None
        self._appending = threading.Lock()
        #: Whether `complete` turned the upload into a blob: nothing is left to close.
        self.completed = False

    @property
    def appending(self) -> bool:
        """Whether bytes were written and not yet committed or taken away."""
        return self._appender is not None

    def write(self, data: bytes) -> None:
        """Append `data` (not yet committed: see `finish`, `abort`)."""
        with self._appending:
            self._write(data)

    def _write(self, data: bytes) -> None:
        if self._appender is None:
            self._appender = self._open_appender()
        self._appender.write(data)

    def finish(self, data: bytes = b"") -> None:
        """Append `data`, then commit everything written since the last commit."""
        with self._appending:
            if data:
                self._write(data)
            if self._appender is not None:
                appender, self._appender = self._appender, None
                try:
                    appender.commit()
                except BaseException:
                    appender.cancel()
                    raise

    def abort(self) -> None:
        """Take away what was written since the last commit."""
        with self._appending:
            appender, self._appender = self._appender, None
            if appender is not None:
                appender.cancel()

    def close(self) -> None:
        """End the session: `abort` what is not committed, release the lease (nothing
        after `complete`: the upload went, lease and all)."""
        try:
            self.abort()
        finally:
            self.release()

    @property
    def size(self) -> int:
        """Bytes the upload holds."""
        return self.fingerprint[0] if self.fingerprint else 0

    def check_offset(self, offset: int | None) -> None:
        """A chunk said to start at `offset` must start where the upload ends:
        `RangeInvalid` on a gap or an overlap."""
        if offset is not None and offset != self.size:
            raise RangeInvalid(f"chunk starts at {offset}, upload has {self.size} bytes", self.size)

    def _open_appender(self) -> Appender:
        """A writer continuing the upload, hashing as it goes when the hash of what is
        stored is known."""
        store = self.store
        path = store.layout.upload_data(self.name, self.upload_id)
        self.lease.ensure()
        fingerprint = self.fingerprint
        hasher = None
        if not self.lease.doubtful:
            hasher = (
                new_hasher()
                if fingerprint is None
                else store.hash_states.get(self.upload_id, fingerprint)
            )
        writer = store.driver.writer(path, append=fingerprint is not None)
        return Appender(self, writer, hasher)

    def complete(self, digest: Digest) -> int:
        """Check the stored bytes against `digest` and turn the upload into a blob linked
        into the repository; returns its size. A mismatch cancels the upload (as
        distribution does) and raises `DigestMismatch`."""
        store, layout, driver = self.store, self.store.layout, self.store.driver
        fingerprint = self.fingerprint
        actual = Digest(digest.algorithm, self._stored_hash(fingerprint, digest.algorithm))
        if actual != digest:
            self.lease.forsake()  # deleted with the upload
            store.cancel(self.name, self.upload_id)
            raise DigestMismatch(
                f"content digest {actual} does not match {digest}", {"digest": str(digest)}
            )
        self.lease.check()  # still ours: nothing was appended after the hash
        size = fingerprint[0] if fingerprint else 0
        # A blob already stored is kept only if it has the verified bytes' size: one cut
        # short (a move that copies, killed half-way; a crash of another tool) is
        # replaced. On Swift the replaced large object's segments go at once: a reader
        # still streaming it is cut short, as it would have been by the missing bytes.
        if stored_blob_size(layout, digest) != size:
            blob = layout.blob_data(digest)
            if fingerprint is None:
                driver.put(blob, b"")
            else:
                driver.move(layout.upload_data(self.name, self.upload_id), blob)
        v2_write.write_link(layout, layout.layer_link(self.name, digest), digest)
        store.hash_states.forget(self.upload_id)
        self.lease.forsake()  # deleted with the upload
        driver.delete(layout.upload_dir(self.name, self.upload_id))
        self.completed = True
        return size

    def renew(self) -> None:
        self.lease.renew()

    def release(self) -> None:
        self.lease.release()

    def _stored_hash(self, fingerprint: Fingerprint | None, algorithm: str) -> str:
        """The hex digest of the bytes stored, from the remembered state when it still
        describes them, else read back."""
        if fingerprint is None:
            return hashlib.new(algorithm).hexdigest()
        if algorithm == "sha256" and not self.lease.doubtful:
            state = self.store.hash_states.get(self.upload_id, fingerprint)
            if state is not None:
                return str(state.hexdigest())
        hasher = hashlib.new(algorithm)
        size = 0
        path = self.store.layout.upload_data(self.name, self.upload_id)
        with self.store.driver.open(path) as reader:
            while chunk := reader.read(CHUNK_SIZE):
                self.lease.ensure()  # a long re-hash: the lease is renewed meanwhile
                hasher.update(chunk)
                size += len(chunk)
        if size != fingerprint[0]:
            raise LeaseBusy("the upload changed while it was being read", size)
        return hasher.hexdigest()


class Appender:
    """Appends one request's bytes to an upload under the session's lease."""

    def __init__(self, session: UploadSession, writer: Writer, hasher: Any | None):
        self.session = session
        self.writer = writer
        self.hasher = hasher

    @property
    def size(self) -> int:
        return self.writer.size

    def write(self, data: bytes) -> None:
        self.session.lease.check_now_and_then()  # never a byte once it is not ours
        self.writer.write(data)
        if self.hasher is not None:
            self.hasher.update(data)

    def commit(self) -> int:
        """Make the bytes part of the upload; remember the hash of what is now stored."""
        session = self.session
        session.lease.check()
        self.writer.commit()
        store = session.store
        fingerprint = store._fingerprint(session.name, session.upload_id)
        session.fingerprint = fingerprint
        if fingerprint is None or fingerprint[0] != self.writer.size:
            raise LeaseBusy("the upload changed under its lease", session.size)
        session.lease.committed = fingerprint[0]
        if self.hasher is not None:
            store.hash_states.put(session.upload_id, fingerprint, self.hasher)
        else:
            store.hash_states.forget(session.upload_id)
        return self.writer.size

    def cancel(self) -> None:
        """Take this request's bytes away again. A writer whose bytes lie apart from any
        other's (`Writer.isolated`: Swift's segments) always does, so that a loser of a
        lease race on Swift leaves nothing in the winner's upload or blob. Elsewhere
        only while the lease is ours: once it is not, another request may be continuing
        after them, and cutting the file back would take its bytes too (the lease is
        lost there only when its holder stalled past half its life, and an heir treats
        the upload as doubtful, hashing whatever it holds)."""
        if not self.writer.isolated:
            try:
                self.session.lease.check()
            except LeaseBusy:
                return
        self.writer.cancel()

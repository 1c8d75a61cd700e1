"""Blob uploads kept in storage (`_uploads/<uuid>/`), so any server process can continue
one that another started. Blocking, no HTTP.

An upload is there while its `startedat` is; its `data` appears with the first bytes.
The running hash of an upload is remembered in memory keyed by (uuid, size): a request
that lands on another process, or after a restart, re-hashes what is stored instead.
Completing moves `data` to `blobs/` (unless that blob is already there), links the blob
into the repository, then deletes the upload: distribution's order.
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections import OrderedDict
from typing import Any

from regtool.layout import v2_write
from regtool.layout.blobs import CHUNK_SIZE
from regtool.layout.v2 import V2Layout
from regtool.oci import Digest
from regtool.server.errors import BlobUploadUnknown, DigestMismatch, RangeInvalid
from regtool.storage.base import Writer

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HASH_CACHE_SIZE = 256


class Appender:
    """Appends one request's bytes to an upload, hashing as it writes."""

    def __init__(self, store: UploadStore, name: str, upload_id: str, writer: Writer, hasher: Any):
        self.store = store
        self.name = name
        self.upload_id = upload_id
        self.writer = writer
        self.hasher = hasher

    @property
    def size(self) -> int:
        return self.writer.size

    def write(self, data: bytes) -> None:
        self.writer.write(data)
        self.hasher.update(data)

    def commit(self) -> int:
        self.writer.commit()
        self.store._remember(self.upload_id, self.writer.size, self.hasher)
        return self.writer.size

    def cancel(self) -> None:
        self.writer.cancel()


class UploadStore:
    def __init__(self, layout: V2Layout, cache_size: int = HASH_CACHE_SIZE):
        self.layout = layout
        self.driver = layout.driver
        self._hashes: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def start(self, name: str) -> str:
        upload_id = str(uuid.uuid4())
        v2_write.write_started_at(self.layout, name, upload_id)
        return upload_id

    def size(self, name: str, upload_id: str) -> int:
        """Bytes received so far; `BlobUploadUnknown` if there is no such upload."""
        if not _UUID_RE.match(upload_id) or not self.driver.exists(
            self.layout.upload_started_at(name, upload_id)
        ):
            raise BlobUploadUnknown(f"upload {upload_id[:64]} unknown", {"uuid": upload_id[:64]})
        try:
            return self.driver.stat(self.layout.upload_data(name, upload_id)).size or 0
        except FileNotFoundError:
            return 0

    def append(self, name: str, upload_id: str, offset: int | None) -> Appender:
        """A writer continuing the upload. `offset`, when the client said where its chunk
        starts, must be the current size: `RangeInvalid` on a gap or an overlap."""
        size = self.check_offset(name, upload_id, offset)
        hasher = self._hasher(name, upload_id, size, "sha256")
        path = self.layout.upload_data(name, upload_id)
        writer = self.driver.writer(path, append=size > 0 or self.driver.exists(path))
        return Appender(self, name, upload_id, writer, hasher)

    def check_offset(self, name: str, upload_id: str, offset: int | None) -> int:
        """The upload's size, if a chunk starting at `offset` continues it."""
        size = self.size(name, upload_id)
        if offset is not None and offset != size:
            raise RangeInvalid(f"chunk starts at {offset}, upload has {size} bytes", {"size": size})
        return size

    def complete(self, name: str, upload_id: str, digest: Digest, appender: Appender | None) -> int:
        """Check the content against `digest` and turn the upload into a linked blob.
        A mismatch cancels the upload (as distribution does) and raises `DigestMismatch`."""
        if appender is not None:
            size = appender.size
            hasher = appender.hasher
            if digest.algorithm != "sha256":
                hasher = self._hasher(name, upload_id, size, digest.algorithm)
        else:
            size = self.size(name, upload_id)
            hasher = self._hasher(name, upload_id, size, digest.algorithm)
        actual = Digest(digest.algorithm, hasher.hexdigest())
        if actual != digest:
            self.cancel(name, upload_id)
            raise DigestMismatch(
                f"content digest {actual} does not match {digest}", {"digest": str(digest)}
            )
        data = self.layout.upload_data(name, upload_id)
        blob = self.layout.blob_data(digest)
        if not self.driver.exists(blob):
            if size == 0 and not self.driver.exists(data):
                self.driver.put(blob, b"")
            else:
                self.driver.move(data, blob)
        v2_write.write_link(self.layout, self.layout.layer_link(name, digest), digest)
        self._forget(upload_id)
        self.driver.delete(self.layout.upload_dir(name, upload_id))
        return size

    def cancel(self, name: str, upload_id: str) -> None:
        self.size(name, upload_id)  # BlobUploadUnknown if absent
        self._forget(upload_id)
        try:
            self.driver.delete(self.layout.upload_dir(name, upload_id))
        except FileNotFoundError:
            raise BlobUploadUnknown(f"upload {upload_id} unknown") from None

    # --- hash states -------------------------------------------------------------------
    def _hasher(self, name: str, upload_id: str, size: int, algorithm: str) -> Any:
        if algorithm == "sha256":
            with self._lock:
                cached = self._hashes.get((upload_id, size))
            if cached is not None:
                return cached.copy()
        if size == 0:
            return hashlib.new(algorithm)
        # A miss (another process took the earlier chunks, or a restart): re-hash.
        hasher = hashlib.new(algorithm)
        read = 0
        with self.driver.open(self.layout.upload_data(name, upload_id), 0, size) as reader:
            while chunk := reader.read(CHUNK_SIZE):
                hasher.update(chunk)
                read += len(chunk)
        if read != size:
            raise BlobUploadUnknown(f"upload {upload_id} changed while being read")
        return hasher

    def _remember(self, upload_id: str, size: int, hasher: Any) -> None:
        with self._lock:
            self._hashes[(upload_id, size)] = hasher.copy()
            while len(self._hashes) > self._cache_size:
                self._hashes.popitem(last=False)

    def _forget(self, upload_id: str) -> None:
        with self._lock:
            for key in [k for k in self._hashes if k[0] == upload_id]:
                del self._hashes[key]

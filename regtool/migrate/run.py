"""A whole migration: V1 tags in, V2 images out, each layer converted once per run.

1. plan: every tag (of the repositories asked for) read into a chain of images, base
   first (`chains.py`); a tag whose chain is broken fails here, the rest go on;
2. layers: each image of a good chain converted once, `jobs` at a time, unless the
   destination holds a record of it (`layout/migrated.py`): a second run, or one
   continuing a run that stopped, reads nothing again;
3. tags: for each tag whose layers all converted, the config, the manifest and then the
   links, in distribution's order (layer links, manifest blob, revision link, tag
   `index/` link, `current/link`), so a tag never names anything half written. A tag
   already pointing at the same manifest is skipped, and nothing of it is written.

Damage (a broken chain, a missing layer, a bad checksum, a corrupt stream) fails the
tags it concerns; a storage fault does too, and is counted apart (`faults`): the run is
incomplete, and running it again continues it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from regtool.concurrency import DEFAULT_JOBS, map_outcomes
from regtool.errors import (
    LayoutError,
    NameInvalid,
    NotFound,
    RegtoolError,
    UsageError,
    is_fault,
)
from regtool.layout import v2_write
from regtool.layout.migrated import LayerRecord, read_record, write_record
from regtool.layout.v1 import V1Layout, canonical_name, client_name
from regtool.layout.v2 import CorruptLink, V2Layout
from regtool.migrate.chains import ChainBroken, ChainImage, ChainReader
from regtool.migrate.image import LAYER_TYPES, ManifestFormat, V2Image, build_image
from regtool.migrate.layers import Compression, LayerDamaged, convert_layer
from regtool.oci import Digest, check_name, check_tag

Status = Literal["migrated", "skipped", "failed", "planned"]


class Progress(Protocol):
    """What a long migration tells as it goes (the CLI renders it on stderr)."""

    def start(self, images: int, nbytes: int) -> None:
        """`images` layers to convert, of `nbytes` V1 bytes (as listed: a Swift large
        object lists as 0)."""

    def advance(self, nbytes: int) -> None:
        """`nbytes` more V1 layer bytes read."""

    def image_done(self) -> None:
        """One more layer converted (or failed)."""


@dataclass(frozen=True)
class Options:
    """`patterns`: shell globs over canonical repository names (`library/*`); none
    means every repository. `fmt` and `compression` must go together (`check`)."""

    patterns: tuple[str, ...] = ()
    fmt: ManifestFormat = "docker"
    compression: Compression = "gzip"
    jobs: int = DEFAULT_JOBS
    dry_run: bool = False

    def check(self) -> None:
        if (self.fmt, self.compression) not in LAYER_TYPES:
            raise UsageProblem(
                f"--compression {self.compression} needs --format oci: Docker schema 2 has "
                "no media type for it"
            )


class UsageProblem(UsageError):
    """Options that cannot go together."""


@dataclass
class TagResult:
    """`repository`: the V2 name (`client_name`: `exampleapp`, as clients pulled it from
    the V1 registry, which stored it as `library/exampleapp`)."""

    repository: str
    tag: str
    status: Status
    image_id: str | None = None
    digest: Digest | None = None  # the V2 manifest (skipped, migrated, planned)
    reason: str | None = None  # why it failed
    replaces: Digest | None = None  # what the tag named in the destination before (another image)
    fault: bool = False  # failed because storage did not answer, not for damage


@dataclass
class Migration:
    source: str
    destination: str
    dry_run: bool
    fmt: str
    compression: str
    results: list[TagResult] = field(default_factory=list)
    layers_converted: int = 0
    layers_reused: int = 0  # recorded by an earlier run
    empty_layers: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    seconds: float = 0.0

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> list[TagResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def faults(self) -> list[TagResult]:
        return [r for r in self.results if r.fault]


def migrate(
    source: V1Layout,
    destination: V2Layout,
    options: Options,
    progress: Progress | None = None,
    source_name: str = "",
    destination_name: str = "",
) -> Migration:
    """Migrate every tag of `source` that `options.patterns` selects into `destination`.
    The source is only read. Raises only for what stops the whole run (listing the
    source fails); every tag's own trouble is in its `TagResult`."""
    options.check()
    started = time.monotonic()
    run = _Run(source, destination, options, progress)
    result = Migration(
        source_name, destination_name, options.dry_run, options.fmt, options.compression
    )
    result.results = run.go()
    result.layers_converted = run.converted
    result.layers_reused = run.reused
    result.empty_layers = run.empty
    result.bytes_read = run.bytes_read
    result.bytes_written = run.bytes_written
    result.seconds = time.monotonic() - started
    return result


def selected(name: str, patterns: Iterable[str]) -> bool:
    """Whether canonical repository `name` matches one of `patterns` (shell globs; a
    pattern without a `/` is under `library/`, as V1 names are); all when there are none."""
    patterns = list(patterns)
    return not patterns or any(fnmatch.fnmatchcase(name, canonical_name(p)) for p in patterns)


def _reason(error: BaseException) -> str:
    if isinstance(error, RegtoolError | ValueError):
        return str(error)
    if isinstance(error, OSError):
        return error.strerror or f"{type(error).__name__}: {error}"
    return f"{type(error).__name__}: {error}"


class _Run:
    def __init__(
        self,
        source: V1Layout,
        destination: V2Layout,
        options: Options,
        progress: Progress | None,
    ):
        self.source = source
        self.dest = destination
        self.options = options
        self.progress = progress
        self.converted = self.reused = self.empty = 0
        self.bytes_read = self.bytes_written = 0
        self._lock = threading.Lock()

    # --- 1. plan -------------------------------------------------------------------------
    def go(self) -> list[TagResult]:
        repos = self.source.scan_repositories()
        images = self.source.scan_images()
        reader = ChainReader(self.source, images)
        results: list[TagResult] = []
        chains: dict[tuple[str, str], list[ChainImage]] = {}
        for name in sorted(r for r in repos if selected(r, self.options.patterns)):
            for tag in sorted(repos[name].tags):
                result = TagResult(client_name(name), tag, "planned")
                results.append(result)
                try:
                    check_name(result.repository)
                    check_tag(tag)
                except (NameInvalid, ValueError) as e:
                    self._fail(result, e, "not a valid V2 name")
                    continue
                try:
                    chain = reader.chain(name, tag)
                except (ChainBroken, LayoutError, NotFound, OSError, RegtoolError) as e:
                    self._fail(result, e)
                    continue
                result.image_id = chain[-1].image_id
                chains[(result.repository, tag)] = chain
        records = self._layers(chains)
        by_key = {(r.repository, r.tag): r for r in results}
        done = map_outcomes(
            lambda key: self._tag(by_key[key], chains[key], records),
            list(chains),
            self.options.jobs,
        )
        for key, outcome in done.items():
            if isinstance(outcome, Exception):
                self._fail(by_key[key], outcome)
        return results

    def _fail(self, result: TagResult, error: BaseException, prefix: str = "") -> None:
        result.status = "failed"
        result.fault = is_fault(error)
        text = _reason(error)
        result.reason = f"{prefix}: {text}" if prefix else text

    # --- 2. layers -----------------------------------------------------------------------
    def _layers(
        self, chains: dict[tuple[str, str], list[ChainImage]]
    ) -> dict[str, LayerRecord | Exception]:
        """Every layer the chains need, by image id: its record, or why it failed."""
        first_repo: dict[str, str] = {}
        needed: dict[str, ChainImage] = {}
        for (name, _), chain in chains.items():
            for image in chain:
                needed.setdefault(image.image_id, image)
                first_repo.setdefault(image.image_id, name)
        found = map_outcomes(self._recorded, list(needed), self.options.jobs)
        records: dict[str, LayerRecord | Exception] = {}
        todo = []
        for image_id, record in found.items():
            if isinstance(record, LayerRecord):
                records[image_id] = record
                self.reused += 1
            elif isinstance(record, Exception) and is_fault(record):
                records[image_id] = record
            else:
                todo.append(image_id)
        if self.options.dry_run:
            return records
        if self.progress is not None:
            total = sum(needed[i].layer_size or 0 for i in todo)
            self.progress.start(len(todo), total)
        converted = map_outcomes(
            lambda i: self._convert(needed[i], first_repo[i]), todo, self.options.jobs
        )
        for image_id, outcome in converted.items():
            records[image_id] = outcome
        return records

    def _recorded(self, image_id: str) -> LayerRecord | None:
        """The record of an earlier run, if its blob is still stored whole."""
        record = read_record(self.dest, self.options.compression, image_id)
        if record is None:
            return None
        if not record.empty and v2_write.stored_blob_size(self.dest, record.digest) != record.size:
            return None
        return record

    def _convert(self, image: ChainImage, repository: str) -> LayerRecord:
        try:
            return self._convert_layer(image, repository)
        finally:
            if self.progress is not None:
                self.progress.image_done()

    def _convert_layer(self, image: ChainImage, repository: str) -> LayerRecord:
        """Convert one V1 layer through an upload of `repository` (distribution's way
        into `blobs/`), then record it. Nothing is left behind on failure."""
        dest, source = self.dest, self.source
        upload_id = str(uuid.uuid4())
        v2_write.write_started_at(dest, repository, upload_id)
        try:
            layer_path = source.image_file(image.image_id, "layer")
            try:
                reader = source.driver.open(layer_path)
            except FileNotFoundError:
                raise LayerDamaged("layer missing") from None
            with reader, dest.driver.writer(dest.upload_data(repository, upload_id)) as writer:
                converted = convert_layer(
                    reader,
                    writer,
                    self.options.compression,
                    image.json_bytes + b"\n",
                    image.checksum,
                    self._advance,
                )
                if not converted.empty:
                    writer.commit()
            record = LayerRecord(
                converted.digest, converted.diff_id, converted.size, converted.empty
            )
            if record.empty:
                dest.driver.delete(dest.upload_dir(repository, upload_id))
            else:
                v2_write.store_uploaded_blob(
                    dest, repository, upload_id, record.digest, record.size
                )
        except BaseException:
            with contextlib.suppress(RegtoolError, OSError):  # else gc collects it
                dest.driver.delete(dest.upload_dir(repository, upload_id))
            raise
        write_record(dest, self.options.compression, image.image_id, record)
        with self._lock:
            self.converted += 1
            self.empty += record.empty
            self.bytes_written += 0 if record.empty else record.size
        return record

    def _advance(self, nbytes: int) -> None:
        with self._lock:
            self.bytes_read += nbytes
        if self.progress is not None:
            self.progress.advance(nbytes)

    # --- 3. tags -------------------------------------------------------------------------
    def _tag(
        self,
        result: TagResult,
        chain: list[ChainImage],
        records: dict[str, LayerRecord | Exception],
    ) -> None:
        layers: list[LayerRecord] = []
        for image in chain:
            record = records.get(image.image_id)
            if isinstance(record, Exception):
                self._fail(result, record, f"image {image.image_id[:12]}")
                return
            if record is None:  # dry run: not converted
                return
            layers.append(record)
        v2 = build_image(chain, layers, self.options.fmt, self.options.compression)
        result.digest = v2.manifest_digest
        if self._tagged(result.repository, result.tag, v2.manifest_digest):
            result.status = "skipped"
            return
        result.replaces = self._current(result.repository, result.tag)
        if self.options.dry_run:
            return
        self._write(result.repository, result.tag, v2)
        result.status = "migrated"

    def _current(self, name: str, tag: str) -> Digest | None:
        """What the tag names in the destination now, if anything: a migration replaces
        it, as a push of the tag would, and says so."""
        try:
            return self.dest.read_link(self.dest.tag_current_link(name, tag))
        except (FileNotFoundError, CorruptLink):
            return None

    def _tagged(self, name: str, tag: str, digest: Digest) -> bool:
        """Whether the tag already points at `digest`, whose revision is linked."""
        try:
            current = self.dest.read_link(self.dest.tag_current_link(name, tag))
            revision = self.dest.read_link(self.dest.revision_link(name, digest))
        except (FileNotFoundError, CorruptLink):
            return False
        return current == digest and revision == digest

    def _write(self, name: str, tag: str, image: V2Image) -> None:
        """Config and manifest blobs, then the links, in distribution's order."""
        dest = self.dest
        v2_write.store_blob(dest, image.config, image.config_digest)
        for digest in dict.fromkeys([*(layer.digest for layer in image.layers)]):
            v2_write.write_link(dest, dest.layer_link(name, digest), digest)
        v2_write.write_link(dest, dest.layer_link(name, image.config_digest), image.config_digest)
        v2_write.store_blob(dest, image.manifest, image.manifest_digest)
        v2_write.write_link(
            dest, dest.revision_link(name, image.manifest_digest), image.manifest_digest
        )
        v2_write.write_tag(dest, name, tag, image.manifest_digest)

"""The Driver contract over SFTP: a directory on an SFTP server (OpenSSH, hosted gateways).

How a file is replaced depends on the server (`capabilities.Renaming`): atomically with
posix-rename where announced; else by removing the target and renaming (not atomic);
and on a server that refuses rename (some gateways in front of object storage), writers
write in place and `move` copies then deletes. `put_if_absent` never replaces a file on
any of them (`files.create`).
"""

from __future__ import annotations

import getpass
import posixpath
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from typing import BinaryIO, cast

from paramiko.sftp import CMD_REMOVE, CMD_RMDIR

from regtool.concurrency import DEFAULT_JOBS
from regtool.errors import PathNotFound, StorageError, TransientError
from regtool.storage.backoff import Backoff
from regtool.storage.base import DeleteReport, Driver, Entry, Prune, Writer, check_path
from regtool.storage.sftp import confine, files
from regtool.storage.sftp.batches import Batches
from regtool.storage.sftp.connection import Connection, Lease
from regtool.storage.sftp.errors import channel_survives
from regtool.storage.sftp.listing import entry
from regtool.storage.sftp.login import Login, default_known_hosts
from regtool.storage.sftp.protocol import SftpChannel
from regtool.storage.sftp.reads import ManyReads, Outcome
from regtool.storage.sftp.streams import SftpReader, SftpWriter
from regtool.storage.sftp.walk import TreeWalk

PIPELINE_DEPTH = 32  # remove and rmdir requests in flight at once
Outcomes = list[tuple[str, Exception | None]]


def _missing(e: Exception | None) -> bool:
    return isinstance(e, FileNotFoundError)


def _by_depth(paths: Iterable[str]) -> list[list[str]]:
    """Paths grouped by depth, deepest first: children go before their parents."""
    levels: dict[int, list[str]] = {}
    for p in dict.fromkeys(paths):
        levels.setdefault(p.count("/"), []).append(p)
    return [levels[depth] for depth in sorted(levels, reverse=True)]


class SftpDriver(Driver):
    """Files below `root` on an SFTP server: an absolute path ("/srv/registry"), or one
    relative to the login directory ("registry", "~/registry", "" for the login
    directory itself). Connects now: a bad host, host key, key or password fails here."""

    name = "sftp"
    resumes_walks = True

    def __init__(
        self,
        host: str,
        root: str,
        *,
        port: int = 22,
        username: str | None = None,
        password: str | None = None,
        key_filename: str | None = None,
        known_hosts: str | None = None,
        host_key_policy: str = "strict",
        timeout: float = 30.0,
    ):
        login = Login(
            host,
            port,
            username=username or getpass.getuser(),
            password=password,
            key_filename=key_filename,
            known_hosts=[known_hosts] if known_hosts else default_known_hosts(),
            host_key_policy=host_key_policy,
            timeout=timeout,
        )
        if root == "~" or root.startswith("~/"):
            root = root[1:].lstrip("/")
        # "" is the login directory and "x" is below it; "/" and "/srv/x" are absolute
        self._base = root.rstrip("/") or "/" if root.startswith("/") else root.strip("/")
        self._real_root: str | None = None  # the root with links resolved, once known
        self.connection = Connection(login)
        #: How a walk waits out a lost connection (`retry_steps`); None: it does not.
        self._backoff: Backoff | None = None
        self._batches = Batches(self._read_batch)

    def describe(self) -> str:
        login = self.connection.login
        host = f"[{login.host}]" if ":" in login.host else login.host
        root = self._base if self._base.startswith("/") else f"/~/{self._base}".rstrip("/")
        return f"sftp://{login.username}@{host}:{login.port}{root}"

    def close(self) -> None:
        self.connection.close()

    # -- helpers --------------------------------------------------------------------------

    def _abs(self, path: str, *, allow_root: bool = False) -> str:
        check_path(path, allow_root=allow_root)
        if not path:
            return self._base or "."
        return posixpath.join(self._base, path) if self._base else path

    def _pipelined(self, lease: Lease, cmd: int, paths: list[str], out: Outcomes) -> None:
        """`cmd` (remove, rmdir) for every path, a pipeline's depth at a time."""
        pipe = lease.client.pipeline()
        for path in paths:
            if len(pipe) >= PIPELINE_DEPTH:
                out.append(pipe.status())
            pipe.send(path, cmd, self._abs(path))
        while pipe:
            out.append(pipe.status())

    def _prune(self, paths: Iterable[str]) -> None:
        """Remove the parents of `paths` left empty, up to the root, as `local` does."""
        parents: set[str] = set()
        for p in paths:
            while "/" in p:
                p = p.rpartition("/")[0]
                parents.add(p)
        with suppress(StorageError), self.connection.session("") as lease:
            for level in _by_depth(parents):
                self._pipelined(lease, CMD_RMDIR, level, [])  # the server refuses non-empty ones

    def _root(self, client: SftpChannel) -> str:
        """The root's real path (links resolved), asked once."""
        if self._real_root is None:
            self._real_root = client.normalize(self._abs("", allow_root=True))
        return self._real_root

    def _tree(
        self,
        prefix: str,
        temp: bool = False,
        follow: bool = True,
        *,
        recursive: bool = True,
        missing_ok: bool = True,
        prune: Prune | None = None,
        backoff: Backoff | None = None,
    ) -> Iterator[Entry]:
        """Files and directories below `prefix` (only its own with `recursive` False, none
        below a directory `prune` answers True for),
        read on one channel with every known directory's requests in flight at once
        (`walk.py`); links followed (`follow`) as `listing.py` says, else listed as files.
        A missing `prefix` yields nothing, or raises PathNotFound unless `missing_ok`.
        Holds one channel while iterated, which the caller's reads share meanwhile.

        With `backoff`, a transient fault (a lost connection) is waited out as it says
        and the walk goes on where it was, on a new channel (`TreeWalk.resume`): no entry
        is yielded twice or missed. The waits start again once the walk lists a
        directory more, so a walk gives up after `backoff.attempts` faults in a row
        without a directory listed in between, raising the last one."""
        target = self._abs(prefix, allow_root=True)
        walk: TreeWalk | None = None
        failures, waited, listed = 0, 0.0, 0
        while True:
            lease: Lease | None = None
            try:
                lease = self.connection.lease()
                if walk is None:
                    root = self._root(lease.client)
                    walk = TreeWalk(
                        lease.client,
                        root,
                        prefix,
                        target,
                        lease.translate,
                        top_reals=None if prefix else (root,),
                        recursive=recursive,
                        temporaries=temp,
                        follow=follow,
                        prune=prune,
                        open_handles=lease.capabilities.open_handles,
                    )
                else:
                    walk.resume(lease.client, lease.translate)
                with self.connection.lending(lease):  # for what the caller does meanwhile
                    yield from walk
                lease.release()
                return
            except BaseException as e:
                fault = self._walk_failed(e, lease, walk, prefix)
            if isinstance(fault, PathNotFound) and missing_ok:
                return
            if backoff is None or not isinstance(fault, TransientError):
                raise fault
            if walk is not None and walk.listed > listed:  # a new stall: a budget of its own
                failures, waited, listed = 0, 0.0, walk.listed
            failures += 1
            waited += backoff.pause(fault, failures, waited)  # raises `fault` at the end

    def _walk_failed(
        self, e: BaseException, lease: Lease | None, walk: TreeWalk | None, prefix: str
    ) -> BaseException:
        """Give back the channel of a walk that raised `e`, and return what to raise
        instead (a `StorageError` for any Exception)."""
        if lease is None:  # no channel: `lease()` raised a StorageError already
            return e
        error = lease.translate(e, prefix) if isinstance(e, Exception) else e
        in_flight = walk is not None and bool(walk.pipe)  # replies the channel still owes
        lease.release(broken=in_flight or not channel_survives(e))
        return error

    # -- the Driver contract --------------------------------------------------------------

    def list(self, prefix: str = "") -> list[Entry]:
        try:
            return list(self._tree(prefix, recursive=False, missing_ok=False))
        except PathNotFound:
            if prefix == "":
                return []
            raise

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        tree = self._tree(prefix, temporaries, prune=prune, backoff=self._backoff)
        return (e for e in tree if not e.is_dir)

    def retry_steps(self, backoff: Backoff) -> None:
        self._backoff = backoff

    def create_root(self) -> None:
        with self.connection.session("") as lease:
            files.makedirs(lease.client, self._abs("", allow_root=True))

    def root_exists(self) -> bool:
        try:
            with self.connection.session("") as lease:
                attr = lease.client.stat(self._abs("", allow_root=True))
        except PathNotFound:
            return False
        return stat.S_ISDIR(attr.st_mode or 0)

    def stat(self, path: str) -> Entry:
        target = self._abs(path)
        with self.connection.session(path) as lease:
            real, attr = lease.client.stat_resolving(target)
            confine.check(real, self._root(lease.client), path)
            return entry(path, attr)

    def get(self, path: str) -> bytes:
        self._abs(path)
        if self.connection.lends():  # this thread's walk lends its channel: read on it
            outcome = self._read_batch([path])[path]
        else:  # with the reads other threads ask for meanwhile (`batches.py`)
            outcome = self._batches.read(path)
        if isinstance(outcome, StorageError):
            raise outcome
        if outcome is not None:
            return outcome
        with self.open(path) as f:  # large, or changing while read
            return f.read()

    def get_many(
        self, paths: Iterable[str], jobs: int = DEFAULT_JOBS
    ) -> dict[str, bytes | Exception]:
        """Every file's requests on one channel, pipelined (`reads.py`); `jobs` does not
        matter. Files found large, or changing while read, are read alone after."""
        found: dict[str, bytes | Exception] = {}
        valid: list[str] = []
        for path in dict.fromkeys(paths):
            try:
                self._abs(path)
                valid.append(path)
            except StorageError as e:
                found[path] = e
        if valid:
            for path, outcome in self._read_batch(valid).items():
                if outcome is None:  # large, or changing while read
                    try:
                        found[path] = self.get(path)
                    except StorageError as e:
                        found[path] = e
                else:
                    found[path] = outcome
        return {path: found[path] for path in dict.fromkeys(paths)}

    def _read_batch(self, paths: Sequence[str]) -> dict[str, Outcome]:
        """Each valid driver path's `Outcome`, every file's requests in flight at once on
        one channel; a fault of the connection is raised (the channel is not used again),
        naming the path when there is one."""
        with self.connection.session(paths[0] if len(paths) == 1 else "") as lease:
            return ManyReads(
                lease.client,
                self._root(lease.client),
                [(path, self._abs(path)) for path in paths],
                lease.translate,
                read_chunk=lease.capabilities.read_chunk,
                open_handles=lease.capabilities.open_handles,
            ).run()

    def put_if_absent(self, path: str, data: bytes) -> bool:
        target = self._abs(path)
        with self.connection.session(path) as lease:
            confine.check_to_create(lease.client, self._root(lease.client), target, path)
            return files.create(lease, target, data)

    def open(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        target = self._abs(path)

        def make(lease: Lease) -> BinaryIO:
            real, f = lease.client.open_resolving(target, "r")
            try:
                confine.check(real, self._root(lease.client), path)
                attr = f.stat()
                if stat.S_ISDIR(attr.st_mode or 0):  # OpenSSH opens directories
                    raise PathNotFound(path, driver=self.name)
            except BaseException:
                with suppress(Exception):
                    f.close()
                raise
            size = attr.st_size or 0
            end = size if length is None else min(size, offset + length)
            return cast(BinaryIO, SftpReader(lease, f, path, offset, end))

        return self.connection.keep(path, make)

    def writer(self, path: str, append: bool = False) -> Writer:
        target = self._abs(path)

        def make(lease: Lease) -> Writer:
            root = self._root(lease.client)
            if not append:  # appending opens the file with its REALPATH (SftpWriter)
                confine.check_to_create(lease.client, root, target, path)
            return SftpWriter(lease, path, target, append, root)

        return self.connection.keep(path, make)

    def move(self, src: str, dst: str) -> None:
        source, target = self._abs(src), self._abs(dst)
        with self.connection.session(src) as lease:
            client = lease.client
            root = self._root(client)
            (real,) = client.realpaths([source])
            confine.check(real, root, src)
            confine.check_to_create(client, root, target, dst)
            try:
                files.in_new_dir(client, target, lambda: files.move(lease, source, target))
            except FileNotFoundError:
                if not files.exists(client, source):
                    raise PathNotFound(src, driver=self.name) from None
                raise  # the source is there: the target's directory keeps vanishing
        self._prune([src])

    def delete(self, path: str) -> None:
        target = self._abs(path)
        with self.connection.session(path) as lease:
            parent = [(path, posixpath.dirname(target))] if "/" in path else []
            refused = confine.check_directories(lease.client, self._root(lease.client), parent)
            if refused:
                raise refused[path]
            is_dir = stat.S_ISDIR(lease.client.lstat(target).st_mode or 0)
            if not is_dir:
                lease.client.remove(target)
        if is_dir:
            entries = list(self._tree(path, temp=True, follow=False))
            done: Outcomes = []
            with self.connection.session(path) as lease:
                self._pipelined(lease, CMD_REMOVE, [e.path for e in entries if not e.is_dir], done)
                for level in _by_depth([path, *(e.path for e in entries if e.is_dir)]):
                    self._pipelined(lease, CMD_RMDIR, level, done)
                for failed, error in done:
                    if error is not None and not _missing(error):
                        raise self.connection.translate(error, failed)
        self._prune([path])

    def delete_many(self, paths: Iterable[str]) -> DeleteReport:
        report, valid = DeleteReport(), []
        done: Outcomes = []
        for path in paths:
            try:
                self._abs(path)
                valid.append(path)
            except StorageError as e:
                report.fail(path, e)
        try:
            with self.connection.session("") as lease:
                nested = [(p, posixpath.dirname(self._abs(p))) for p in valid if "/" in p]
                refused = confine.check_directories(lease.client, self._root(lease.client), nested)
                for path, refusal in refused.items():
                    report.fail(path, refusal)
                valid = [p for p in valid if p not in refused]
                self._pipelined(lease, CMD_REMOVE, valid, done)
        except StorageError as e:  # the connection failed: what got no answer failed
            for path in valid[len(done) :]:
                report.fail(path, e)
        for path, error in done:
            if error is None or _missing(error):
                report.deleted.append(path)
            else:
                report.fail(path, self.connection.translate(error, path))
        self._prune(report.deleted)
        return report

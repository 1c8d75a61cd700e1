"""A directory on an SFTP server (OpenSSH, Orbit's gateway), through paramiko.

One SSH connection carries up to `MAX_CHANNELS` SFTP channels, each lent to one caller at
a time (a paramiko `SFTPClient` must not be shared between threads); an open reader or
writer keeps its channel until closed. Streaming transfers are in `sftp_transfer.py`.
"""

from __future__ import annotations

import errno
import getpass
import logging
import os
import posixpath
import socket
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, BinaryIO, TypeVar

import paramiko
from paramiko.sftp import CMD_REMOVE, CMD_RMDIR

from regtool.errors import (
    AuthenticationFailed,
    PathNotFound,
    RegtoolError,
    StorageError,
    TransientError,
    Unreachable,
    UsageError,
)
from regtool.storage.base import TEMP_MARK, DeleteReport, Driver, Entry, Writer, check_path
from regtool.storage.sftp_transfer import (
    PIPELINE,
    Pipeline,
    SftpReader,
    SftpWriter,
    StatusClient,
    is_status_reply,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_CHANNELS = 10  # OpenSSH's default MaxSessions; lowered if the server refuses sooner
WALK_THREADS = 8  # each directory listing is a round trip: list several at once
POLICIES = ("strict", "accept-new", "ignore")
Outcomes = list[tuple[str, Exception | None]]


def _missing(e: BaseException | None) -> bool:
    return isinstance(e, OSError) and e.errno == errno.ENOENT


def _entry(path: str, attr: paramiko.SFTPAttributes, temporary: bool = False) -> Entry:
    is_dir = stat.S_ISDIR(attr.st_mode or 0)
    modified = None if attr.st_mtime is None else datetime.fromtimestamp(attr.st_mtime, UTC)
    size = None if is_dir else attr.st_size
    return Entry(path, is_dir=is_dir, size=size, modified=modified, temporary=temporary)


def _regular(attr: paramiko.SFTPAttributes) -> bool:
    """A directory or a regular file: what a store holds (not a fifo, socket, device)."""
    return stat.S_ISDIR(attr.st_mode or 0) or stat.S_ISREG(attr.st_mode or 0)


def _by_depth(paths: Iterable[str]) -> list[list[str]]:
    """Paths grouped by depth, deepest first: children go before their parents."""
    levels: dict[int, list[str]] = {}
    for p in dict.fromkeys(paths):
        levels.setdefault(p.count("/"), []).append(p)
    return [levels[depth] for depth in sorted(levels, reverse=True)]


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    def __init__(self, driver: SftpDriver):
        self.d = driver

    def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
        d, known = self.d, self.d.known_hosts[0]
        if d.host_key_policy == "ignore":
            return
        if d.host_key_policy == "accept-new":
            try:
                os.makedirs(os.path.dirname(known) or ".", mode=0o700, exist_ok=True)
                with open(known, "a") as f:
                    f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
            except OSError as e:
                raise StorageError(
                    f"cannot add the host key to {known}: {e}", driver=d.name
                ) from None
            log.warning(
                "added %s host key %s for %s to %s",
                key.get_name(),
                key.fingerprint,
                hostname,
                known,
            )
            return
        port = f"-p {d.port} " if d.port != 22 else ""
        raise StorageError(
            f"unknown host key for {hostname} ({key.get_name()} {key.fingerprint}): not in "
            f"{' or '.join(d.known_hosts)}. Check the fingerprint, then add it with "
            f"`ssh-keyscan {port}{d.host} >> {known}`, or accept it once with "
            "REGTOOL_SFTP_HOST_KEY_POLICY=accept-new",
            driver=d.name,
        )


class SftpDriver(Driver):
    name = "sftp"

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
        if host_key_policy not in POLICIES:
            raise UsageError(f"host_key_policy must be one of {POLICIES}, not {host_key_policy!r}")
        self.host, self.port, self.timeout = host, port, timeout
        self.username = username or getpass.getuser()
        self._password, self.key_filename = password, key_filename
        self.host_key_policy = host_key_policy
        self.known_hosts = (
            [known_hosts]
            if known_hosts
            else [os.path.expanduser("~/.ssh/known_hosts"), "/etc/ssh/ssh_known_hosts"]
        )
        if root == "~" or root.startswith("~/"):
            root = root[1:].lstrip("/")
        # "" is the login directory and "x" is below it; "/" and "/srv/x" are absolute
        self._base = root.rstrip("/") or "/" if root.startswith("/") else root.strip("/")
        self._cond = threading.Condition(threading.RLock())  # RLock: readers close from GC
        self._ssh: paramiko.SSHClient | None = None
        self._idle: list[paramiko.SFTPClient] = []
        self._channels, self._limit, self._closed = 0, MAX_CHANNELS, False
        with self._cond:
            self._transport()  # fail now on a bad host, key or password

    def describe(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        root = self._base if self._base.startswith("/") else f"/~/{self._base}".rstrip("/")
        return f"sftp://{self.username}@{host}:{self.port}{root}"

    # -- the connection and its channels ------------------------------------------------

    def _connect(self) -> paramiko.SSHClient:
        if self.key_filename and not os.path.isfile(self.key_filename):
            raise StorageError(f"identity file not found: {self.key_filename}", driver=self.name)
        ssh = paramiko.SSHClient()
        try:
            if self.host_key_policy != "ignore":
                for path in filter(os.path.isfile, self.known_hosts):
                    try:
                        ssh.get_host_keys().load(path)
                    except OSError as e:
                        raise StorageError(f"cannot read {path}: {e}", driver=self.name) from None
            ssh.set_missing_host_key_policy(_HostKeyPolicy(self))
            # A key or password given is what to try: offering every agent key first can use
            # up the server's MaxAuthTries before the password is sent.
            implicit = not self.key_filename and not self._password
            ssh.connect(
                self.host,
                self.port,
                username=self.username,
                password=self._password,
                key_filename=self.key_filename,
                allow_agent=implicit,
                look_for_keys=implicit,
                timeout=self.timeout,
                banner_timeout=self.timeout,
                auth_timeout=self.timeout,
            )
            ssh.get_transport().set_keepalive(30)  # type: ignore[union-attr]
        except Exception as e:
            ssh.close()
            raise self._translate(e, "", connecting=True) from None
        return ssh

    def _transport(self) -> paramiko.Transport:
        """The live transport, reconnecting if it dropped. Called with `_cond` held."""
        if self._closed:
            raise StorageError("the driver is closed", driver=self.name)
        transport = self._ssh.get_transport() if self._ssh else None
        if transport is None or not transport.is_active():
            if self._ssh is not None:
                log.warning("connection to %s lost, reconnecting", self.describe())
                self._ssh.close()
            self._ssh, self._idle, self._channels, self._limit = None, [], 0, MAX_CHANNELS
            self._ssh = self._connect()
            transport = self._ssh.get_transport()
        assert transport is not None
        return transport

    def _lease(self) -> paramiko.SFTPClient:
        deadline = time.monotonic() + self.timeout
        while True:
            with self._cond:
                transport = self._transport()
                while not self._idle and self._channels >= self._limit:
                    if not self._cond.wait(deadline - time.monotonic()):
                        raise TransientError(
                            f"all {self._channels} SFTP channels stayed busy", driver=self.name
                        )
                    transport = self._transport()
                if self._idle:
                    return self._idle.pop()
                self._channels += 1
            try:
                channel = transport.open_session(timeout=self.timeout)
            except (EOFError, OSError) as e:  # the connection died under us
                with self._cond:
                    self._channels -= 1
                    self._cond.notify()
                raise self._translate(e, "") from None
            except paramiko.SSHException as e:
                with self._cond:
                    self._channels -= 1
                    self._cond.notify()
                    # Over the server's session limit (paramiko raises ChannelException, or
                    # a bare SSHException when several opens race): wait for a free channel.
                    if not transport.is_active() or self._channels == 0:
                        raise self._translate(e, "") from None
                    self._limit = self._channels
                continue
            try:
                channel.settimeout(self.timeout)
                channel.invoke_subsystem("sftp")
                return StatusClient(channel)
            except Exception as e:
                channel.close()
                with self._cond:
                    self._channels -= 1
                    self._cond.notify()
                raise self._translate(e, "") from None

    def _release(self, client: paramiko.SFTPClient, broken: bool = False) -> None:
        channel = client.get_channel()
        with self._cond:
            current = self._ssh is not None and channel.get_transport() is self._ssh.get_transport()
            keep = current and not (broken or channel.closed or self._closed)
            if keep:
                self._idle.append(client)
            elif current:
                self._channels -= 1
            self._cond.notify()
        if not keep:
            with suppress(Exception):
                client.close()

    def _failed(self, client: paramiko.SFTPClient, e: BaseException, path: str) -> BaseException:
        """Give back a channel whose operation raised `e`; what the caller should raise."""
        self._release(client, broken=not (is_status_reply(e) or isinstance(e, RegtoolError)))
        if isinstance(e, Exception):
            return self._translate(e, path)
        return e

    @contextmanager
    def _session(self, path: str) -> Iterator[paramiko.SFTPClient]:
        """A channel for one operation; native errors leave as regtool errors."""
        client = self._lease()
        try:
            yield client
        except BaseException as e:
            raise self._failed(client, e, path) from None
        self._release(client)

    def _keep(self, path: str, make: Callable[[paramiko.SFTPClient], T]) -> T:
        """Like `_session`, but on success the object `make` returns keeps the channel."""
        client = self._lease()
        try:
            return make(client)
        except BaseException as e:
            raise self._failed(client, e, path) from None

    def _translate(self, e: Exception, path: str, connecting: bool = False) -> StorageError:
        if isinstance(e, StorageError):
            return e
        where, kind = f"{self.username}@{self.host}:{self.port}", f"{type(e).__name__}: {e}"
        if isinstance(e, paramiko.AuthenticationException):
            return AuthenticationFailed(f"{where}: authentication failed ({e})", driver=self.name)
        if isinstance(e, paramiko.BadHostKeyException):
            return StorageError(
                f"host key of {self.host} does not match the one in known_hosts "
                f"(got {e.key.fingerprint}): the server changed, or it is not "
                "the server you meant",
                driver=self.name,
            )
        if is_status_reply(e):
            assert isinstance(e, OSError)
            if e.errno == errno.ENOENT:
                return PathNotFound(path, driver=self.name)
            reason = "permission denied" if e.errno == errno.EACCES else (e.strerror or str(e))
            return StorageError(f"{reason}: {path or '/'}", path=path, driver=self.name)
        if isinstance(e, socket.gaierror) or (connecting and isinstance(e, OSError)):
            return Unreachable(f"cannot reach {where}: {kind}", driver=self.name)
        if isinstance(e, TimeoutError) and self._ssh is not None:
            self._ssh.close()  # no answer for `timeout` seconds: reconnect on the next call
        if isinstance(e, paramiko.SSHException | EOFError | OSError):
            return TransientError(f"{where}: {kind}", path=path or None, driver=self.name)
        return StorageError(kind, path=path or None, driver=self.name)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, ssh, self._idle, self._ssh = self._idle, self._ssh, [], None
            self._cond.notify_all()
        for client in idle:
            with suppress(Exception):
                client.close()
        if ssh is not None:
            ssh.close()

    # -- helpers --------------------------------------------------------------------------

    def _abs(self, path: str, *, allow_root: bool = False) -> str:
        check_path(path, allow_root=allow_root)
        if not path:
            return self._base or "."
        return posixpath.join(self._base, path) if self._base else path

    def _makedirs(self, c: paramiko.SFTPClient, target: str) -> None:
        """mkdir -p, tolerating writers and pruners racing us."""
        for _ in range(3):
            try:
                c.mkdir(target)
                return
            except OSError as e:
                parent = posixpath.dirname(target)
                if _missing(e) and parent not in ("", ".", "/", target):
                    self._makedirs(c, parent)
                    continue
                with suppress(OSError):  # SFTP v3 says only "Failure" if it exists
                    if is_status_reply(e) and stat.S_ISDIR(c.stat(target).st_mode or 0):
                        return
                raise
        raise StorageError(f"directory keeps vanishing: {target}", driver=self.name)

    def _retry_in_new_dir(self, c: paramiko.SFTPClient, target: str, fn: Callable[[], T]) -> T:
        """`fn()`, creating `target`'s directory if that is what it lacked."""
        for attempt in (1, 2, 3):
            try:
                return fn()
            except FileNotFoundError:
                if attempt == 3:
                    raise
                self._makedirs(c, posixpath.dirname(target))
        raise AssertionError("unreachable")

    def _rename(self, c: paramiko.SFTPClient, src: str, dst: str) -> None:
        try:
            c.posix_rename(src, dst)  # an atomic replace (OpenSSH's extension)
        except OSError as e:
            if not (is_status_reply(e) and "unsupported" in str(e).lower()):
                raise
            with suppress(FileNotFoundError):  # servers without it: not atomic, but works
                c.remove(dst)
            c.rename(src, dst)

    def _pipelined(self, c: paramiko.SFTPClient, cmd: int, paths: list[str], out: Outcomes) -> None:
        """`cmd` (remove, rmdir) for every path, PIPELINE at a time; outcomes to `out`."""
        pipe = Pipeline(c)
        for path in paths:
            if len(pipe) >= PIPELINE:
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
        with suppress(StorageError), self._session("") as c:
            for level in _by_depth(parents):
                self._pipelined(c, CMD_RMDIR, level, [])  # the server refuses non-empty ones

    def _listdir(
        self,
        c: paramiko.SFTPClient,
        prefix: str,
        temp: bool = False,
        via: tuple[str, ...] = (),
        links: dict[str, tuple[str, ...]] | None = None,
    ) -> list[Entry]:
        """The entries of directory `prefix`. Links are followed by the local driver's
        rules (see `_follow`); a directory reached through one is recorded in `links`
        with the real directories that lead to it; fifos, sockets and devices are skipped.
        With `links` None, everything is listed as it is, links as files (for `delete`,
        which removes a link, not its target)."""
        entries, here = [], None
        for attr in c.listdir_attr(self._abs(prefix, allow_root=True)):
            temporary = attr.filename.startswith(TEMP_MARK)
            if temporary and not temp:
                continue
            rel = f"{prefix}/{attr.filename}" if prefix else attr.filename
            if stat.S_ISLNK(attr.st_mode or 0) and links is not None:
                here = here or c.normalize(self._abs(prefix, allow_root=True))
                followed = self._follow(c, rel, (here, *via))
                if followed is None:
                    continue
                attr = followed
                if stat.S_ISDIR(attr.st_mode or 0):
                    links[rel] = (here, *via)
            elif links is not None and not stat.S_ISLNK(attr.st_mode or 0) and not _regular(attr):
                self._skip(rel, "not a regular file, directory or link")
                continue
            entries.append(_entry(rel, attr, temporary))
        return entries

    def _skip(self, rel: str, why: str) -> None:
        log.warning("%s: skipped %s: %s", self.describe(), rel, why)

    def _follow(
        self, c: paramiko.SFTPClient, rel: str, around: tuple[str, ...]
    ) -> paramiko.SFTPAttributes | None:
        """The status of what the link at `rel` leads to, or None when it is skipped:
        dangling, a loop of links, a link back into one of the real directories `around`
        (the walk would go round), or to a fifo, socket or device. A link out of the root
        is refused: what lies behind it may be a repository gc must see."""
        target = self._abs(rel)
        try:
            attr, real = c.stat(target), c.normalize(target)
        except OSError as e:
            if not is_status_reply(e):
                raise
            self._skip(rel, f"a link that leads nowhere ({e})")
            return None
        root = c.normalize(self._abs("", allow_root=True))
        if not (real == root or real.startswith(root.rstrip("/") + "/")):
            raise StorageError(
                f"{rel} is a symbolic link to {real}, outside the store: regtool does not "
                "follow links out of a store",
                path=rel,
                driver=self.name,
            )
        if stat.S_ISDIR(attr.st_mode or 0) and any(
            d == real or d.startswith(real.rstrip("/") + "/") for d in around
        ):
            self._skip(rel, f"a link to {real}, which holds it (a loop)")
            return None
        if not _regular(attr):
            self._skip(rel, "not a regular file, directory or link")
            return None
        return attr

    def _tree(self, prefix: str, temp: bool = False, follow: bool = True) -> Iterator[Entry]:
        """Files and directories below `prefix`, listing WALK_THREADS directories at once;
        links followed (by `_listdir`'s rules) unless not `follow`."""

        def listing(p: str, via: tuple[str, ...]) -> tuple[list[Entry], dict[str, Any], Any]:
            links: dict[str, tuple[str, ...]] | None = {} if follow else None
            try:
                with self._session(p) as c:
                    return self._listdir(c, p, temp, via, links), links or {}, via
            except PathNotFound:
                return [], {}, via  # a missing prefix, or removed while we walked

        self._abs(prefix, allow_root=True)
        pool = ThreadPoolExecutor(WALK_THREADS, thread_name_prefix="sftp-walk")
        try:
            pending = {pool.submit(listing, prefix, ())}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    entries, links, via = future.result()
                    for entry in entries:
                        if entry.is_dir:
                            where = links.get(entry.path, via)
                            pending.add(pool.submit(listing, entry.path, where))
                        yield entry
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # -- the Driver contract --------------------------------------------------------------

    def list(self, prefix: str = "") -> list[Entry]:
        self._abs(prefix, allow_root=True)
        try:
            with self._session(prefix) as c:
                return self._listdir(c, prefix, links={})
        except PathNotFound:
            if prefix == "":
                return []
            raise

    def walk(self, prefix: str = "", *, temporaries: bool = False) -> Iterator[Entry]:
        return (e for e in self._tree(prefix, temporaries) if not e.is_dir)

    def create_root(self) -> None:
        with self._session("") as c:
            self._makedirs(c, self._abs("", allow_root=True))

    def stat(self, path: str) -> Entry:
        target = self._abs(path)
        with self._session(path) as c:
            return _entry(path, c.stat(target))

    def get(self, path: str) -> bytes:
        with self.open(path) as f:
            return f.read()

    def put_if_absent(self, path: str, data: bytes) -> bool:
        target = self._abs(path)
        temp = posixpath.join(posixpath.dirname(target), f"{TEMP_MARK}{uuid.uuid4().hex}")

        def write(c: paramiko.SFTPClient) -> None:
            with c.open(temp, "wb") as f:
                f.write(data)

        with self._session(path) as c:
            try:
                self._retry_in_new_dir(c, temp, lambda: write(c))
            except OSError:  # a full disk, say: take the partial temp file away
                with suppress(OSError):
                    c.remove(temp)
                raise
            try:
                c.rename(temp, target)  # SFTP v3's rename refuses an existing target
            except OSError as e:
                with suppress(OSError):
                    c.remove(temp)
                if not is_status_reply(e):
                    raise
                try:
                    c.stat(target)
                except FileNotFoundError:
                    raise e from None
                return False
        return True

    def open(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        target = self._abs(path)

        def make(c: paramiko.SFTPClient) -> BinaryIO:
            f = c.open(target, "rb")
            try:
                attr = f.stat()
                if stat.S_ISDIR(attr.st_mode or 0):  # OpenSSH opens directories
                    raise PathNotFound(path, driver=self.name)
            except BaseException:
                f.close()
                raise
            size = attr.st_size or 0
            end = size if length is None else min(size, offset + length)
            return SftpReader(self, c, f, path, offset, end)  # type: ignore[return-value]

        return self._keep(path, make)

    def writer(self, path: str, append: bool = False) -> Writer:
        self._abs(path)
        return self._keep(path, lambda c: SftpWriter(self, c, path, append))

    def move(self, src: str, dst: str) -> None:
        source, target = self._abs(src), self._abs(dst)
        with self._session(src) as c:
            try:
                self._retry_in_new_dir(c, target, lambda: self._rename(c, source, target))
            except FileNotFoundError:
                try:
                    c.lstat(source)
                except FileNotFoundError:
                    raise PathNotFound(src, driver=self.name) from None
                raise  # the source is there: the target's directory keeps vanishing
        self._prune([src])

    def delete(self, path: str) -> None:
        target = self._abs(path)
        with self._session(path) as c:
            is_dir = stat.S_ISDIR(c.lstat(target).st_mode or 0)
            if not is_dir:
                c.remove(target)
        if is_dir:
            entries = list(self._tree(path, temp=True, follow=False))  # links go, not targets
            done: Outcomes = []
            with self._session(path) as c:
                self._pipelined(c, CMD_REMOVE, [e.path for e in entries if not e.is_dir], done)
                for level in _by_depth([path, *(e.path for e in entries if e.is_dir)]):
                    self._pipelined(c, CMD_RMDIR, level, done)
                for failed, error in done:
                    if error is not None and not _missing(error):
                        raise self._translate(error, failed)
        self._prune([path])

    def delete_many(self, paths: Iterable[str]) -> DeleteReport:
        report, valid, done = DeleteReport(), [], []
        for path in paths:
            try:
                self._abs(path)
                valid.append(path)
            except StorageError as e:
                report.failed[path] = str(e)
        try:
            with self._session("") as c:
                self._pipelined(c, CMD_REMOVE, valid, done)
        except StorageError as e:  # the connection failed: what got no answer failed
            report.failed.update(dict.fromkeys(valid[len(done) :], str(e)))
        for path, error in done:
            if error is None or _missing(error):
                report.deleted.append(path)
            else:
                report.failed[path] = str(self._translate(error, path))
        self._prune(report.deleted)
        return report

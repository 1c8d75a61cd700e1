"""One SSH connection and its pool of SFTP channels.

A paramiko `SFTPClient` must not be shared between threads, so the connection lends each
channel to one user at a time (`lease`), up to the server's session limit (OpenSSH's
`MaxSessions`, 10 by default; lowered when the server refuses a channel sooner). An open
reader or writer keeps its lease until closed.

A lost connection is noticed on the next lease, which reconnects: paramiko records the
transport's fatal error (`Transport.saved_exception`) before it wakes the channels'
readers, and a sender that met the dead socket first (a request, or the opening of a
channel) waits for the transport to notice (`await_loss`), so the call after a
`TransientError` never meets the dead connection again. Channels of the old connection
are closed as their users give them back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar

import paramiko

from regtool.errors import StorageError, TransientError
from regtool.storage.sftp.capabilities import LIMITS, Capabilities, Renaming
from regtool.storage.sftp.errors import DRIVER, channel_survives, connection_lost, translate
from regtool.storage.sftp.login import Login, ended_by
from regtool.storage.sftp.protocol import SftpChannel, StatusReply, start_subsystem

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_CHANNELS = 10  # OpenSSH's default MaxSessions; lowered if the server refuses sooner
#: Seconds to wait, after a channel lost its connection, for the transport to notice.
LOSS_NOTICE = 1.0


class Lease:
    """One SFTP channel, lent to one user until `release` (or `fail`)."""

    def __init__(self, connection: Connection, client: SftpChannel, capabilities: Capabilities):
        self.connection = connection
        self.client = client
        #: What the server announced on this lease's connection.
        self.capabilities = capabilities
        self._released = False
        #: The channel met its connection's end: whoever it is lent to takes another.
        self.lost = False

    @property
    def renaming(self) -> Renaming:
        """How to put a file in place over another on this server."""
        return self.connection.renaming(self.capabilities)

    @property
    def released(self) -> bool:
        return self._released

    def release(self, broken: bool = False) -> None:
        """Give the channel back; `broken` if it cannot carry another request. Only the
        first call counts."""
        if not self._released:
            self._released = True
            self.connection.give_back(self.client, broken)

    def translate(self, e: Exception, path: str) -> StorageError:
        """`e`, raised by an operation on `path` with this channel, as a StorageError.
        A send that found the socket dead (also the window adjustment a read sends, which
        paramiko reports as "Server connection dropped") can come before the transport
        notices: then this waits until it does, so the next lease reconnects."""
        transport = self.client.channel.get_transport()
        if connection_lost(e):
            self.lost = True
            self.connection.await_loss(transport)
        return self.connection.translate(e, path, transport)

    def fail(self, e: BaseException, path: str) -> BaseException:
        """Give the channel back after its operation on `path` raised `e`, and return what
        the caller should raise instead (a `StorageError` for any Exception)."""
        error = self.translate(e, path) if isinstance(e, Exception) else e
        self.release(broken=not channel_survives(e))
        return error


class Connection:
    """An SSH connection to one server (made now: a bad host, key or password fails
    here), reconnected when it drops, and the pool of its SFTP channels."""

    def __init__(self, login: Login):
        self.login = login
        self._cond = threading.Condition(threading.RLock())  # RLock: readers close from GC
        self._ssh: paramiko.SSHClient | None = None
        self._capabilities: Capabilities | None = None
        self._idle: list[SftpChannel] = []
        self._channels, self._limit, self._closed = 0, MAX_CHANNELS, False
        self._connected = False  # once connected, a failed reconnect is transient
        self._rename_refused = False
        self._lent = threading.local()  # the lease `lending` lends to this thread
        with self._cond:
            self._transport()

    # -- capabilities ---------------------------------------------------------------------

    def renaming(self, capabilities: Capabilities) -> Renaming:
        """How to replace a file: posix-rename where announced, else the plain rename
        unless the server refused one."""
        if capabilities.renaming is Renaming.POSIX:
            return Renaming.POSIX
        return Renaming.PLAIN if self.rename_allowed else Renaming.NONE

    @property
    def rename_allowed(self) -> bool:
        """Whether the plain SFTP rename may work: the server has not refused one."""
        return not self._rename_refused

    def rename_refused(self) -> None:
        """The server refused a plain rename: without posix-rename, write in place and move
        by copying from now on (for the driver's lifetime: a reconnect reaches the same
        server)."""
        if not self._rename_refused:
            self._rename_refused = True
            log.warning("%s refuses to rename files", self.login.where)

    # -- the connection ---------------------------------------------------------------------

    def _transport(self) -> paramiko.Transport:
        """The live transport, reconnecting if it dropped. Called with `_cond` held."""
        if self._closed:
            raise StorageError("the driver is closed", driver=DRIVER)
        transport = self._ssh.get_transport() if self._ssh else None
        if transport is None or not _alive(transport):
            if self._ssh is not None:
                log.warning("connection to %s lost, reconnecting", self.login.where)
                self._ssh.close()
            self._ssh, self._idle, self._capabilities = None, [], None
            self._channels, self._limit = 0, MAX_CHANNELS
            try:
                self._ssh = self.login.connect(again=self._connected)
            except Exception as e:
                raise translate(e, "", self.login.where) from None
            self._connected = True
            transport = self._ssh.get_transport()
        assert transport is not None
        return transport

    def translate(
        self, e: Exception, path: str, transport: paramiko.Transport | None = None
    ) -> StorageError:
        """`e` as a StorageError; for a lost connection, what `transport` (the one `e` was
        met on) died of, if it knows. A timeout also drops the connection: the server
        stopped answering, so the next call connects anew (the timeout is the cause, not
        what the transport meets as it is closed)."""
        cause = ended_by(transport)
        if isinstance(e, TimeoutError):
            cause = None
            with self._cond:
                if self._ssh is not None:
                    self._ssh.close()
        return translate(e, path, self.login.where, cause=cause)

    def await_loss(self, transport: paramiko.Transport) -> None:
        """A channel of `transport` met a dead socket or was closed: give the transport up
        to LOSS_NOTICE seconds to end (it does at once when the socket is gone; a channel
        the server closed on its own leaves the transport running)."""
        if transport.is_alive():
            transport.join(LOSS_NOTICE)

    def close(self) -> None:
        """Close every channel and the connection; later calls raise StorageError."""
        with self._cond:
            self._closed = True
            idle, ssh, self._idle, self._ssh = self._idle, self._ssh, [], None
            self._cond.notify_all()
        for client in idle:
            with suppress(Exception):
                client.close()
        if ssh is not None:
            ssh.close()

    # -- the channels -----------------------------------------------------------------------

    @property
    def channel_limit(self) -> int:
        """Channels this connection opens at most: MAX_CHANNELS, or fewer once the server
        refused one."""
        return self._limit

    def lease(self) -> Lease:
        """A channel for one user, waiting up to the timeout for one to be free.
        TransientError if none frees up; StorageError (translated) if none can be opened."""
        deadline = time.monotonic() + self.login.timeout
        while True:
            with self._cond:
                transport = self._transport()
                while not self._idle and self._channels >= self._limit:
                    if not self._cond.wait(deadline - time.monotonic()):
                        raise TransientError(
                            f"all {self._channels} SFTP channels stayed busy", driver=DRIVER
                        )
                    transport = self._transport()
                while self._idle:
                    client = self._idle.pop()
                    if client.channel.closed:  # the server closed it while idle
                        self._channels -= 1
                        continue
                    assert self._capabilities is not None
                    return Lease(self, client, self._capabilities)
                if self._channels >= self._limit:
                    continue
                self._channels += 1
            try:
                channel = transport.open_session(timeout=self.login.timeout)
            except Exception as e:  # paramiko raises the transport's own error if it died
                self._refused(transport, e)
                deadline = time.monotonic() + self.login.timeout  # now wait for a free one
                continue
            try:
                return self._start(transport, channel)
            except Exception as e:
                channel.close()
                self._refused(transport, e)
                deadline = time.monotonic() + self.login.timeout

    def _refused(self, transport: paramiko.Transport, e: Exception) -> None:
        """A new channel failed with `e`. Over the server's session limit, sshd refuses the
        channel (paramiko raises ChannelException, or a bare SSHException when several
        opens race) or closes it at once (EOF before the SFTP version); a server may also
        leave its SFTP subsystem request unanswered (`start_subsystem`): then, while other
        channels work, the limit is lowered and the caller waits for a free channel. Else
        `e` is raised, translated, once a lost connection is known lost (the open's own
        send can meet the dead socket before the transport does: paramiko raises EOFError
        then)."""
        with self._cond:
            self._channels -= 1
            self._cond.notify()
            over_limit = isinstance(e, paramiko.SSHException) and self._channels > 0
            if over_limit and _alive(transport):
                self._limit = self._channels
                return
        if connection_lost(e):
            self.await_loss(transport)
        raise self.translate(e, "", transport) from None

    def _start(self, transport: paramiko.Transport, channel: paramiko.Channel) -> Lease:
        """The SFTP session on a new channel; the first one of a connection also learns what
        the server can do."""
        channel.settimeout(self.login.timeout)
        start_subsystem(channel, "sftp", self.login.timeout)
        client = SftpChannel(channel)
        with self._cond:
            capabilities = self._capabilities
        if capabilities is None:
            capabilities = _capabilities(client)
            with self._cond:
                if self._ssh is not None and self._ssh.get_transport() is transport:
                    self._capabilities = capabilities
        return Lease(self, client, capabilities)

    def give_back(self, client: SftpChannel, broken: bool = False) -> None:
        """Return a leased channel: idle for the next user, or closed if `broken`, closed
        by the server, or of an earlier connection."""
        channel = client.channel
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

    @contextmanager
    def lending(self, lease: Lease) -> Iterator[None]:
        """While inside, this thread's `session`s use `lease`'s channel: a walk yields
        with its requests in flight on it, and its caller may read a file meanwhile
        (paramiko routes each reply to its request), also from a server that allows a
        single channel, which another lease would wait for in vain."""
        previous = getattr(self._lent, "lease", None)
        self._lent.lease = lease
        try:
            yield
        finally:
            self._lent.lease = previous

    def _lent_lease(self) -> Lease | None:
        """The lease lent to this thread, unless it was given back or its connection is
        lost (then the thread's next call takes a lease of its own, which reconnects,
        and the lender finds the loss itself)."""
        lent: Lease | None = getattr(self._lent, "lease", None)
        return lent if lent is not None and not (lent.released or lent.lost) else None

    def lends(self) -> bool:
        """Whether this thread is inside `lending`: its `session`s use a lent channel."""
        return self._lent_lease() is not None

    @contextmanager
    def session(self, path: str) -> Iterator[Lease]:
        """A lease for one operation on `path`; native errors leave as StorageErrors.
        Inside `lending`, the lent channel (kept by its lender)."""
        lent = self._lent_lease()
        if lent is not None:
            try:
                yield lent
            except BaseException as e:
                raise (lent.translate(e, path) if isinstance(e, Exception) else e) from None
            return
        lease = self.lease()
        try:
            yield lease
        except BaseException as e:
            raise lease.fail(e, path) from None
        lease.release()

    def keep(self, path: str, make: Callable[[Lease], T]) -> T:
        """`make(lease)`, whose result keeps the lease (a reader, a writer) and releases it
        when done; if `make` raises, the lease is given back and the error translated."""
        lease = self.lease()
        try:
            return make(lease)
        except BaseException as e:
            raise lease.fail(e, path) from None


def _alive(transport: paramiko.Transport) -> bool:
    # saved_exception is set as soon as the transport thread meets a dead socket, before
    # is_active() turns False and before the channels' readers are woken; a refused
    # channel leaves a ChannelException there too, which is no harm to the connection.
    failure = transport.saved_exception
    return transport.is_active() and (
        failure is None or isinstance(failure, paramiko.ChannelException)
    )


def _capabilities(client: SftpChannel) -> Capabilities:
    limits = None
    if LIMITS in client.extensions:
        with suppress(StatusReply):  # announced but refused: go without
            limits = client.limits()
    return Capabilities(client.version, dict(client.extensions), limits)

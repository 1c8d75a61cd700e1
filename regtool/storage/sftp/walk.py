"""Listing a tree on one SFTP channel, every known directory at once.

Reading a directory takes three requests that each wait for the one before (OPENDIR,
then READDIR until "end of file", then CLOSE), so a walk that lists one directory at a
time pays a chain of round trips per directory: minutes for a store behind a server
20 ms away. SFTP lets a client keep many requests in flight on one channel, answered in
order, so this walk sends the requests of every directory it knows of together: the
OPENDIR of each one as soon as its parent's listing named it, two READDIRs as soon as its
handle comes back (the second usually answers "end of file" at once, so small
directories need no third), the CLOSE without waiting for its answer. A walk costs about
two round trips per level of the tree, whatever its width. Every answer already in is
taken before the requests they call for go out, together in one write
(`SftpChannel.together`): paramiko's cost per SSH packet, not the network, is then what
bounds a walk on a near server.

Bounds: at most `in_flight` requests wait for an answer at any time, and at most half
as many directories are open on the server at once (each holds a handle), fewer if the
server says it keeps fewer handles open (`limits@openssh.com`). A server that says
nothing and refuses an OPENDIR while other directories are open (status "Failure")
has run out of handles: the walk keeps to as many as were open, and asks again.

A directory the caller's `prune` hint names (`Driver.walk`) is never opened: its name
comes with its parent's listing, so pruning costs no request and spares its whole
subtree's. Links are resolved as `listing.py` says, their REALPATH and STAT sent with the rest once
their directory is read. The top directory's REALPATH goes out with its OPENDIR and is
checked to be inside the root (`confine`) before anything below it is trusted.
"""

from __future__ import annotations

import posixpath
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import paramiko

from regtool.errors import StorageError
from regtool.storage.base import Entry, Prune
from regtool.storage.sftp import confine
from regtool.storage.sftp.listing import Directory, Listed, links, list_directory
from regtool.storage.sftp.protocol import (
    CMD_CLOSE,
    CMD_OPENDIR,
    CMD_READDIR,
    CMD_REALPATH,
    CMD_STAT,
    Attributes,
    EndOfFile,
    NoSuchFile,
    Real,
    RequestFailed,
    SftpChannel,
    StatusReply,
    attrs_reply,
    handle_reply,
    names_reply,
    real_reply,
)

#: Requests in flight at once on the walk's channel: enough for the widest level of a
#: registry's tree (a directory per revision, layer link and tag history entry) to be
#: read in a few round trips.
IN_FLIGHT = 512
READS_AHEAD = 2  # READDIRs in flight per directory: a small one answers, then says EOF

#: Turns an error status about a driver path into the StorageError to raise.
Translate = Callable[[Exception, str], StorageError]


@dataclass(eq=False)
class _Reading:
    """A directory being read: known (`reals` None for the top until its REALPATH is
    back), opened (`handle`), read (`eof`), its links resolved (`resolved`)."""

    path: str
    target: str
    reals: tuple[str, ...] | None
    top: bool = False
    real: Real | None = None  # the top's REALPATH answer
    handle: bytes | None = None
    reads: int = 0  # READDIRs in flight
    eof: bool = False
    attrs: list[paramiko.SFTPAttributes] = field(default_factory=list)
    after: int = 0  # the round trip of the reply that made it known
    links: list[str] = field(default_factory=list)
    resolved: dict[str, tuple[Real, Attributes]] = field(default_factory=dict)
    answers: dict[str, list[Any]] = field(default_factory=dict)

    def again(self) -> None:
        """Forget what was read: to be read anew from its start on another channel."""
        if self.top and self.reals is None:
            self.real = None
        self.handle, self.reads, self.eof = None, 0, False
        self.attrs, self.links, self.resolved, self.answers = [], [], {}, {}


class TreeWalk:
    """The entries below directory `path` (driver path; `target` on the server), files
    and directories, as their directories are read: every level with `recursive`, else
    only the directory's own. `root` is the root's real path; `top_reals` the real paths
    of the root and of `path` when known (then the top's REALPATH is not asked), else
    None. `temporaries` and `follow` as for `listing.list_directory`; a directory
    `prune` answers True for (asked with its driver path) is listed, not read.

    Iterating raises `translate(error, path)` for an error status about a directory
    (PathNotFound for a missing top; a directory vanishing mid-walk is skipped), and the
    connection's own errors as they are. A walk left before its end leaves requests in
    flight: the channel must not be used again. A walk whose connection was lost goes
    on where it was on a channel of a new one (`resume`), then iterated again."""

    def __init__(
        self,
        client: SftpChannel,
        root: str,
        path: str,
        target: str,
        translate: Translate,
        *,
        top_reals: tuple[str, ...] | None = None,
        recursive: bool = True,
        temporaries: bool = False,
        follow: bool = True,
        prune: Prune | None = None,
        in_flight: int | None = None,
        open_handles: int | None = None,
    ):
        self.client, self.root, self.translate = client, root, translate
        self.recursive, self.temporaries, self.follow = recursive, temporaries, follow
        self.prune = prune
        self.in_flight = max(in_flight or IN_FLIGHT, 2 * READS_AHEAD)
        self.pipe = client.pipeline()
        self._top = _Reading(path, target, top_reals, top=True)
        self._known: deque[_Reading] = deque([self._top])  # to open
        #: Taken from `_known` and not yet listed, in the order opened (a dict as an
        #: ordered set): what a lost connection leaves half read.
        self._reading: dict[_Reading, None] = {}
        #: Directories listed so far: a walk that lists more makes progress.
        self.listed = 0
        self._trips_before = 0  # round trips on the channels of lost connections
        #: Follow-up requests: tag, command, arguments, the round trip that called for it.
        self._outbox: deque[tuple[tuple[str, _Reading, str], int, tuple[Any, ...], int]] = deque()
        self._open = 0  # directories holding a handle (or about to)
        self.most_open = self.in_flight // READS_AHEAD
        if open_handles:
            self.most_open = max(1, min(self.most_open, open_handles))
        self._done: deque[Listed] = deque()
        #: The most requests in flight at once, seen on the channel.
        self.most_in_flight = 0

    @property
    def round_trips(self) -> int:
        """Round trips on the longest chain of requests so far (`Pipeline.round_trips`),
        on every connection the walk used."""
        return self._trips_before + self.pipe.round_trips

    def resume(self, client: SftpChannel, translate: Translate) -> None:
        """Go on on `client` (a channel of a new connection, after the walk's own was
        lost; `translate` as for the constructor, for that channel). Directories being
        read are read again from their start: none of their
        entries was handed out (a directory's entries go out once it is read to its end,
        its links resolved), nor was it asked to `prune` the directories below them.
        Those not yet opened are opened on `client`, and what was listed stays listed:
        iterating again yields every entry not yet yielded, none twice."""
        self._trips_before += self.pipe.round_trips
        self.client, self.pipe, self.translate = client, client.pipeline(), translate
        self._outbox.clear()  # follow-ups on the old connection's handles
        self._open = 0
        for reading in reversed(self._reading):
            reading.again()
            self._known.appendleft(reading)
        self._reading.clear()
        for reading in self._known:
            reading.after = 0  # round trips count on the new channel from its first

    def __iter__(self) -> Iterator[Entry]:
        while True:
            with self.client.together():
                self._send()
            while self._done:
                yield self._done.popleft().entry
            if not self.pipe:
                return
            # every answer that is here, then what they call for, in one write
            (kind, reading, name), t, msg = self.pipe.reply()
            self._answer(kind, reading, name, t, msg)
            while self.pipe.ready() and not self._outbox_full():
                (kind, reading, name), t, msg = self.pipe.reply()
                self._answer(kind, reading, name, t, msg)

    def _outbox_full(self) -> bool:
        """Whether enough waits to be sent to fill the pipeline again."""
        return len(self._outbox) >= self.in_flight

    # -- sending --------------------------------------------------------------------------

    def _queue(self, kind: str, reading: _Reading, cmd: int, *args: Any, name: str = "") -> None:
        self._outbox.append(((kind, reading, name), cmd, args, self.pipe.trip))

    def _send(self) -> None:
        """Send what waits, up to the bounds: follow-ups of open directories first (they
        free handles), then new directories."""
        while self._outbox and len(self.pipe) < self.in_flight:
            tag, cmd, args, after = self._outbox.popleft()
            self.pipe.send(tag, cmd, *args, after=after)
            self._count()
        while self._known and self._open < self.most_open:
            reading = self._known[0]
            if len(self.pipe) + (reading.reals is None) >= self.in_flight:
                break
            self._known.popleft()
            self._reading[reading] = None
            self._open += 1
            if reading.reals is None:
                self.pipe.send(("real", reading, ""), CMD_REALPATH, reading.target, after=0)
            self.pipe.send(("open", reading, ""), CMD_OPENDIR, reading.target, after=reading.after)
            self._count()

    def _count(self) -> None:
        self.most_in_flight = max(self.most_in_flight, self.client.outstanding)

    # -- answers --------------------------------------------------------------------------

    def _answer(self, kind: str, reading: _Reading, name: str, t: int, msg: Any) -> None:
        if kind == "real":
            reading.real = real_reply(t, msg)
        elif kind == "open":
            self._opened(reading, handle_reply(t, msg))
        elif kind == "read":
            self._read(reading, names_reply(t, msg))
        elif kind == "close":
            self._open -= 1  # an error closing a directory leaves nothing behind
        else:  # "link-real", "link-stat"
            answers = reading.answers.setdefault(name, [])
            answers.append(real_reply(t, msg) if kind == "link-real" else attrs_reply(t, msg))
            if len(answers) == 2:
                real, attr = answers
                reading.resolved[name] = (real, attr)
                if len(reading.resolved) == len(reading.links):
                    self._list(reading)

    def _opened(self, reading: _Reading, handle: bytes | StatusReply) -> None:
        if isinstance(handle, StatusReply):
            self._open -= 1
            del self._reading[reading]
            if isinstance(handle, NoSuchFile) and not reading.top:
                return  # removed since its parent was read
            if isinstance(handle, RequestFailed) and self._open:  # out of handles
                self.most_open = self._open
                self._known.appendleft(reading)
                return
            raise self.translate(handle, reading.path)
        reading.handle = handle
        if reading.reals is None:  # the top: inside the root?
            assert reading.real is not None
            try:
                confine.check(reading.real, self.root, reading.path)
            except StatusReply as e:
                raise self.translate(e, reading.path) from None
            assert isinstance(reading.real, str)
            reading.reals = (self.root, reading.real) if reading.path else (self.root,)
        self._read_more(reading)

    def _read_more(self, reading: _Reading) -> None:
        for _ in range(READS_AHEAD):
            self._queue("read", reading, CMD_READDIR, reading.handle)
        reading.reads += READS_AHEAD

    def _read(self, reading: _Reading, names: list[paramiko.SFTPAttributes] | StatusReply) -> None:
        reading.reads -= 1
        if isinstance(names, EndOfFile | NoSuchFile):
            reading.eof = True  # (a directory removed while read: what was read stands)
        elif isinstance(names, StatusReply):
            raise self.translate(names, reading.path)
        else:
            reading.attrs += names
        if reading.reads:
            return
        if not reading.eof:
            self._read_more(reading)
            return
        self._queue("close", reading, CMD_CLOSE, reading.handle)
        reading.links = links(reading.attrs, temporaries=self.temporaries) if self.follow else []
        for link in reading.links:
            target = _child(reading.target, link)
            self._queue("link-real", reading, CMD_REALPATH, target, name=link)
            self._queue("link-stat", reading, CMD_STAT, target, name=link)
        if not reading.links:
            self._list(reading)

    def _list(self, reading: _Reading) -> None:
        """Hand out `reading`'s entries, and make its directories known."""
        assert reading.reals is not None
        directory = Directory(reading.path, reading.target, reading.reals)
        try:
            found = list_directory(
                directory,
                reading.attrs,
                temporaries=self.temporaries,
                follow=self.follow,
                resolved=reading.resolved,
            )
        except StatusReply as e:
            raise self.translate(e, reading.path) from None
        for item in found:
            if item.real is not None and self.recursive:
                if self.prune is not None and self.prune(item.entry.path):
                    continue
                target = _child(reading.target, item.entry.name)
                reals = (*reading.reals, item.real)
                known = _Reading(item.entry.path, target, reals, after=self.pipe.trip)
                self._known.append(known)
        self._done.extend(found)
        del self._reading[reading]
        self.listed += 1


def _child(target: str, name: str) -> str:
    """The server path of `name` in directory `target` ("." is the login directory)."""
    return name if target == "." else posixpath.join(target, name)

"""htpasswd files as distribution reads them (`registry/auth/htpasswd`): one
`user:hash` a line, blank lines and `#` comments skipped, bcrypt hashes only (`$2a$`,
`$2b$`, `$2y$`, as Apache's `htpasswd -B` writes them).

`Htpasswd` checks passwords against a file it re-reads whenever the file changes (its
inode, size or modification time), and remembers a password that verified, as a MAC
(keyed BLAKE2b) under a key of this process, so that a pull of many blobs pays bcrypt (~100 ms by
design) once, not per request. A wrong password is never remembered; an entry that
changes in the file drops what was remembered for it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import tempfile
from pathlib import Path

import bcrypt

from regtool.errors import UsageError
from regtool.server.auth.watched import WatchedFile

log = logging.getLogger(__name__)

BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
#: bcrypt's work factor for new entries: distribution's `bcrypt.DefaultCost`.
COST = 10


class HtpasswdInvalid(UsageError):
    """An htpasswd file that cannot be used; the message names the file and the line."""


def parse(text: str, source: str) -> dict[str, str]:
    """{user: bcrypt hash} from an htpasswd file's text; `HtpasswdInvalid` naming
    `source` and the line number for a line without `user:hash`, a hash that is not
    bcrypt (MD5 `$apr1$`, SHA `{SHA}`, crypt, plain text) or a user given twice."""
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        where = f"{source} line {number}"
        if not sep or not user or not hashed:
            raise HtpasswdInvalid(f"{where}: not USER:HASH")
        if not hashed.startswith(BCRYPT_PREFIXES):
            raise HtpasswdInvalid(
                f"{where}: the entry for {user!r} is not a bcrypt hash "
                "(only bcrypt is taken, as distribution; make one with `regtool htpasswd add`)"
            )
        if user in entries:
            raise HtpasswdInvalid(f"{where}: {user!r} is given twice")
        entries[user] = hashed
    return entries


def read(path: Path) -> dict[str, str]:
    """`parse` of the file at `path`; `HtpasswdInvalid` also when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise HtpasswdInvalid(f"cannot read htpasswd file {path}: {reason}") from None
    return parse(text, str(path))


#: bcrypt reads at most this many bytes of a password.
BCRYPT_MAX = 72


def _bcrypt_input(password: str) -> bytes:
    """What bcrypt checks of `password`: its first 72 bytes, as every bcrypt did before
    the Python library began to refuse longer ones (Go's, in distribution, and Apache's
    htpasswd still cut), so a long password set with those still logs in here."""
    return password.encode()[:BCRYPT_MAX]


def hash_password(password: str, cost: int = COST) -> str:
    """A new bcrypt hash (`$2b$`) of `password`; `UsageError` for one longer than
    bcrypt reads (72 bytes), whose tail would silently not count."""
    if len(password.encode()) > BCRYPT_MAX:
        raise UsageError(
            f"the password is longer than {BCRYPT_MAX} bytes; bcrypt would ignore the rest"
        )
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


def write_entry(path: Path, user: str, hashed: str | None) -> bool:
    """Sets `user`'s entry in the file at `path` to `hashed` (None: removes it),
    keeping every other line as it is; creates the file (mode 0600) if it is missing.
    The new file replaces the old at once (written beside it, then renamed), so a
    server reading it never sees half a file. Returns whether the user had an entry."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        lines, mode = [], 0o600
    parse("\n".join(lines), str(path))  # never rewrite a file regtool could not serve
    found = False
    kept: list[str] = []
    for line in lines:
        if line.strip().partition(":")[0] == user and not line.strip().startswith("#"):
            found = True
            if hashed is not None:
                kept.append(f"{user}:{hashed}")
        else:
            kept.append(line)
    if not found and hashed is not None:
        kept.append(f"{user}:{hashed}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(f"{line}\n" for line in kept))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return found


class Htpasswd:
    """The users of an htpasswd file, re-read when it changes (`WatchedFile`).
    `HtpasswdInvalid` from the constructor if the file cannot be used at start-up; a
    later change that breaks it is logged and the entries read before stay in force."""

    def __init__(self, path: Path):
        self.path = path
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, tuple[str, bytes]] = {}  # user -> (hash, MAC of password)
        self._dummy: str | None = None
        self._file = WatchedFile(path, read, self._reread)

    def _reread(self, entries: dict[str, str]) -> None:
        log.info("htpasswd file %s re-read: %d users", self.path, len(entries))

    def entries(self) -> dict[str, str]:
        """{user: hash} as the file holds them now (re-read if it changed)."""
        return self._file.current()

    def fingerprint(self, password: str) -> bytes:
        """A MAC of `password` under this process's key: tells passwords apart without
        keeping them."""
        return self._mac(password)

    def _mac(self, password: str) -> bytes:
        # Keyed BLAKE2 is a MAC in one C call: cheaper per request than the hmac module.
        return hashlib.blake2b(password.encode(), key=self._key, digest_size=32).digest()

    def remembered(self, user: str, password: str) -> bool:
        """Whether `password` verified before for `user`'s current entry: True lets a
        request skip bcrypt; False says nothing (ask `verify`)."""
        hashed = self.entries().get(user)
        known = self._verified.get(user)
        if hashed is None or known is None or known[0] != hashed:
            return False
        return hmac.compare_digest(known[1], self._mac(password))

    def verify(self, user: str, password: str) -> bool:
        """Whether `password` is `user`'s: from what verified before, else by bcrypt
        (blocking, ~100 ms: call it from a worker thread). An unknown user costs a
        bcrypt check too, so that timing does not tell which users exist."""
        hashed = self.entries().get(user)
        mac = self._mac(password)
        if hashed is None:
            bcrypt.checkpw(_bcrypt_input(password), self._dummy_hash())
            return False
        if self.remembered(user, password):
            return True
        try:
            ok = bcrypt.checkpw(_bcrypt_input(password), hashed.encode())
        except ValueError:  # a malformed hash: no password matches it
            ok = False
        if ok:
            self._verified[user] = (hashed, mac)
        return ok

    def _dummy_hash(self) -> bytes:
        if self._dummy is None:
            self._dummy = hash_password(secrets.token_hex(8))
        return self._dummy.encode()

"""The UI's session cookie: who signed in and the CSRF token of their forms.

A login form, not HTTP Basic: a browser keeps Basic credentials until it is closed and
sends them to every page of the origin with no way to sign out, and its prompt is not a
page that can say why a login failed. The cookie holds `{"u": user, "c": csrf, "t":
issued, "b": binding, "i": id}` as base64url JSON and an HMAC-SHA256 of it under a key made when
the process starts: a restart signs everybody out, and nothing stored needs protecting.
It is `HttpOnly`, `SameSite=Strict` and scoped to the UI's path.

A signed-in session is bound to the credential it was made with: `b` is an HMAC of the
user's htpasswd hash at sign-in, checked against the file as it is now on every request
(`credential`, the same re-read-on-change file the API checks Basic logins against), so
removing a user or changing their password ends their sessions at once, as it ends
their API access.

Signing out ends the session on the server too: its id is remembered as ended until the
session would have expired anyway, so a copy of the cookie kept elsewhere is worth
nothing. The record is bounded (`ENDED_KEPT`): past it, the oldest ids are forgotten and
every session issued no later than them is taken as ended (signed out early, never
signed in again).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "regtool_ui"
#: Seconds a session lasts after signing in.
LIFETIME = 12 * 3600
#: Signed-out sessions remembered at most (about 100 bytes each).
ENDED_KEPT = 10_000

#: A user's credential as the server knows it now (their htpasswd hash), None for no
#: such user.
Credential = Callable[[str], str | None]


def no_users(user: str) -> str | None:
    """The credential lookup of a UI without htpasswd users: nobody signs in."""
    return None


@dataclass(frozen=True)
class Session:
    user: str | None  # None: not signed in
    csrf: str
    issued: int
    binding: str = ""  # MAC of the user's credential at sign-in ("" when not signed in)
    id: str = ""  # a signed-in session's own, for ending it ("" when not signed in)


class SessionSigner:
    """Signs and checks session cookies with a key of this process; `credential` tells
    a signed-in user's current credential (see the module's docstring)."""

    def __init__(self, key: bytes | None = None, credential: Credential = no_users):
        self.key = key or secrets.token_bytes(32)
        self.credential = credential
        self._lock = threading.Lock()
        self._ended: set[str] = set()  # ids of signed-out sessions not yet expired
        self._ended_order: list[tuple[int, str]] = []  # (issued, id), a heap
        self._not_before = 0  # sessions issued before this (s) count as ended

    def new(self, user: str | None = None, credential: str | None = None) -> Session:
        """A new session: anonymous, or signed in as `user`, bound to `credential` (their
        hash as read before their password was checked: a change in between ends it)."""
        if user is None or not credential:
            return Session(None, secrets.token_urlsafe(24), int(time.time()))
        binding = self._bind(user, credential)
        sid = secrets.token_urlsafe(16)
        return Session(user, secrets.token_urlsafe(24), int(time.time()), binding, sid)

    def end(self, session: Session) -> None:
        """Ends a signed-in session for every copy of its cookie (signing out)."""
        if not session.id:
            return
        now = time.time()
        with self._lock:
            order = self._ended_order
            while order and (order[0][0] + LIFETIME < now or len(order) >= ENDED_KEPT):
                issued, sid = heapq.heappop(order)
                self._ended.discard(sid)
                if issued + LIFETIME >= now:  # forgotten before it expired: ends its elders
                    self._not_before = max(self._not_before, issued + 1)
            self._ended.add(session.id)
            heapq.heappush(order, (session.issued, session.id))

    def _was_ended(self, session: Session) -> bool:
        with self._lock:
            return session.issued < self._not_before or session.id in self._ended

    def dump(self, session: Session) -> str:
        payload = json.dumps(
            {
                "u": session.user,
                "c": session.csrf,
                "t": session.issued,
                "b": session.binding,
                "i": session.id,
            }
        )
        body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"{body}.{self._mac(body.encode())}"

    def load(self, cookie: str | None) -> Session | None:
        """The session a cookie holds; None for none, a forged or an expired one, and a
        signed-in one that was signed out, whose user no longer exists or whose
        credential changed since."""
        if not cookie or "." not in cookie:
            return None
        body, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(body.encode())):
            return None
        try:
            doc = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            user, csrf, issued, binding, sid = doc["u"], doc["c"], doc["t"], doc["b"], doc["i"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(csrf, str) or not isinstance(issued, int):
            return None
        if not isinstance(binding, str) or not isinstance(sid, str):
            return None
        if user is not None and not isinstance(user, str):
            return None
        if time.time() - issued > LIFETIME:
            return None
        session = Session(user, csrf, issued, binding, sid)
        if user is not None and (self._was_ended(session) or not self._still_bound(session)):
            return None
        return session

    def _still_bound(self, session: Session) -> bool:
        assert session.user is not None
        current = self.credential(session.user)
        if current is None:
            return False
        return hmac.compare_digest(session.binding, self._bind(session.user, current))

    def _bind(self, user: str, credential: str) -> str:
        return self._mac(b"credential\0" + user.encode() + b"\0" + credential.encode())

    def _mac(self, data: bytes) -> str:
        digest = hmac.new(self.key, data, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def same_token(given: str | None, session: Session) -> bool:
    """Whether a form's CSRF token is the session's."""
    return bool(given) and hmac.compare_digest(str(given), session.csrf)

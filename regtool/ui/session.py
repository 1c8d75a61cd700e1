"""The UI's session cookie: who signed in and the CSRF token of their forms.

A login form, not HTTP Basic: a browser keeps Basic credentials until it is closed and
sends them to every page of the origin with no way to sign out, and its prompt is not a
page that can say why a login failed. The cookie holds `{"u": user, "c": csrf, "t":
issued, "b": binding}` as base64url JSON and an HMAC-SHA256 of it under a key made when
the process starts: a restart signs everybody out, and nothing stored needs protecting.
It is `HttpOnly`, `SameSite=Strict` and scoped to the UI's path.

A signed-in session is bound to the credential it was made with: `b` is an HMAC of the
user's htpasswd hash at sign-in, checked against the file as it is now on every request
(`credential`, the same re-read-on-change file the API checks Basic logins against), so
removing a user or changing their password ends their sessions at once, as it ends
their API access.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "regtool_ui"
#: Seconds a session lasts after signing in.
LIFETIME = 12 * 3600

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


class SessionSigner:
    """Signs and checks session cookies with a key of this process; `credential` tells
    a signed-in user's current credential (see the module's docstring)."""

    def __init__(self, key: bytes | None = None, credential: Credential = no_users):
        self.key = key or secrets.token_bytes(32)
        self.credential = credential

    def new(self, user: str | None = None, credential: str | None = None) -> Session:
        """A new session: anonymous, or signed in as `user`, bound to `credential` (their
        hash as read before their password was checked: a change in between ends it)."""
        binding = self._bind(user, credential) if user is not None and credential else ""
        return Session(user, secrets.token_urlsafe(24), int(time.time()), binding)

    def dump(self, session: Session) -> str:
        payload = json.dumps(
            {"u": session.user, "c": session.csrf, "t": session.issued, "b": session.binding}
        )
        body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"{body}.{self._mac(body.encode())}"

    def load(self, cookie: str | None) -> Session | None:
        """The session a cookie holds; None for none, a forged or an expired one, and a
        signed-in one whose user no longer exists or whose credential changed since."""
        if not cookie or "." not in cookie:
            return None
        body, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(body.encode())):
            return None
        try:
            doc = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            user, csrf, issued, binding = doc["u"], doc["c"], doc["t"], doc["b"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(csrf, str) or not isinstance(issued, int):
            return None
        if not isinstance(binding, str) or (user is not None and not isinstance(user, str)):
            return None
        if time.time() - issued > LIFETIME:
            return None
        session = Session(user, csrf, issued, binding)
        if user is not None and not self._still_bound(session):
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

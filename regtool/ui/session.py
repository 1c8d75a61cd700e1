"""The UI's session cookie: who signed in and the CSRF token of their forms.

A login form, not HTTP Basic: a browser keeps Basic credentials until it is closed and
sends them to every page of the origin with no way to sign out, and its prompt is not a
page that can say why a login failed. The cookie holds `{"u": user, "c": csrf, "t":
issued}` as base64url JSON and an HMAC-SHA256 of it under a key made when the process
starts: a restart signs everybody out, and nothing stored needs protecting. It is
`HttpOnly`, `SameSite=Strict` and scoped to the UI's path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

COOKIE = "regtool_ui"
#: Seconds a session lasts after signing in.
LIFETIME = 12 * 3600


@dataclass(frozen=True)
class Session:
    user: str | None  # None: not signed in
    csrf: str
    issued: int


class SessionSigner:
    """Signs and checks session cookies with a key of this process."""

    def __init__(self, key: bytes | None = None):
        self.key = key or secrets.token_bytes(32)

    def new(self, user: str | None = None) -> Session:
        return Session(user, secrets.token_urlsafe(24), int(time.time()))

    def dump(self, session: Session) -> str:
        payload = json.dumps({"u": session.user, "c": session.csrf, "t": session.issued})
        body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"{body}.{self._mac(body)}"

    def load(self, cookie: str | None) -> Session | None:
        """The session a cookie holds; None for none, a forged or an expired one."""
        if not cookie or "." not in cookie:
            return None
        body, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            doc = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            user, csrf, issued = doc["u"], doc["c"], doc["t"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(csrf, str) or not isinstance(issued, int):
            return None
        if user is not None and not isinstance(user, str):
            return None
        if time.time() - issued > LIFETIME:
            return None
        return Session(user, csrf, issued)

    def _mac(self, body: str) -> str:
        digest = hmac.new(self.key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def same_token(given: str | None, session: Session) -> bool:
    """Whether a form's CSRF token is the session's."""
    return bool(given) and hmac.compare_digest(str(given), session.csrf)

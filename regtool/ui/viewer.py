"""Who is looking at the UI and what the server's rules let them see and do: the same
`Guard` as the registry API (`server/auth/guard.py`), asked per repository.

- No authentication configured: everyone may do everything the server takes.
- htpasswd: the user signed in through the UI's form (or a Basic header), checked by the
  access rules (`AccessRules.allows`); anonymous grants apply to visitors.
- token: what the request's Bearer token grants (`repository:<name>:<action>` or `*`),
  read-only: a token is for clients of the API, and a browser without one sees nothing.
  The UI itself never issues tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from regtool.server.auth.access import DELETE, PULL
from regtool.server.auth.guard import Guard


@dataclass(frozen=True)
class Viewer:
    user: str | None
    guard: Guard
    scopes: frozenset[str] = frozenset()
    #: Whether this UI may delete at all (`regtool ui` never does).
    writable: bool = True

    @property
    def needs_login(self) -> bool:
        """Whether signing in could show more: htpasswd and nobody signed in."""
        return self.user is None and self.guard.settings.htpasswd is not None

    def may(self, name: str, action: str) -> bool:
        """Whether the viewer may `action` (pull, push, delete) on repository `name`."""
        if self.guard.backend is None:
            return True
        if self.guard.verifier is not None:
            return bool({f"repository:{name}:{action}", f"repository:{name}:*"} & self.scopes)
        return self.guard.rules.allows(self.user, name, action)

    def may_pull(self, name: str) -> bool:
        return self.may(name, PULL)

    def may_delete(self, name: str) -> bool:
        """Delete buttons: the server takes deletes and the viewer is granted them."""
        settings = self.guard.settings
        if not self.writable or settings.read_only or not settings.delete_enabled:
            return False
        if self.guard.verifier is not None:
            return False
        return self.may(name, DELETE)


def viewer_of(request: Request, guard: Guard, session_user: str | None, writable: bool) -> Viewer:
    """The viewer of a request: its session's user, else whoever its `Authorization`
    header authenticated (Basic, Bearer) through the guard's middleware."""
    scopes: frozenset[str] = frozenset()
    user = session_user
    if "user" in request.scope and request.user.is_authenticated:
        scopes = frozenset(request.auth.scopes)
        user = user or request.user.display_name
    return Viewer(user, guard, scopes, writable)

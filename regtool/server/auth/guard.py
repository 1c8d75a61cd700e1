"""The gate every request passes: who it comes from (Starlette's
`AuthenticationMiddleware` with the Basic or Bearer backend below) and whether that may
do what the route needs (`Guard.check`, called by the router once it knows the route).

Refusals: not logged in (or a wrong password, or a token without the scope) is 401
`UNAUTHORIZED` with the challenge; logged in through htpasswd but not allowed by the
access rules is 403 `DENIED`; a write the registry does not take at all (read-only,
deletes disabled) is 405 `UNSUPPORTED` saying why, after the login, as distribution.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable

from anyio import to_thread
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
    SimpleUser,
)
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp

from regtool.server.auth.access import CATALOG, DELETE, PULL, PUSH, Access, AccessRules
from regtool.server.auth.htpasswd import Htpasswd
from regtool.server.auth.throttle import LoginThrottle
from regtool.server.auth.token import TokenInvalid, TokenVerifier
from regtool.server.auth.watched import WatchedFile
from regtool.server.errors import Denied, Unauthorized, Unsupported, error_response
from regtool.server.settings import ServerSettings

log = logging.getLogger(__name__)

#: The scope a Basic login grants: the access rules decide the rest.
LOGGED_IN = "authenticated"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class BasicAuth(AuthenticationBackend):
    """`Authorization: Basic` against an htpasswd file. No header (or another scheme)
    is an anonymous request; a wrong password or a malformed header is refused, logged
    with the user and the client address, and slows that address down: every login
    from it waits first (`LoginThrottle`), right or wrong."""

    def __init__(self, htpasswd: Htpasswd, throttle: LoginThrottle):
        self.htpasswd = htpasswd
        self.throttle = throttle
        self._pending: dict[tuple[str, bytes], asyncio.Future[bool]] = {}

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        scheme, _, encoded = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        address = conn.client.host if conn.client else "unknown"
        await self.throttle.wait(address)
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
            user, sep, password = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, sep, password = "", "", ""
        if sep and not user and not password:
            # `Basic Og==`, an empty user and password: what skopeo and podman send when
            # told to log in as nobody: an anonymous request, not a failed login (nor a
            # success: it must not reset the address's count of failures).
            return None
        if not sep:
            self.throttle.failed(address)
            log.warning("failed login from %s: malformed Basic credentials", address)
            raise AuthenticationError("malformed Basic credentials")
        if not self.htpasswd.remembered(user, password) and not await self._verify(user, password):
            self.throttle.failed(address)
            log.warning("failed login for user %r from %s", user[:100], address)
            raise AuthenticationError("wrong user name or password")
        self.throttle.succeeded(address)
        return AuthCredentials([LOGGED_IN]), SimpleUser(user)

    async def _verify(self, user: str, password: str) -> bool:
        """bcrypt in a worker thread, once for requests that bring the same credentials
        at the same time (a client opening many connections at once): the others wait
        for that check's answer instead of paying bcrypt each."""
        key = (user, self.htpasswd.fingerprint(password))
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(
                to_thread.run_sync(self.htpasswd.verify, user, password)
            )
            self._pending[key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        return await asyncio.shield(pending)


class BearerAuth(AuthenticationBackend):
    """`Authorization: Bearer <JWT>`; the token's access claims become the scopes."""

    def __init__(self, verifier: TokenVerifier):
        self.verifier = verifier

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        scheme, _, token = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            verified = self.verifier.verify(token.strip())
        except TokenInvalid as e:
            address = conn.client.host if conn.client else "unknown"
            log.warning("refused token from %s: %s", address, e)
            raise AuthenticationError(str(e)) from None
        return AuthCredentials(sorted(verified.scopes)), SimpleUser(verified.subject)


_NO_RULES = AccessRules()


def _rules_reread(rules: AccessRules) -> None:
    log.info("access rules re-read: %d rules", len(rules.rules or []))


class Guard:
    """Authentication and authorization for one `ServerSettings`. Builds everything it
    reads at start-up: `UsageError` for an htpasswd file, rules file or certificate
    bundle that cannot be used."""

    def __init__(self, settings: ServerSettings, throttle: LoginThrottle | None = None):
        self.settings = settings
        self.backend: AuthenticationBackend | None = None
        self._rules: WatchedFile[AccessRules] | None = None
        self.verifier: TokenVerifier | None = None
        #: What a request needs, from its method and path (the app's router sets it).
        self.wanted_by: Callable[[HTTPConnection], list[Access]] = lambda conn: []
        if settings.htpasswd is not None:
            self.backend = BasicAuth(Htpasswd(settings.htpasswd), throttle or LoginThrottle())
            if settings.access is not None:
                self._rules = WatchedFile(settings.access, AccessRules.load, _rules_reread)
        elif settings.token is not None:
            self.verifier = TokenVerifier(settings.token)
            self.backend = BearerAuth(self.verifier)

    @property
    def rules(self) -> AccessRules:
        """The access rules as their file says now (re-read when it changes); with no
        file, everything for logged-in users."""
        return self._rules.current() if self._rules is not None else _NO_RULES

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """`app` behind the authentication middleware, when there is authentication."""
        if self.backend is None:
            return app
        return AuthenticationMiddleware(app, backend=self.backend, on_error=self._refused)

    def _refused(self, conn: HTTPConnection, exc: Exception) -> Response:
        if self.verifier is None:
            return error_response(Unauthorized(str(exc), self.challenge([])))
        # The client asks for a new token with the scope the challenge names.
        wanted = self.wanted_by(conn)
        return error_response(Unauthorized(str(exc), self.challenge(wanted, "invalid_token")))

    def challenge(self, wanted: list[Access], error: str | None = None) -> str:
        """The `WWW-Authenticate` value that asks for `wanted`."""
        if self.verifier is None:
            return f"Basic realm={_quoted(self.settings.realm)}"
        token = self.verifier.settings
        parts = [f"realm={_quoted(token.realm)}", f"service={_quoted(token.service)}"]
        if wanted:
            parts.append(f"scope={_quoted(' '.join(a.scope for a in wanted))}")
        if error:
            parts.append(f"error={_quoted(error)}")
        return "Bearer " + ",".join(parts)

    def check(self, request: Request, wanted: list[Access], methods: list[str]) -> None:
        """Raises `Unauthorized`, `Denied` or `Unsupported` unless the request may have
        `wanted` (`access.needed`); `methods` are those of its route, for the `Allow`
        of a 405."""
        if self.backend is not None:
            user = request.user.display_name if request.user.is_authenticated else None
            if self.verifier is not None:
                self._check_token(request, user, wanted)
            else:
                self._check_rules(request, user, wanted)
        self._check_writes(wanted, methods)

    def _check_token(self, request: Request, user: str | None, wanted: list[Access]) -> None:
        if user is None and not request.auth.scopes:
            raise Unauthorized("authentication required", self.challenge(wanted))
        scopes = set(request.auth.scopes)
        for access in wanted:
            # "*" grants every action on its resource, as distribution's accessSet reads it.
            every = f"{access.type}:{access.name}:*" in scopes
            if not every and any(
                f"{access.type}:{access.name}:{a}" not in scopes for a in access.actions
            ):
                raise Unauthorized(
                    f"the token does not grant {access.scope}",
                    self.challenge(wanted, "insufficient_scope"),
                )

    def _check_rules(self, request: Request, user: str | None, wanted: list[Access]) -> None:
        # `/v2/` (nothing wanted) challenges a request that brings no credentials even
        # when the rules grant anonymous pulls: Docker and skopeo send a login they hold
        # only once this probe asks for one, and take a 200 for "no login here". An empty
        # login (`Basic Og==`, what skopeo and podman send without one) is anonymous and
        # answered, as every route's anonymous grants are below.
        rules = self.rules
        probe_without_login = not wanted and "authorization" not in request.headers
        if user is None and (not rules.anonymous_grants or probe_without_login):
            raise Unauthorized("authentication required", self.challenge(wanted))
        for access in wanted:
            if access is CATALOG:
                continue  # listed as far as the user may pull: `may_pull`
            for action in access.actions:
                if not rules.allows(user, access.name, action):
                    if user is None:
                        raise Unauthorized("authentication required", self.challenge(wanted))
                    raise Denied(f"{user} may not {action} {access.name}")

    def _check_writes(self, wanted: list[Access], methods: list[str]) -> None:
        actions = {a for access in wanted for a in access.actions}
        reads = [m for m in methods if m in ("GET", "HEAD")]
        if self.settings.read_only and actions & {PUSH, DELETE}:
            raise Unsupported("the registry is read-only: it serves pulls only", reads)
        if not self.settings.delete_enabled and DELETE in actions:
            raise Unsupported(
                "deletes are disabled on this registry (--no-delete, or "
                "storage.delete.enabled not true in its config)",
                [m for m in methods if m != "DELETE"],
            )

    def may_pull(self, request: Request) -> Callable[[str], bool] | None:
        """Which repositories `_catalog` lists to the request's user: None for all."""
        rules = self.rules  # one version of the rules for the whole listing
        if self.verifier is not None or rules.rules is None:
            return None
        user = request.user.display_name if request.user.is_authenticated else None
        return lambda name: rules.allows(user, name, PULL)
